"""BADGE: the picks against a direct reference that forms the gradient embeddings with autograd in
float64 and runs dense D² sampling with the same draws."""

import copy

import pytest
import torch
import torch.nn.functional as F
from kmeanspp_reference import dense_kmeanspp
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.seeding import derived_seed
from torch_al.strategies import BADGE, STRATEGIES, make_strategy


def small_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4))


def small_pool(n: int = 70) -> tuple[ActivePool, torch.Tensor]:
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(2))
    pool = ActivePool(TensorDataset(x, torch.zeros(n, dtype=torch.int64)))
    pool.label([0, 4, 9, 30, 31], [0, 1, 2, 3, 0])
    return pool, x


def gradient_embeddings(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Row i: the gradient of the cross-entropy loss of item i with its argmax label with respect
    to the last layer's weight, flattened, by autograd on a float64 copy of the model."""
    model64 = copy.deepcopy(model).double().eval()
    weight = model64[-1].weight
    rows = []
    for item in x.double():
        logits = model64(item[None])
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, logits.argmax(1)), weight)
        rows.append(grad.flatten())
    return torch.stack(rows)


def draws(seed: int, round_: int, count: int) -> torch.Tensor:
    return torch.rand(count, generator=torch.Generator().manual_seed(derived_seed(seed, "badge", round_)), dtype=torch.float64)


@pytest.mark.parametrize("labeled_centers", [False, True])
def test_picks_equal_dense_d2_sampling_over_autograd_embeddings(labeled_centers):
    pool, x = small_pool()
    model = small_model()
    strategy = BADGE(labeled_centers=labeled_centers, batch_size=16, seed=3)
    query, scores = strategy.select(model, pool, 12, return_scores=True)

    candidates, labeled = pool.unlabeled_indices, pool.labeled_indices
    rows = torch.cat([candidates, labeled]) if labeled_centers else candidates
    initial = torch.arange(len(rows)) >= len(candidates) if labeled_centers else None
    picks, pick_sq = dense_kmeanspp(gradient_embeddings(model, x[rows]), draws(3, pool.round, 12), initial)
    assert query.tolist() == candidates[picks].tolist()
    torch.testing.assert_close(scores.double(), pick_sq, rtol=1e-4, atol=1e-7)
    assert strategy.last_cost.forward == len(rows) and strategy.last_cost.backward == 0


def test_draws_follow_seed_and_round():
    pool, _ = small_pool()
    model = small_model()
    first = BADGE(seed=0).select(model, pool, 10)
    assert torch.equal(first, BADGE(seed=0).select(model, pool, 10))
    assert not torch.equal(first, BADGE(seed=1).select(model, pool, 10))
    pool.propose(torch.tensor([1]))
    pool.label([1], [0])  # completes the query: the next round
    assert pool.round == 1
    picks = BADGE(seed=0).select(model, pool, 10)
    rows = pool.unlabeled_indices
    _, x = small_pool()
    expected = dense_kmeanspp(gradient_embeddings(model, x[rows]), draws(0, 1, 10))[0]
    assert picks.tolist() == rows[expected].tolist()


def test_registered_and_built_by_name():
    assert STRATEGIES["badge"] is BADGE
    strategy = make_strategy("badge", seed=4, batch_size=32, progress=False)
    assert isinstance(strategy, BADGE) and strategy.seed == 4 and strategy.batch_size == 32


class NaNForMarkedInputs(nn.Module):
    """Logits NaN for inputs whose first value is above 100; finite embeddings throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        return self.head(x) * torch.where(x[:, :1] > 100, float("nan"), 1.0)


def test_bad_input_is_a_clear_error_and_nothing_is_recorded():
    pool, x = small_pool()
    pool.dataset.tensors[0][12, 0] = 1000.0
    labeled_before = pool.labeled_indices.clone()
    with pytest.raises(ValueError, match="BADGE: the model returned non-finite logits \\(nan\\) for pool item 12"):
        BADGE().select(NaNForMarkedInputs(), pool, 5)
    with pytest.raises(ValueError, match="BADGE: the model has no nn.Linear"):
        BADGE().select(nn.Sequential(nn.Flatten()), pool, 5)
    with pytest.raises(ValueError, match="BADGE embeds the pool with a model; got model=None"):
        BADGE().select(None, pool, 5)
    with pytest.raises(ValueError, match="budget 66 is larger than the 65 unlabeled items"):
        BADGE().select(small_model(), pool, 66)
    with pytest.raises(TypeError, match="labeled_centers must be a bool"):
        BADGE(labeled_centers="yes")
    assert torch.equal(pool.labeled_indices, labeled_before) and pool.round == 0
