"""A round in two stages (``pfk-direct``): PFK's picks on the pool as the round began, then DIRECT
with their answers, across fresh processes and in the loop."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActiveLearningLoop, ActivePool
from torch_al.datasets import make_blobs
from torch_al.strategies import DIRECT, PFK, Entropy, PFKThenDIRECT, Staged, make_strategy

BUDGET = 20


def blobs():
    x, y = make_blobs(160, num_classes=4, dim=6, spread=2.0, seed=3)
    validation = make_blobs(40, num_classes=4, dim=6, spread=2.0, seed=4)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    pool = ActivePool(TensorDataset(x, y))
    pool.label(torch.arange(0, 160, 20), y[::20])
    return model, pool, validation, y


def staged(validation, share=0.5) -> PFKThenDIRECT:
    return PFKThenDIRECT(validation=validation, layers=("1",), annotators=3, share=share, seed=2, progress=False)


def asked_round(strategy_for_each_call, model, pool, budget, y) -> list[list[int]]:
    """One round as the loop drives it; ``strategy_for_each_call()`` gives the strategy of each call."""
    batches = []
    while True:
        asked = strategy_for_each_call().next_sub_batch(model, pool, budget)
        pool.propose(asked.indices, final=asked.final)
        pool.label(asked.indices, y[asked.indices])
        batches.append(asked.indices.tolist())
        if asked.final:
            return batches


def test_pfk_chooses_the_first_share_then_direct_asks_the_rest_knowing_those_answers():
    model, pool, validation, y = blobs()
    expected_first = PFK(validation=validation, layers=("1",), seed=2, progress=False).select(model, pool, BUDGET // 2).tolist()
    after_first = ActivePool(pool.dataset)
    after_first.label(pool.labeled_indices, y[pool.labeled_indices])
    after_first.label(expected_first, y[expected_first])  # known when the round begins: DIRECT reads them so
    expected_rest = asked_round(lambda: DIRECT(annotators=3, seed=2, progress=False), model, after_first, BUDGET // 2, y)

    strategy = staged(validation)
    batches = asked_round(lambda: strategy, model, pool, BUDGET, y)
    assert batches == [expected_first, *expected_rest]
    assert pool.round == 1 and pool.labeled_indices.numel() == 8 + BUDGET


def test_a_fresh_process_at_every_sub_batch_asks_the_same_round():
    model, pool, validation, y = blobs()
    strategy = staged(validation)
    uninterrupted = asked_round(lambda: strategy, model, pool, BUDGET, y)
    model, again, validation, y = blobs()
    assert asked_round(lambda: staged(validation), model, again, BUDGET, y) == uninterrupted  # each call replays the answers before it
    assert len(uninterrupted) > 2  # PFK's sub-batch, then several of DIRECT's


@pytest.mark.parametrize("share, first_size", [(0.0, None), (0.25, 5), (1.0, BUDGET)])
def test_the_share_sizes_the_first_stage(share, first_size):
    model, pool, validation, y = blobs()
    batches = asked_round(lambda: staged(validation, share), model, pool, BUDGET, y)
    assert sum(map(len, batches)) == BUDGET
    if first_size is None:
        assert len(batches[0]) <= 3  # DIRECT from the start: sub-batches of its annotators
    else:
        assert len(batches[0]) == first_size
    if share == 1.0:
        assert len(batches) == 1


def test_both_stages_passes_are_counted_where_they_are_made():
    model, pool, validation, y = blobs()
    strategy = staged(validation)
    first = strategy.next_sub_batch(model, pool, BUDGET)
    assert strategy.last_cost.backward > 0 and strategy.last_cost.forward >= 152  # PFK: the unlabeled items, and the validation set
    pool.propose(first.indices, final=False)
    pool.label(first.indices, y[first.indices])
    strategy.next_sub_batch(model, pool, BUDGET)
    assert (strategy.last_cost.forward, strategy.last_cost.backward) == (len(pool), 0)  # DIRECT: every item's probabilities


def test_it_runs_in_the_loop_and_by_name():
    model, pool, validation, y = blobs()
    loop = ActiveLearningLoop(pool, make_strategy("pfk-direct", validation=validation, layers=("1",), progress=False), model, lambda *_: None, BUDGET, 2, oracle=lambda i: y[i], progress=False)
    loop.run()
    assert pool.round == 2 and pool.labeled_indices.numel() == 8 + 2 * BUDGET


def test_bad_stages_are_refused():
    direct = DIRECT(progress=False)
    with pytest.raises(TypeError, match="first must be a one-shot Strategy, got DIRECT"):
        Staged(direct, direct)
    with pytest.raises(TypeError, match="then must ask within its round .* got Entropy"):
        Staged(Entropy(), Entropy())
    with pytest.raises(ValueError, match=r"share must be a number in \[0, 1\], got 1.5"):
        Staged(Entropy(), direct, share=1.5)
