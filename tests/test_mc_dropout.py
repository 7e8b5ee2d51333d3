"""MC-dropout strategies against the formulas of Gal et al. (ICML 2017), in float64."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import BALD, MaxEntropy, VariationRatio, make_strategy


def reference_score(name: str, probabilities: torch.Tensor) -> torch.Tensor:
    """probabilities [N, T, C] → scores [N], written out from the definitions."""
    p = probabilities.double()
    entropy = lambda q: -(q * q.clamp_min(1e-300).log()).sum(-1)  # noqa: E731
    if name == "max-entropy":
        return entropy(p.mean(1))
    if name == "bald":
        return entropy(p.mean(1)) - entropy(p).mean(1)
    votes = torch.stack([torch.bincount(row.argmax(-1), minlength=p.shape[-1]) for row in p])
    return 1 - votes.max(1).values.double() / p.shape[1]


CLASSES = {"max-entropy": MaxEntropy, "bald": BALD, "variation-ratio": VariationRatio}


@pytest.mark.parametrize("name", CLASSES)
def test_scores_match_the_formulas(name):
    probabilities = (torch.randn(40, 7, 5, dtype=torch.float64) * 2).softmax(-1)
    probabilities[0] = probabilities[0, :1]  # all passes agree: BALD 0, variation ratio 0
    scores = CLASSES[name](progress=False).score(probabilities)
    torch.testing.assert_close(scores, reference_score(name, probabilities), atol=1e-12, rtol=1e-12)
    if name != "max-entropy":
        assert abs(float(scores[0])) < 1e-12


class Recorder(nn.Module):
    """A model with batch-norm and dropout that records every forward's input size and output."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        self.calls: list[tuple[int, torch.Tensor]] = []

    def forward(self, x):
        out = self.net(x)
        self.calls.append((x.shape[0], out.detach().clone()))
        return out


@pytest.mark.parametrize("name", CLASSES)
def test_selection_is_the_top_of_the_formula_over_the_passes_the_model_ran(name):
    passes, chunk, batch = 6, 4, 16
    x = torch.randn(50, 4)
    pool = ActivePool(TensorDataset(x, torch.zeros(50, dtype=torch.int64)))
    pool.label([0, 3, 7], [0, 0, 0])
    model = Recorder()
    model.train()
    running_mean = model.net[1].running_mean.clone()
    strategy = make_strategy(name, passes=passes, chunk=chunk, batch_size=batch, progress=False)
    indices, scores = strategy.select(model, pool, 10, return_scores=True)

    # Each batch is loaded once; its T passes run as ceil(T/chunk) forwards of chunk·B rows.
    sizes = [rows for rows, _ in model.calls]
    batches = [min(batch, 47 - start) for start in range(0, 47, batch)]
    assert sizes == [count * b for b in batches for count in (4, 2)]
    per_batch = [torch.cat([model.calls[2 * i][1].unflatten(0, (4, b)), model.calls[2 * i + 1][1].unflatten(0, (2, b))]) for i, b in enumerate(batches)]
    probabilities = torch.cat(per_batch, dim=1).transpose(0, 1).softmax(-1)  # [N̂, T, C]
    assert not torch.allclose(probabilities[:, 0], probabilities[:, 1])  # dropout was on
    reference = reference_score(name, probabilities)
    candidates = pool.unlabeled_indices
    order = reference.argsort(descending=True, stable=True)[:10]
    assert indices.tolist() == candidates[order].tolist()  # equal scores: the lower global index first
    torch.testing.assert_close(scores.double(), reference[order], atol=1e-5, rtol=1e-5)
    assert torch.equal(model.net[1].running_mean, running_mean)  # batch-norm stayed in eval mode
    assert model.training and model.net[3].training
    assert strategy.last_cost.forward == passes * 47 and strategy.last_cost.backward == 0
    assert strategy.last_cost.seconds > 0


def test_a_model_without_dropout_is_an_error():
    pool = ActivePool(TensorDataset(torch.randn(5, 2), torch.zeros(5, dtype=torch.int64)))
    with pytest.raises(ValueError, match="BALD needs dropout"):
        BALD(passes=2, progress=False).select(nn.Linear(2, 3), pool, 2)
    with pytest.raises(ValueError, match="passes and chunk must be ints >= 1"):
        BALD(passes=0)
