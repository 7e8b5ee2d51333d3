"""Suggestive annotation against a direct float64 reference: top-K by uncertainty from the model's
softmax, then the dense plain greedy facility location on normalised descriptors."""

import pytest
import torch
from test_facility_location_greedy import reference_facility_location
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import STRATEGIES, SuggestiveAnnotation, make_strategy


def small_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4))


def make_pool(n: int = 120, seed: int = 1) -> ActivePool:
    inputs = torch.randn(n, 6, generator=torch.Generator().manual_seed(seed)) * 2
    return ActivePool(TensorDataset(inputs, torch.zeros(n, dtype=torch.int64)))


def reference_selection(model: nn.Sequential, pool: ActivePool, budget: int, candidates: int, criterion: str = "entropy"):
    unlabeled = pool.unlabeled_indices
    inputs = torch.stack([pool.dataset[i][0] for i in unlabeled.tolist()])
    with torch.no_grad():
        descriptors = model[:2](inputs).double()  # the input of the last nn.Linear
        p = model[2](model[:2](inputs)).double().softmax(1)
    if criterion == "entropy":
        uncertainty = -(p * p.clamp_min(1e-300).log()).sum(1)
    else:
        uncertainty = 1 - p.max(1).values
    shortlist = uncertainty.argsort(descending=True, stable=True)[:candidates]
    unit = descriptors / descriptors.norm(dim=1, keepdim=True).clamp_min(1e-300)
    picks, gains = reference_facility_location(unit[shortlist], unit, budget)
    return unlabeled[shortlist[picks]], gains


@pytest.mark.parametrize("candidates, criterion", [(None, "entropy"), (30, "entropy"), (12, "least_confidence")])
def test_matches_the_reference(candidates, criterion):
    model, pool = small_model(), make_pool()
    pool.label([0, 5, 7, 9], [0, 1, 2, 3])
    strategy = SuggestiveAnnotation(candidates=candidates, criterion=criterion, batch_size=16)
    indices, scores = strategy.select(model, pool, 8, return_scores=True)
    expected, gains = reference_selection(model, pool, 8, candidates or 32, criterion)
    assert indices.tolist() == expected.tolist()
    torch.testing.assert_close(scores.double(), gains, atol=1e-4, rtol=1e-4)
    assert strategy.last_cost.forward == 116 and strategy.last_cost.backward == 0  # one pass over the unlabeled pool


def test_candidates_are_clipped_to_the_pool_and_zero_descriptors_cover_nothing():
    model, pool = small_model(), make_pool(n=20)
    with torch.no_grad():
        model[0].bias.fill_(-50.0)  # every ReLU output zero: all descriptors are zero, every gain 0
    indices, scores = SuggestiveAnnotation().select(model, pool, 10, return_scores=True)
    expected, _ = reference_selection(model, pool, 10, 20)
    assert indices.tolist() == expected.tolist() and (scores == 0).all()


def test_bad_budgets_and_options_raise_clear_errors():
    model, pool = small_model(), make_pool(n=20)
    with pytest.raises(ValueError, match="budget 6 is larger than candidates=5"):
        SuggestiveAnnotation(candidates=5).select(model, pool, 6)
    with pytest.raises(ValueError, match="budget 21 is larger than the 20 unlabeled items"):
        SuggestiveAnnotation().select(model, pool, 21)
    with pytest.raises(ValueError, match="candidates must be an int >= 1, got 0"):
        SuggestiveAnnotation(candidates=0)
    with pytest.raises(ValueError, match="criterion must be one of"):
        SuggestiveAnnotation(criterion="bald")
    with pytest.raises(ValueError, match="SuggestiveAnnotation: the model has no layer named 'fc9'"):
        SuggestiveAnnotation(layer="fc9").select(model, pool, 2)
    assert pool.labeled_indices.numel() == 0


def test_nan_outputs_name_the_pool_item():
    pool = make_pool(n=20)
    pool.label([0], [0])
    poisoned = pool.dataset.tensors[0].clone()
    poisoned[7] = float("nan")
    pool = ActivePool(TensorDataset(poisoned, torch.zeros(20, dtype=torch.int64)))
    with pytest.raises(ValueError, match="SuggestiveAnnotation: the model returned non-finite logits \\(nan\\) for pool item 7"):
        SuggestiveAnnotation().select(small_model(), pool, 3)


def test_registered_by_name():
    assert STRATEGIES["suggestive"] is SuggestiveAnnotation
    strategy = make_strategy("suggestive", seed=3, batch_size=9, progress=False)
    assert isinstance(strategy, SuggestiveAnnotation) and strategy.batch_size == 9
