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


@pytest.mark.parametrize("prefix_once", [True, False])
@pytest.mark.parametrize("name", CLASSES)
def test_selection_is_the_top_of_the_formula_over_the_passes_the_model_ran(name, prefix_once):
    passes, chunk, batch = 6, 4, 16
    x = torch.randn(50, 4)
    pool = ActivePool(TensorDataset(x, torch.zeros(50, dtype=torch.int64)))
    pool.label([0, 3, 7], [0, 0, 0])
    model = Recorder()
    model.train()
    running_mean = model.net[1].running_mean.clone()
    strategy = make_strategy(name, passes=passes, chunk=chunk, batch_size=batch, progress=False, prefix_once=prefix_once)
    indices, scores = strategy.select(model, pool, 10, return_scores=True)

    # Each batch is loaded once; its T passes run as ceil(T/chunk) forwards of chunk·B rows from
    # the first dropout on (prefix-once: the model's input has B rows; after the 2 probe forwards).
    calls = model.calls[2:] if prefix_once else model.calls
    if prefix_once:
        assert [(rows, out.shape[0]) for rows, out in model.calls[:2]] == [(4, 4), (2, 4)]  # the probe
    batches = [min(batch, 47 - start) for start in range(0, 47, batch)]
    assert [out.shape[0] for _, out in calls] == [count * b for b in batches for count in (4, 2)]
    assert [rows for rows, _ in calls] == [(1 if prefix_once else count) * b for b in batches for count in (4, 2)]
    per_batch = [torch.cat([calls[2 * i][1].unflatten(0, (4, b)), calls[2 * i + 1][1].unflatten(0, (2, b))]) for i, b in enumerate(batches)]
    probabilities = torch.cat(per_batch, dim=1).transpose(0, 1).softmax(-1)  # [N̂, T, C]
    assert not torch.allclose(probabilities[:, 0], probabilities[:, 1])  # dropout was on
    reference = reference_score(name, probabilities)
    candidates = pool.unlabeled_indices
    order = reference.argsort(descending=True, stable=True)[:10]
    assert indices.tolist() == candidates[order].tolist()  # equal scores: the lower global index first
    torch.testing.assert_close(scores.double(), reference[order], atol=1e-5, rtol=1e-5)
    assert torch.equal(model.net[1].running_mean, running_mean)  # batch-norm stayed in eval mode
    assert model.training and model.net[3].training
    # Images through the dropout part: T·N̂, plus the probe's 2 images × 2 passes × 2 paths.
    assert strategy.last_cost.forward == passes * 47 + (8 if prefix_once else 0) and strategy.last_cost.backward == 0
    assert strategy.last_cost.seconds > 0


def test_a_model_without_dropout_is_an_error():
    pool = ActivePool(TensorDataset(torch.randn(5, 2), torch.zeros(5, dtype=torch.int64)))
    with pytest.raises(ValueError, match="BALD needs dropout"):
        BALD(passes=2, progress=False).select(nn.Linear(2, 3), pool, 2)
    with pytest.raises(ValueError, match="passes and chunk must be ints >= 1"):
        BALD(passes=0)


def _scores(strategy, model, pool, seed=0):
    torch.manual_seed(seed)
    return strategy.select(model, pool, len(pool.unlabeled_indices), return_scores=True)


class Pinned(nn.Module):
    """LeNet-like: a conv prefix, then Dropout2d, pooling, Dropout and two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.prefix = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.drop2 = nn.Dropout2d(0.5)
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 16), nn.ReLU())
        self.drop1 = nn.Dropout(0.3)
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        return self.out(self.drop1(self.head(self.drop2(self.prefix(x)))))


def _pool(n=37, shape=(1, 8, 8)):
    generator = torch.Generator().manual_seed(1)
    return ActivePool(TensorDataset(torch.randn(n, *shape, generator=generator), torch.zeros(n, dtype=torch.int64)))


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("chunk", [3, 7])
def test_prefix_once_draws_the_same_masks_as_full_replication(name, chunk, caplog):
    # Same seed, same chunk: both paths draw masks for tensors of the same shape (count·B ×
    # features at each dropout), the prefix draws no random numbers and the probe runs in a forked
    # RNG, so the masks coincide and the scores match to rounding.
    model, pool = Pinned().eval(), _pool()
    once = make_strategy(name, passes=7, chunk=chunk, batch_size=10, progress=False)
    full = make_strategy(name, passes=7, chunk=chunk, batch_size=10, progress=False, prefix_once=False)
    with caplog.at_level("WARNING", logger="torch_al"):
        indices, scores = _scores(once, model, pool)
    assert not caplog.records  # no fallback
    reference_indices, reference_scores = _scores(full, model, pool)
    torch.testing.assert_close(scores, reference_scores, atol=1e-5, rtol=1e-5)
    if name != "variation-ratio":  # ties in vote counts can reorder within rounding
        assert indices.tolist() == reference_indices.tolist()
    different_seed = _scores(once, model, pool, seed=1)[1]
    assert not torch.allclose(different_seed.sort().values, scores.sort().values)  # the masks are random
    assert once.last_cost.forward == 7 * 37 + 8 and full.last_cost.forward == 7 * 37


def test_prefix_once_runs_the_prefix_once_per_forward_and_on_the_first_dropout_in_execution_order():
    class Reordered(nn.Module):  # `late` is registered first but runs after `early`
        def __init__(self):
            super().__init__()
            self.late = nn.Dropout(0.3)
            self.prefix = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
            self.early = nn.Dropout2d(0.5)
            self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 16), nn.ReLU())
            self.out = nn.Linear(16, 5)

        def forward(self, x):
            return self.out(self.late(self.head(self.early(self.prefix(x)))))

    model, pool = Reordered().eval(), _pool()
    seen = []
    model.prefix[0].register_forward_hook(lambda m, args, out: seen.append(("conv", args[0].shape[0])))
    model.head[2].register_forward_hook(lambda m, args, out: seen.append(("linear", args[0].shape[0])))
    indices, scores = _scores(BALD(passes=5, batch_size=37, progress=False), model, pool)
    assert seen[4:] == [("conv", 37), ("linear", 5 * 37)]  # after the 2 probe forwards: one forward, chunk = T
    reference = _scores(BALD(passes=5, chunk=5, batch_size=37, progress=False, prefix_once=False), model, pool)[1]
    torch.testing.assert_close(scores, reference, atol=1e-5, rtol=1e-5)


class Residual(nn.Module):
    """A join across the dropout: out = fc(drop(h)) + skip(h) with h computed before the dropout."""

    def __init__(self, captured: bool = False) -> None:
        super().__init__()
        self.prefix = nn.Sequential(nn.Linear(6, 12), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.fc, self.skip = nn.Linear(12, 4), nn.Linear(12, 4)
        self.captured = captured

    def forward(self, x):
        h = self.prefix(x)
        if self.captured:  # broadcasts the un-repeated rows: no error for a 1-image batch
            return self.fc(self.drop(h)) + h[:, :4]
        return self.fc(self.drop(h)) + self.skip(h)


@pytest.mark.parametrize("captured", [False, True])
@pytest.mark.parametrize("name", CLASSES)
def test_a_join_across_the_dropout_falls_back_to_full_replication(name, captured, caplog):
    model = Residual(captured).eval()
    pool = ActivePool(TensorDataset(torch.randn(23, 6), torch.zeros(23, dtype=torch.int64)))
    once = make_strategy(name, passes=6, chunk=4, batch_size=8, progress=False)
    with caplog.at_level("WARNING", logger="torch_al"):
        indices, scores = _scores(once, model, pool)
        _scores(once, model, pool)  # logged once
    assert len(caplog.records) == 1 and "full replication" in caplog.records[0].getMessage()
    reference_indices, reference = _scores(make_strategy(name, passes=6, chunk=4, batch_size=8, progress=False, prefix_once=False), model, pool)
    assert torch.equal(scores, reference) and torch.equal(indices, reference_indices)
    assert once.last_cost.forward == 6 * 23 + 8


def test_a_dropout_whose_output_is_mixed_across_rows_falls_back(caplog):
    class Pooled(nn.Module):  # the dropout's rows are averaged per pass with the batch size read before it
        def __init__(self):
            super().__init__()
            self.prefix, self.drop, self.fc = nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2)

        def forward(self, x):
            h = self.drop(self.prefix(x))
            return self.fc(h - h.unflatten(0, (-1, x.shape[0])).mean(1).repeat_interleave(x.shape[0], 0) * 0.5)

    model = Pooled().eval()
    pool = ActivePool(TensorDataset(torch.randn(9, 3), torch.zeros(9, dtype=torch.int64)))
    with caplog.at_level("WARNING", logger="torch_al"):
        scores = _scores(BALD(passes=4, chunk=2, batch_size=4, progress=False), model, pool)[1]
    assert len(caplog.records) == 1
    reference = _scores(BALD(passes=4, chunk=2, batch_size=4, progress=False, prefix_once=False), model, pool)[1]
    assert torch.equal(scores, reference)


def test_a_dropout_module_called_twice_is_repeated_at_its_first_call_only(caplog):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.drop, self.b, self.c = nn.Linear(5, 9), nn.Dropout(0.4), nn.Linear(9, 9), nn.Linear(9, 3)

        def forward(self, x):
            return self.c(self.drop(self.b(self.drop(self.a(x)))))

    model = Twice().eval()
    pool = ActivePool(TensorDataset(torch.randn(21, 5), torch.zeros(21, dtype=torch.int64)))
    with caplog.at_level("WARNING", logger="torch_al"):
        scores = _scores(BALD(passes=5, chunk=3, batch_size=6, progress=False), model, pool)[1]
    assert not caplog.records
    reference = _scores(BALD(passes=5, chunk=3, batch_size=6, progress=False, prefix_once=False), model, pool)[1]
    torch.testing.assert_close(scores, reference, atol=1e-6, rtol=1e-5)


def test_a_dropout_that_never_runs_falls_back_and_a_single_pass_needs_no_probe(caplog):
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.drop = nn.Linear(3, 2), nn.Dropout(0.5)

        def forward(self, x):
            return self.fc(x)

    pool = ActivePool(TensorDataset(torch.randn(6, 3), torch.zeros(6, dtype=torch.int64)))
    with caplog.at_level("WARNING", logger="torch_al"):
        scores = _scores(BALD(passes=3, progress=False), Unused(), pool)[1]
    assert len(caplog.records) == 1 and "no dropout module ran" in caplog.records[0].getMessage()
    assert torch.allclose(scores, torch.zeros(6), atol=1e-6)  # all passes equal: BALD 0
    strategy = BALD(passes=1, progress=False)
    _scores(strategy, Pinned().eval(), _pool(n=5))
    assert strategy.last_cost.forward == 5
