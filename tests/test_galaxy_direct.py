"""GALAXY and DIRECT against plain float64 references of their rules (tests/imbalance_reference.py),
on small pools with tied scores, classes with no labeled item, and noisy answers."""

import itertools

import pytest
import torch
from imbalance_reference import direct_region, direct_round, direct_scores, direct_shrunk, galaxy_middle, galaxy_middle_by_distances, galaxy_round
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import DIRECT, GALAXY, make_strategy
from torch_al.strategies.imbalance.direct import best_threshold, nearest_to_threshold, shrunk_region, uncertain_region
from torch_al.strategies.imbalance.galaxy import shortest_path_middle


def logits_pool(seed: int, n: int, classes: int, levels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Items whose inputs are their logits (the model is the identity); ``levels`` rounds them so
    that many items tie."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator) * 2
    if levels:
        logits = (logits * levels).round() / levels
    labels = torch.randint(0, classes, (n,), generator=generator)
    return logits, labels


def asked_batches(strategy, pool: ActivePool, budget: int, answer) -> list[list[int]]:
    """Drives one round as the loop does: propose each sub-batch, label it, ask again."""
    batches = []
    while True:
        asked = strategy.next_sub_batch(nn.Identity(), pool, budget)
        pool.propose(asked.indices, asked.scores, strategy="test", final=asked.final)
        pool.label(asked.indices, torch.tensor([answer(int(i)) for i in asked.indices]))
        batches.append(asked.indices.tolist())
        if asked.final:
            return batches


def probabilities_of(logits: torch.Tensor) -> list[list[float]]:
    return logits.float().softmax(1).double().tolist()  # what the strategies see through the identity model


def resolved_line(generator: torch.Generator, n: int) -> torch.Tensor:
    """A line with no order-1 path: labeled blocks of one sign each, unlabeled runs only between
    blocks of the same sign (so every +1 next to a −1 is its neighbour)."""
    signs, sign = [], 1
    while len(signs) < n:
        signs += [sign] * int(torch.randint(1, 4, (), generator=generator))
        if torch.rand((), generator=generator) < 0.5:
            signs += [0] * int(torch.randint(1, 8, (), generator=generator)) + [sign]
        else:
            sign = -sign
    return torch.tensor(signs[:n]) * (torch.rand((), generator=generator) < 0.9)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_shortest_path_middle_equals_a_search_over_whole_paths(order):
    generator = torch.Generator().manual_seed(order)
    compared = 0
    for _ in range(300):
        n = int(torch.randint(2, 13, (), generator=generator))
        signs = torch.randint(-1, 2, (n,), generator=generator) * (torch.rand(n, generator=generator) < 0.5)
        if order > 1 and shortest_path_middle(signs, 1) is not None:
            with pytest.raises(ValueError, match="only on a line without an order-1 path"):
                shortest_path_middle(signs, order)
            continue
        assert shortest_path_middle(signs, order) == galaxy_middle(signs.tolist(), order), signs.tolist()
        compared += 1
    assert compared > 100


@pytest.mark.parametrize("order", [2, 3, 5])
def test_higher_orders_on_resolved_lines_equal_whole_line_distances(order):
    generator = torch.Generator().manual_seed(10 + order)
    found = 0
    for _ in range(80):
        signs = resolved_line(generator, int(torch.randint(20, 300, (), generator=generator)))
        middle = shortest_path_middle(signs, order)
        assert middle == galaxy_middle_by_distances(signs.tolist(), order), signs.tolist()
        if len(signs) <= 14:
            assert middle == galaxy_middle(signs.tolist(), order)
        found += middle is not None
    assert found > 20


def test_the_shortest_path_middle_on_hand_made_lines():
    assert shortest_path_middle(torch.tensor([1, 0, 0, 0, -1]), 1) == 2  # L = 4: two steps from the −1 end
    assert shortest_path_middle(torch.tensor([1, 0, 0, -1]), 1) == 1  # L = 3: ⌊4/2⌋ = 2 steps from the −1 end
    assert shortest_path_middle(torch.tensor([-1, 0, 0, 1]), 1) == 2
    assert shortest_path_middle(torch.tensor([1, 0, -1, 0, 0, 0, 1, 0, -1]), 1) == 1  # the shorter of two, then the smaller
    assert shortest_path_middle(torch.tensor([1, -1, 0, 0]), 1) is None  # resolved: no unlabeled item between
    assert shortest_path_middle(torch.tensor([1, -1, 0, 0]), 2) == 2  # order 2 reaches past the resolved pair
    assert shortest_path_middle(torch.tensor([1, 1, 0, 0]), 3) is None  # no −1: nothing to cross


@pytest.mark.parametrize("seed, classes, labeled, levels", [(0, 4, 6, None), (1, 3, 0, None), (2, 5, 12, 2), (3, 2, 4, None), (4, 6, 3, 1)])
def test_galaxy_asks_what_the_reference_asks(seed, classes, labeled, levels):
    logits, labels = logits_pool(seed, 40, classes, levels)
    pool = ActivePool(TensorDataset(logits, labels))
    pool.label(torch.arange(labeled), labels[:labeled])
    known = {i: int(labels[i]) for i in range(labeled)}
    expected = galaxy_round(probabilities_of(logits), known, lambda i: int(labels[i]), 15, seed=5, round_=0)
    batches = asked_batches(GALAXY(seed=5, progress=False), pool, 15, lambda i: int(labels[i]))
    assert [b[0] for b in batches] == expected and all(len(b) == 1 for b in batches)
    assert pool.round == 1 and pool.labeled_indices.numel() == labeled + 15


@pytest.mark.parametrize(
    "seed, classes, labeled, budget, annotators, most, levels",
    [(0, 4, 8, 40, 2, 60, None), (1, 3, 0, 30, 3, 60, None), (2, 5, 10, 60, 2, 3, 1), (3, 2, 6, 50, 4, 60, None), (4, 4, 12, 20, 20, 60, 2)],
)
def test_direct_asks_what_the_reference_asks(seed, classes, labeled, budget, annotators, most, levels):
    logits, labels = logits_pool(seed, 80, classes, levels)
    pool = ActivePool(TensorDataset(logits, labels))
    pool.label(torch.arange(labeled), labels[:labeled])
    known = {i: int(labels[i]) for i in range(labeled)}
    expected = direct_round(probabilities_of(logits), known, lambda i: int(labels[i]), budget, 7, 0, annotators, most)
    strategy = DIRECT(annotators=annotators, min_budget_per_class=most, seed=7, progress=False)
    batches = asked_batches(strategy, pool, budget, lambda i: int(labels[i]))
    assert batches == [b for b in expected if b]
    assert sum(map(len, batches)) == budget and pool.round == 1


def test_direct_with_noisy_answers_matches_the_reference_that_hears_the_same_answers():
    logits, labels = logits_pool(9, 80, 3)
    flipped = torch.rand(80, generator=torch.Generator().manual_seed(3)) < 0.2
    noisy = torch.where(flipped, (labels + 1) % 3, labels)
    pool = ActivePool(TensorDataset(logits, labels))
    pool.label(torch.arange(6), noisy[:6])
    expected = direct_round(probabilities_of(logits), {i: int(noisy[i]) for i in range(6)}, lambda i: int(noisy[i]), 36, 1, 0, 3, 60)
    batches = asked_batches(DIRECT(annotators=3, seed=1, progress=False), pool, 36, lambda i: int(noisy[i]))
    assert batches == [b for b in expected if b]
    assert torch.equal(pool.labels_of(pool.labeled_indices), noisy[pool.labeled_indices])  # the oracle's answers, wrong ones too


def labeled_line(signs) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A line given position by position (+1, −1, 0) as DIRECT reads it: labeled places, their signs, size."""
    signs = torch.as_tensor(signs)
    places = signs.nonzero().flatten()
    return places, signs[places], signs.numel()


def test_direct_threshold_pieces_on_a_hand_made_line():
    signs = [1, 1, 0, -1, 1, 0, 0, -1, 0]  # acc = [-1, 1, 3, 3, 1, 3, 3, 3, 1, 1]
    assert best_threshold(*labeled_line(signs)[:2]) == 2  # the first maximum
    assert uncertain_region(*labeled_line(signs)) == (1, 7)  # last +1 before the first −1; last −1 after the last +1
    assert uncertain_region(*labeled_line([0, -1, 0, 1, 0])) == (0, 4)
    assert uncertain_region(*labeled_line([0, 0, -1, -1])) == (0, 2)  # no +1: down to the first −1
    assert uncertain_region(*labeled_line([0] * 5)) == (0, 4)
    assert nearest_to_threshold(*labeled_line(signs), 3).tolist() == [2, 5, 6]  # h = 2: 1 (labeled), 2, 0 (labeled), 3 (labeled), ...


@pytest.mark.parametrize("seed", range(40))
def test_direct_pieces_equal_the_position_by_position_rule(seed):
    """Random lines, sparse to dense in labels and with long tied stretches: the region, the best
    threshold, the walk around it and the shrinking (the same coins) as the reference computes them
    position by position."""
    generator = torch.Generator().manual_seed(seed)
    size = int(torch.randint(1, 300, (), generator=generator))
    density = [0.005, 0.05, 0.3, 0.9][seed % 4]
    labeled = torch.rand(size, generator=generator) < density
    positive = torch.rand(size, generator=generator) < torch.linspace(0.9, 0.1, size)  # +1 more likely early, as on a class line
    signs = torch.where(labeled, torch.where(positive, 1, -1), 0).tolist()
    places, labeled_signs, _ = labeled_line(signs)
    acc = direct_scores(signs)
    assert best_threshold(places, labeled_signs) == acc.index(max(acc))
    assert uncertain_region(places, labeled_signs, size) == direct_region(signs)
    count = int(torch.randint(1, size + 2, (), generator=generator))
    best = acc.index(max(acc))
    walk = [p for pair in itertools.zip_longest(range(best - 1, -1, -1), range(best, size)) for p in pair if p is not None]
    assert nearest_to_threshold(places, labeled_signs, size, count).tolist() == [p for p in walk if signs[p] == 0][:count]
    start, end = direct_region(signs)
    left = sum(1 for p in range(start, end + 1) if signs[p] == 0)
    for target in {0, 1, left // 3, left - 1}:
        if 0 <= target < left:
            coins = [torch.Generator().manual_seed(seed * 100 + target) for _ in range(2)]
            assert shrunk_region(places, labeled_signs, start, end, target, coins[0]) == direct_shrunk(signs, start, end, target, coins[1])


def test_both_are_registered_and_refuse_select_and_distributed_select():
    for name, cls in (("galaxy", GALAXY), ("direct", DIRECT)):
        strategy = make_strategy(name, seed=2, progress=False)
        assert isinstance(strategy, cls)
        logits, labels = logits_pool(0, 10, 3)
        with pytest.raises(TypeError, match="asks for labels inside its round, so select\\(\\) cannot serve it"):
            strategy.select(nn.Identity(), ActivePool(TensorDataset(logits, labels)), 2)
        with pytest.raises(TypeError, match="torch_al.distributed serves one-shot queries only"):
            strategy.query_over_ranks(nn.Identity(), None, 2, None)
    assert make_strategy("direct", annotators=5).annotators == 5
    with pytest.raises(ValueError, match="DIRECT: annotators"):
        DIRECT(annotators=0)
    with pytest.raises(ValueError, match="orders the pool by a model's probabilities; got model=None"):
        GALAXY(progress=False).next_sub_batch(None, ActivePool(TensorDataset(*logits_pool(0, 10, 3))), 2)
