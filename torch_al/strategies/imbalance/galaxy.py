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
from torch import Tensor, nn

from torch_al.checks import check_int
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.strategies.base import predict_probabilities
from torch_al.strategies.cold_start import uniform_draw
from torch_al.strategies.imbalance.class_orders import ClassLine, ClassLines
from torch_al.strategies.within_round import AsksWithinRound, RoundLabels


def pool_probabilities(strategy, model: nn.Module | None, pool: ActivePool, batch_size: int, progress: bool) -> Tensor:
    """The model's float64 class probabilities of every pool item, labeled or not (one forward each)."""
    if model is None:
        raise ValueError(f"{type(strategy).__name__} orders the pool by a model's probabilities; got model=None")
    everything = torch.arange(len(pool))
    probabilities = predict_probabilities(model, inputs_loader(pool, everything, batch_size), progress)
    strategy.charge(forward=len(pool))
    return probabilities.double().cpu()


def shortest_path_middle(signs: Tensor, order: int) -> int | None:
    """The position GALAXY asks on one line: the middle of the shortest path from a +1 to a −1
    position whose inner positions are all unlabeled (0), with edges between positions up to
    ``order`` apart, none between a +1 and a −1. On the path listed from its −1 end, p_0 … p_L, the
    middle is p_⌊(L+1)/2⌋; among shortest paths, the smallest such position. None: no path."""
    places = signs.nonzero().flatten()
    return labeled_middle(places, signs[places].long(), order, signs.numel())


def labeled_middle(places: Tensor, signs: Tensor, order: int, size: int) -> int | None:
    """:func:`shortest_path_middle` from the labeled places alone (increasing, with their signs)
    on a line of ``size`` positions."""
    if order == 1:
        return adjacent_middle(places, signs)
    if adjacent_middle(places, signs) is None:
        return _two_hop_middle(places, signs, order, size)
    return _windowed_middle(places, signs, order, size)


def _two_hop_middle(places: Tensor, signs: Tensor, order: int, size: int) -> int | None:
    """Order > 1 on a line with no order-1 path: every +1 next to a −1 among the labeled places
    is its neighbour on the line, so a path, if any, takes two hops (+1 → u → −1, u unlabeled
    within ``order`` of both), and its middle is u: the smallest such u."""
    near_positive = _merged(places[signs > 0], order, size)
    near_negative = _merged(places[signs < 0], order, size)
    labeled = set(places.tolist())
    for low, high in _intersected(near_positive, near_negative):
        place = low
        while place in labeled:
            place += 1
        if place <= high:
            return place
    return None


def _merged(centres: Tensor, radius: int, size: int) -> list[tuple[int, int]]:
    """The positions within ``radius`` of a centre (increasing), as disjoint closed intervals."""
    intervals: list[tuple[int, int]] = []
    for centre in centres.tolist():
        low, high = max(centre - radius, 0), min(centre + radius, size - 1)
        if intervals and low <= intervals[-1][1] + 1:
            intervals[-1] = (intervals[-1][0], max(intervals[-1][1], high))
        else:
            intervals.append((low, high))
    return intervals


def _intersected(first: list[tuple[int, int]], second: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The intersection of two lists of disjoint increasing intervals."""
    both, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        low, high = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if low <= high:
            both.append((low, high))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return both


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


def _windowed_middle(places: Tensor, signs: Tensor, order: int, size: int) -> int | None:
    """Order > 1 on a line with order-1 paths (GALAXY itself never searches one at a higher
    order): the shortest length L from the labeled places alone; then L − 1 breadth-first
    layers from the +1 and from the −1 places through unlabeled ones, whose sums give every
    shortest path's positions. A path of L hops stays within L · order of its ends, so the layers
    run on the positions that near to a labeled place only (not the whole line)."""
    length = shortest_length(places, signs, order, size)
    if length is None:
        return None
    positions = _near(places, length * order, size)
    at = torch.searchsorted(places, positions).clamp(max=places.numel() - 1)
    line_signs = torch.where(places[at] == positions, signs[at], 0)
    steps = (length + 1) // 2
    from_positive, from_negative = (_layers(positions, line_signs, source, order, length - 1) for source in (1, -1))
    middle = (line_signs == 0) & (from_negative == steps) & (from_positive == length - steps)
    return int(positions[middle][0])


def _near(places: Tensor, radius: int, size: int) -> Tensor:
    """The positions within ``radius`` of a labeled place, increasing."""
    starts, ends = (places - radius).clamp(min=0), (places + radius).clamp(max=size - 1)
    counts = ends - starts + 1
    offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    return torch.unique(torch.repeat_interleave(starts, counts) + offsets)


def shortest_length(places: Tensor, signs: Tensor, order: int, size: int) -> int | None:
    """The length of the shortest +1 → −1 path at graph ``order`` (None: none), from the labeled
    places (increasing) and their signs. Some shortest path joins neighbouring labeled places of
    opposite signs (a path that jumps over a labeled place can end or start there instead, no
    longer); between such neighbours every place is unlabeled, so with d = q − p apart the path
    takes max(2, ⌈d / order⌉) hops, and neighbours at d = 1 need an unlabeled place within
    ``order`` of both (2 hops) or have no path."""
    if places.numel() < 2:
        return None
    start, end = places[:-1], places[1:]
    crossing = signs[:-1] != signs[1:]
    lengths = torch.clamp((end - start + order - 1) // order, min=2)
    low, high = (end - order).clamp(min=0), (start + order).clamp(max=size - 1)
    labeled_near = torch.searchsorted(places, high, right=True) - torch.searchsorted(places, low)
    joined = (end - start > 1) | (labeled_near < high - low + 1)
    usable = crossing & joined
    return int(lengths[usable].min()) if usable.any() else None


def _layers(positions: Tensor, signs: Tensor, source: int, order: int, limit: int) -> Tensor:
    """Hops (at most ``limit``) from the ``source``-signed positions to each unlabeled position
    through unlabeled ones (int64 Tensor like ``positions``, −1 unreached or farther);
    ``positions`` increasing, ``signs`` theirs."""
    hops = torch.full(positions.shape, -1, dtype=torch.int64)
    frontier = signs == source
    hops[frontier] = 0
    for layer in range(1, limit + 1):
        frontier = _within(positions, frontier, order) & (signs == 0) & (hops < 0)
        if not frontier.any():
            break
        hops[frontier] = layer
    return hops


def _within(positions: Tensor, mask: Tensor, order: int) -> Tensor:
    """Which ``positions`` lie at most ``order`` from a position of ``mask``."""
    marked = positions[mask]
    if marked.numel() == 0:
        return torch.zeros_like(mask)
    after = torch.searchsorted(marked, positions).clamp(max=marked.numel() - 1)
    before = (after - 1).clamp(min=0)
    return ((marked[after] - positions).abs() <= order) | ((positions - marked[before]).abs() <= order)


class GALAXY(AsksWithinRound):
    """GALAXY: one label at a time, at the middle of the shortest unresolved stretch of a class's
    line, the classes in turn (class 0 alone for two classes: its line is the other's reversed).

    The model and its probabilities stay fixed within the round; only the labels grow. Cost: one
    forward of every pool item a round; then per label O(L log L) for L labeled items (order 1),
    or O(N) per breadth-first layer once higher-order edges are needed.

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
            yield uniform_draw(labels.unlabeled, 1, seed, f"galaxy draw {step}", round_)
        else:
            yield lines[k].order[position : position + 1]


def _bisection(line: ClassLine, labels: RoundLabels, order: int) -> tuple[int | None, int]:
    """The position to ask on ``line`` and the line's graph order from now on. Order 1 first (the
    S2 bisection proper); with no order-1 path, the line's raised order, raised once more when that
    fails on a line with a +1 and a −1 (higher-order edges cannot join a line that lacks either)."""
    places, signs = line.labeled_signs(labels.known, labels.label)
    size = line.order.numel()
    position = adjacent_middle(places, signs)
    if position is None and order > 1:
        position = labeled_middle(places, signs, order, size)
    if position is None and order < size - 1 and (signs > 0).any() and (signs < 0).any():
        order += 1
        position = labeled_middle(places, signs, order, size)
    return position, order
