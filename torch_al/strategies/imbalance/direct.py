"""DIRECT (Nuggehalli, Zhang, Jain and Nowak, ICML 2025): active learning under imbalance (and label
noise) by each class's optimal separation threshold.

On class k's line (:mod:`torch_al.strategies.imbalance.class_orders`) a threshold h predicts k for
the positions before it; its score counts the labeled items it gets right minus those it gets
wrong, ``acc[h] = Σ_{j<h} s_j − Σ_{j≥h} s_j`` for signs s (+1 labeled k, −1 labeled another
class, 0 unlabeled). Fitting h to every label, rather than trusting each one as a bisection does,
is what makes it robust to wrong answers. A round has two phases (as the authors' LabelBench code):

1. **Search**, classes from the most to the least labeled: ``min(⌊⌊b/C⌋/2⌋, min_budget_per_class)``
   labels per class, asked ``annotators`` at a time (B1 people labeling in parallel), each batch
   drawn uniformly from the unlabeled positions between the last +1 before the first −1 and the
   last −1 after the last +1 (the uncertain region); after a batch, the region's ends move toward
   each other, the end with the lower ``acc`` first (a fair coin on ties), until about
   ``d^(1 − 1/β)`` of its d unlabeled positions are left, β the batches still to come.
2. **Around the threshold**: the rest of the budget split evenly over the classes in a random
   order; for each, the unlabeled positions nearest its best threshold ``argmax acc`` (ties to the
   smallest), alternately just before and just after it.
"""

import bisect
import math

import torch
from torch import Tensor
from torch.nn.functional import pad

from torch_al.checks import check_int
from torch_al.seeding import derived_seed
from torch_al.strategies.imbalance.class_orders import ClassLine, ClassLines, pool_probabilities
from torch_al.strategies.within_round import AsksWithinRound, RoundLabels

# Every function below reads a line from its labeled places alone (``places``: increasing int64
# positions; ``signs``: their ±1), so a step costs O(L) for L labels, not O(N) for N positions.


def best_threshold(places: Tensor, signs: Tensor) -> int:
    """``argmax acc`` over h = 0 … N, the smallest on ties: ``acc`` is constant from h = 0 to the
    first labeled place and from just after each labeled place to the next, so the first maximum
    starts one of these pieces."""
    scores = pad(2 * signs.cumsum(0), (1, 0)) - signs.sum()
    starts = pad(places + 1, (1, 0))
    return int(starts[torch.argmax(scores)])  # argmax: the first maximum


def uncertain_region(places: Tensor, signs: Tensor, size: int) -> tuple[int, int]:
    """(I, J): from the last +1 before the first −1 (0 when a −1 or nothing comes first) to the
    last −1 after the last +1 (N − 1 when a +1 or nothing comes last)."""
    negatives = (signs < 0).nonzero().flatten()
    positives = (signs > 0).nonzero().flatten()
    if negatives.numel() == 0:
        start = int(places[-1]) if places.numel() else 0
    else:
        first_negative = int(negatives[0])
        start = int(places[first_negative - 1]) if first_negative > 0 else 0
    if positives.numel() == 0:
        end = int(places[0]) if places.numel() else size - 1
    else:
        last_positive = int(positives[-1])
        end = int(places[last_positive + 1]) if last_positive + 1 < places.numel() else size - 1
    return start, end


def labeled_between(places: Tensor, start: int, end: int) -> Tensor:
    """The labeled places in [start, end]."""
    low, high = torch.searchsorted(places, torch.tensor([start, end + 1]))
    return places[low:high]


def unlabeled_count(places: Tensor, start: int, end: int) -> int:
    """How many positions of [start, end] are unlabeled."""
    return end - start + 1 - labeled_between(places, start, end).numel()


def unlabeled_at(ranks: Tensor, places: Tensor, start: int, end: int) -> Tensor:
    """The positions of the ``ranks``-th unlabeled positions (0 the first) of [start, end]."""
    inside = labeled_between(places, start, end)
    unlabeled_before = inside - start - torch.arange(inside.numel())  # before each labeled place, in the region
    return start + ranks + torch.searchsorted(unlabeled_before, ranks, right=True)


def shrunk_region(places: Tensor, signs: Tensor, start: int, end: int, target: int, coin: torch.Generator) -> tuple[int, int]:
    """Moves the region's ends inward one position at a time, the end whose threshold scores lower
    first (a fair coin on ties: one uniform draw from ``coin`` per tied step), until at most
    ``target`` unlabeled positions are left inside. ``acc`` at an end changes only when the end
    passes a labeled place, so the steps go by stretches of constant scores: O(L) stretches."""
    place_list, before = places.tolist(), [0, *signs.cumsum(0).tolist()]
    score = lambda h: 2 * before[bisect.bisect_left(place_list, h)] - before[-1]  # noqa: E731  acc[h]
    left = unlabeled_count(places, start, end)
    coins = torch.rand(end - start + 1, generator=coin)  # each step removes one position: enough for every tie
    used = 0
    while left > target:
        need = left - target
        first = bisect.bisect_left(place_list, start)
        start_room = place_list[first] - start if first < len(place_list) else need  # unlabeled steps before a labeled place
        last = bisect.bisect_left(place_list, end) - 1  # the last labeled place before end
        end_labeled = int(last + 1 < len(place_list) and place_list[last + 1] == end)
        end_moves = end - (place_list[last] if last >= 0 else -1)  # steps of end with the same score
        a, c = score(start), score(end)
        if a < c:
            moved = min(need, start_room)
            start, left = start + moved + (moved < need), left - moved  # past the labeled place unless done
        elif a > c:
            moved = min(need, end_moves - end_labeled)
            end, left = end - moved - end_labeled, left - moved  # a labeled end goes first, for free
        else:
            steps = coins[used : used + start_room + 1 + end_moves] < 0.5  # True: start moves
            start_steps = steps.cumsum(0)
            end_steps = torch.arange(1, steps.numel() + 1) - start_steps
            removed = start_steps.clamp(max=start_room) + (end_steps - end_labeled).clamp(min=0)
            stop = int(((removed >= need) | (start_steps > start_room) | (end_steps >= end_moves)).nonzero()[0])
            start, end, left = start + int(start_steps[stop]), end - int(end_steps[stop]), left - int(removed[stop])
            used += stop + 1
    return start, end


def nearest_to_threshold(places: Tensor, signs: Tensor, size: int, count: int) -> Tensor:
    """Up to ``count`` unlabeled positions nearest the best threshold h, in the order h − 1, h,
    h − 2, h + 1, … Within ``count`` + L steps each side holds ``count`` unlabeled positions (or
    ends), so the walk looks no further."""
    best = best_threshold(places, signs)
    reach = count + places.numel()
    before = torch.arange(best - 1, max(best - 1 - reach, -1), -1)
    after = torch.arange(best, min(best + reach, size))
    steps = max(before.numel(), after.numel())
    alternating = torch.stack([pad(before, (0, steps - before.numel()), value=-1), pad(after, (0, steps - after.numel()), value=-1)], 1).flatten()
    walk = alternating[alternating >= 0]
    return walk[~torch.isin(walk, places)][:count]


class DIRECT(AsksWithinRound):
    """DIRECT: each class's optimal separation threshold, searched with batches of
    ``annotators`` labels, then the rest of the budget around the thresholds (module docstring).

    The model stays fixed within the round. Every random choice (the draws in the uncertain
    region, the coin on tied ends, the order of the classes in the second phase) comes from
    (seed, round, class, batch). Cost: one forward of every pool item a round; one class line per
    class (:func:`torch_al.class_line_order`); per batch O(L log L) for L labeled items, and a
    draw among the region's unlabeled positions.

    Args:
        annotators: B1, labels asked at once in the search (people labeling in parallel).
        min_budget_per_class: the most labels a class's search may take.
        batch_size: scoring batch size.
        seed: seeds the random choices.
        progress: show a progress bar while scoring.
    """

    def __init__(self, annotators: int = 20, min_budget_per_class: int = 60, batch_size: int = 256, seed: int = 0, progress: bool = True) -> None:
        self.annotators = check_int(annotators, "DIRECT: annotators", 1)
        self.min_budget_per_class = check_int(min_budget_per_class, "DIRECT: min_budget_per_class", 0)
        self.batch_size = check_int(batch_size, "DIRECT: batch_size", 1)
        self.seed = seed
        self.progress = progress

    def asks(self, model, pool, budget, labels: RoundLabels):
        probabilities = pool_probabilities(self, model, pool, self.batch_size, self.progress)
        yield from direct_asks(probabilities, labels, budget, self.annotators, self.min_budget_per_class, self.seed, pool.round)


def direct_asks(probabilities: Tensor, labels: RoundLabels, budget: int, annotators: int, most_per_class: int, seed: int, round_: int):
    """DIRECT's round on fixed probabilities (float64 Tensor[N, C]): yields sub-batches of global
    indices; ``labels`` holds their answers at the next step."""
    lines, classes = ClassLines(probabilities), probabilities.shape[1]
    counts = torch.bincount(labels.label[labels.labeled], minlength=classes)
    per_class = min(budget // classes // 2, most_per_class)
    spent = 0
    for k in torch.sort(counts, descending=True, stable=True).indices.tolist():
        per_class = min(per_class, int((~labels.labeled).sum()))
        for batch in _searched(lines[k], labels, per_class, annotators, seed, round_):
            yield batch
            spent += batch.numel()
    rest = budget - spent
    order = torch.randperm(classes, generator=_generator(seed, "classes", round_))
    for place, k in enumerate(order.tolist()):
        share = rest * (place + 1) // classes - rest * place // classes
        line = lines[k]
        if share:
            yield line.order[nearest_to_threshold(*line.labeled_signs(labels.known, labels.label), line.size, share)]


def _searched(line: ClassLine, labels: RoundLabels, labels_left: int, annotators: int, seed: int, round_: int):
    """Class ``line.k``'s search: yields its batches (global indices) as it goes."""
    places, signs = line.labeled_signs(labels.known, labels.label)
    start, end = uncertain_region(places, signs, line.size)
    batch = 0
    while labels_left > 0:
        size = min(annotators, labels_left)
        inside = unlabeled_count(places, start, end)
        if inside == 0:
            return
        drawn = unlabeled_at(torch.randperm(inside, generator=_generator(seed, "draw", round_, line.k, batch))[:size], places, start, end)
        yield line.order[drawn]
        places, signs = line.labeled_signs(labels.known, labels.label)
        left, batches_to_come = unlabeled_count(places, start, end), labels_left // annotators
        if left > 0 and batches_to_come > 1:
            target = math.ceil(left / left ** (1 / batches_to_come))
            start, end = shrunk_region(places, signs, start, end, target, _generator(seed, "coin", round_, line.k, batch))
        labels_left -= size
        batch += 1


def _generator(seed: int, *purpose) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, "direct", *purpose))
