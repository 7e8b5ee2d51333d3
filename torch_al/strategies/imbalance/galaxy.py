"""GALAXY (Zhang, Katz-Samuels and Nowak, ICML 2022): graph-based active learning at the extreme.

Each class's pool is a line (:mod:`torch_al.strategies.imbalance.class_orders`), labeled items
+1 (that class) or −1. On a line, a path from a +1 to a −1 item through unlabeled items crosses
the class's boundary; GALAXY asks for the middle of the shortest such path (S2 bisection,
Dasarathy et al., COLT 2015), one label at a time, cycling through the classes. When a class's
line has labeled items of both signs but no path, its graph gains higher-order edges (positions up
to ``order`` apart, for the rest of the round) and the search is tried once more; failing that, or
on a line without a +1 or without a −1, the label goes to a uniformly drawn unlabeled item.
"""

import torch
from torch import Tensor

from torch_al.checks import check_int
from torch_al.seeding import derived_seed
from torch_al.strategies.imbalance.class_orders import ClassLine, ClassLines, pool_probabilities
from torch_al.strategies.within_round import AsksWithinRound, RoundLabels


def shortest_path_middle(signs: Tensor, order: int) -> int | None:
    """The position GALAXY asks on one line: the middle of the shortest path from a +1 to a −1
    position whose inner positions are all unlabeled (0), with edges between positions up to
    ``order`` apart, none between a +1 and a −1. On the path listed from its −1 end, p_0 … p_L, the
    middle is p_⌊(L+1)/2⌋; among shortest paths, the smallest such position. None: no path."""
    places = signs.nonzero().flatten()
    return labeled_middle(places, signs[places].long(), order, signs.numel())


def labeled_middle(places: Tensor, signs: Tensor, order: int, size: int) -> int | None:
    """:func:`shortest_path_middle` from the labeled places alone (increasing, with their signs)
    on a line of ``size`` positions. GALAXY searches an order above 1 only on a line without an
    order-1 path, so that is all this answers for (a ValueError otherwise)."""
    middle = adjacent_middle(places, signs)
    if order == 1:
        return middle
    if middle is None:
        return _two_hop_middle(places, signs, order, size)
    raise ValueError(f"GALAXY searches order {order} only on a line without an order-1 path; this line has one (its middle: {middle})")


def _two_hop_middle(places: Tensor, signs: Tensor, order: int, size: int) -> int | None:
    """Order > 1 on a line with no order-1 path: every +1 next to a −1 among the labeled places
    is its neighbour on the line, so a path, if any, takes two hops (+1 → u → −1, u unlabeled
    within ``order`` of both), and its middle is u: the smallest such u."""
    low, high = _intersected(_merged(places[signs > 0], order, size), _merged(places[signs < 0], order, size))
    first_free = _first_unlabeled_from(low, places)
    inside = first_free <= high
    return int(first_free[inside][0]) if inside.any() else None


def _merged(centres: Tensor, radius: int, size: int) -> tuple[Tensor, Tensor]:
    """The positions within ``radius`` of an increasing list of centres, as disjoint increasing
    closed intervals (low, high): with one radius the intervals' highs increase too, so one starts
    a new group where it does not touch the one before."""
    low, high = (centres - radius).clamp(min=0), (centres + radius).clamp(max=size - 1)
    starts = torch.ones_like(centres, dtype=torch.bool)
    starts[1:] = low[1:] > high[:-1] + 1
    ends = torch.ones_like(starts)
    ends[:-1] = starts[1:]
    return low[starts], high[ends]


def _intersected(first: tuple[Tensor, Tensor], second: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The intersection of two lists of disjoint increasing intervals, as one (lows, highs)."""
    (first_low, first_high), (second_low, second_high) = first, second
    begin = torch.searchsorted(second_high, first_low)  # the first of second's that ends at or after each of first's starts
    stop = torch.searchsorted(second_low, first_high, right=True)  # past the last that starts at or before its end
    counts = (stop - begin).clamp(min=0)
    which = torch.repeat_interleave(torch.arange(first_low.numel()), counts)
    other = torch.arange(int(counts.sum())) - torch.repeat_interleave(counts.cumsum(0) - counts, counts) + begin[which]
    return torch.maximum(first_low[which], second_low[other]), torch.minimum(first_high[which], second_high[other])


def _first_unlabeled_from(positions: Tensor, places: Tensor) -> Tensor:
    """For each position, the first unlabeled position at or after it (``places``: the labeled
    ones, increasing, at least one): past the run of consecutive labeled places it falls on, if any."""
    run_start = torch.ones_like(places, dtype=torch.bool)
    run_start[1:] = places[1:] != places[:-1] + 1
    run_last = torch.ones_like(run_start)
    run_last[:-1] = run_start[1:]
    past_run = places[run_last][run_start.cumsum(0) - 1] + 1  # per labeled place: just past its run
    at = torch.searchsorted(places, positions).clamp(max=places.numel() - 1)
    return torch.where(places[at] == positions, past_run[at], positions)


def adjacent_middle(places: Tensor, signs: Tensor) -> int | None:
    """Order 1 from the labeled places alone (increasing, with their signs): a path is a run of
    unlabeled places between neighbouring labeled ones of opposite signs; the shortest run is the
    shortest path."""
    if places.numel() < 2:
        return None
    start, end = places[:-1], places[1:]
    gaps = end - start - 1
    crossing = (signs[:-1] != signs[1:]) & (gaps > 0)
    if not crossing.any():
        return None
    shortest = gaps[crossing].min()
    pick = crossing & (gaps == shortest)
    steps = (shortest + 2) // 2  # ⌊(L + 1) / 2⌋ with L = gap + 1
    middles = torch.where(signs[:-1] < 0, start + steps, end - steps)[pick]
    return int(middles.min())


class GALAXY(AsksWithinRound):
    """GALAXY: one label at a time, at the middle of the shortest unresolved stretch of a class's
    line, the classes in turn (class 0 alone for two classes: its line is the other's reversed).

    The model and its probabilities stay fixed within the round; only the labels grow. Cost: one
    forward of every pool item a round; one class line per class
    (:func:`torch_al.class_line_order`); then per label O(L log L) for L labeled items, at any order.

    Args:
        batch_size: scoring batch size.
        seed: seeds the uniform draws made when no class line has a path.
        progress: show a progress bar while scoring.
    """

    def __init__(self, batch_size: int = 256, seed: int = 0, progress: bool = True) -> None:
        self.batch_size = check_int(batch_size, "GALAXY: batch_size", 1)
        self.seed = seed
        self.progress = progress

    def asks(self, model, pool, budget, labels: RoundLabels):
        probabilities = pool_probabilities(self, model, pool, self.batch_size, self.progress)
        yield from galaxy_asks(probabilities, labels, budget, self.seed, pool.round)


def galaxy_asks(probabilities: Tensor, labels: RoundLabels, budget: int, seed: int, round_: int):
    """GALAXY's round on fixed probabilities (float64 Tensor[N, C]): yields one global index at a
    time (int64 Tensor[1]); ``labels`` holds its answer at the next step."""
    lines = ClassLines(probabilities)
    classes = [0] if probabilities.shape[1] == 2 else list(range(probabilities.shape[1]))
    orders = dict.fromkeys(classes, 1)  # each class line's graph order, raised when it has no path
    for step in range(budget):
        k = classes[step % len(classes)]
        position, orders[k] = _bisection(lines[k], labels, orders[k])
        if position is None:
            yield drawn_unlabeled(labels.labeled, seed, step, round_)
        else:
            yield lines[k].order[position : position + 1]


def drawn_unlabeled(labeled: Tensor, seed: int, step: int, round_: int) -> Tensor:
    """One unlabeled item drawn uniformly (int64 Tensor[1]), the same for the same (seed, step,
    round): items drawn uniformly until an unlabeled one comes (about one draw while most of the
    pool is unlabeled; no pass over the pool)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, "galaxy draw", step, round_))
    while True:
        item = torch.randint(labeled.numel(), (1,), generator=generator)
        if not labeled[item]:
            return item


def _bisection(line: ClassLine, labels: RoundLabels, order: int) -> tuple[int | None, int]:
    """The position to ask on ``line`` and the line's graph order from now on. Order 1 first (the
    S2 bisection proper); with no order-1 path, the line's raised order, raised once more when that
    fails on a line with a +1 and a −1 (higher-order edges cannot join a line that lacks either)."""
    places, signs = line.labeled_signs(labels.known, labels.label)
    size = line.size
    position = adjacent_middle(places, signs)
    if position is None and order > 1:
        position = labeled_middle(places, signs, order, size)
    if position is None and order < size - 1 and (signs > 0).any() and (signs < 0).any():
        order += 1
        position = labeled_middle(places, signs, order, size)
    return position, order
