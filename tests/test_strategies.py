"""Strategies against naive float64 references; the interface's guarantees and errors."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import STRATEGIES, CoreSet, Entropy, LeastConfidence, Margin, Random, Strategy, make_strategy


def logits_pool(logits: torch.Tensor) -> ActivePool:
    """Items whose inputs are the logits themselves, so nn.Identity() is a model with known outputs."""
    return ActivePool(TensorDataset(logits, torch.zeros(len(logits), dtype=torch.int64)))


def reference_scores(name: str, logits: torch.Tensor) -> torch.Tensor:
    p = logits.double().softmax(1)
    if name == "entropy":
        return -(p * p.clamp_min(1e-300).log()).sum(1)
    top = p.sort(1, descending=True).values
    return top[:, 1] - top[:, 0] if name == "margin" else 1 - top[:, 0]


@pytest.mark.parametrize("cls, name", [(Entropy, "entropy"), (Margin, "margin"), (LeastConfidence, "least-confidence")])
def test_uncertainty_matches_reference_and_skips_labeled(cls, name):
    logits = torch.randn(60, 5) * 3
    pool = logits_pool(logits)
    pool.label([0, 1, 2], [0, 0, 0])
    indices, scores = cls(batch_size=7, progress=False).select(nn.Identity(), pool, 10, return_scores=True)
    reference = reference_scores(name, logits)
    reference[:3] = -float("inf")
    assert indices.tolist() == reference.argsort(descending=True, stable=True)[:10].tolist()
    torch.testing.assert_close(scores.double(), reference[indices], atol=1e-5, rtol=1e-5)


def test_ties_go_to_the_lower_global_index():
    logits = torch.zeros(8, 3)  # every item equally uncertain
    pool = logits_pool(logits)
    pool.label([1], [0])
    assert Entropy(progress=False).select(nn.Identity(), pool, 3).tolist() == [0, 2, 3]


def test_random_is_seeded_distinct_and_unlabeled():
    pool = logits_pool(torch.zeros(50, 2))
    pool.label(list(range(10)), [0] * 10)
    first = Random(seed=1).select(None, pool, 20)
    assert first.tolist() == Random(seed=1).select(None, pool, 20).tolist()
    assert len(set(first.tolist())) == 20 and min(first.tolist()) >= 10
    assert first.tolist() != Random(seed=2).select(None, pool, 20).tolist()


@pytest.mark.parametrize(
    "budget, error, message",
    [(-1, ValueError, "budget must be >= 0, got -1"), (48, ValueError, "budget 48 is larger than the 47 unlabeled"), (2.0, TypeError, "budget must be an int")],
)
def test_bad_budgets(budget, error, message):
    pool = logits_pool(torch.zeros(50, 2))
    pool.label([0, 1, 2], [0, 0, 0])
    for strategy in (Random(), Entropy(progress=False)):
        with pytest.raises(error, match=message):
            strategy.select(nn.Identity(), pool, budget)
    assert Random().select(None, pool, 0).numel() == 0


def test_a_strategy_breaking_the_contract_is_caught():
    class Repeats(Strategy):
        def query(self, model, pool, budget):
            return torch.zeros(budget, dtype=torch.int64), None

    pool = logits_pool(torch.zeros(5, 2))
    with pytest.raises(RuntimeError, match="Repeats returned repeated indices"):
        Repeats().select(None, pool, 2)
    with pytest.raises(ValueError, match="model=None"):
        Entropy().select(None, pool, 2)


def test_make_strategy_by_name():
    assert isinstance(make_strategy("margin", seed=3, progress=False), Margin)
    assert make_strategy("random", seed=3, batch_size=9).seed == 3
    with pytest.raises(ValueError, match="unknown strategy 'nope'; available: random"):
        make_strategy("nope")
    assert {"random", "entropy", "margin", "least-confidence", "coreset", "bald", "pcc", "eba", "pfk", "pfk-sum-match"} <= set(STRATEGIES)


@pytest.mark.skipif(not hasattr(torch.ops.torch_al, "kcenter_greedy"), reason="needs the kcenter_greedy op (issue 4)")
def test_coreset_picks_the_uncovered_cluster_first():
    # Embeddings are the inputs of the last Linear: two tight clusters near 0 and one far away.
    points = torch.cat([torch.randn(10, 2) * 0.01, torch.randn(10, 2) * 0.01 + 5, torch.randn(10, 2) * 0.01 - 9])
    pool = logits_pool(points)
    pool.label(list(range(10)) + list(range(10, 20, 2)), [0] * 15)
    model = nn.Sequential(nn.Identity(), nn.Linear(2, 2))
    picked = CoreSet(batch_size=4).select(model, pool, 2)
    assert 20 <= picked[0] < 30 and len(set(picked.tolist())) == 2
    assert not pool.labeled_mask[picked].any()
    fresh = logits_pool(points)  # nothing labeled: the first pick is seeded
    assert CoreSet(seed=0).select(model, fresh, 3).tolist() == CoreSet(seed=0).select(model, fresh, 3).tolist()
