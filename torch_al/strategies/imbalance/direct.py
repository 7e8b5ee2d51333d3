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

import math

import torch
from torch import Tensor

from torch_al.checks import check_int
from torch_al.seeding import derived_seed
from torch_al.strategies.imbalance.class_orders import ClassLine, ClassLines, pool_probabilities
from torch_al.strategies.within_round import AsksWithinRound, RoundLabels


def threshold_scores(signs: Tensor) -> Tensor:
    """``acc[h]`` for thresholds h = 0 … N (int64 Tensor[N + 1])."""
    before = torch.nn.functional.pad(signs.cumsum(0), (1, 0))
    return 2 * before - signs.sum()


def uncertain_region(signs: Tensor) -> tuple[int, int]:
    """(I, J): from the last +1 before the first −1 (0 when a −1 or nothing comes first) to the
    last −1 after the last +1 (N − 1 when a +1 or nothing comes last)."""
    labeled = signs.nonzero().flatten()
    negatives = (signs[labeled] < 0).nonzero().flatten()
    positives = (signs[labeled] > 0).nonzero().flatten()
    if negatives.numel() == 0:
        start = int(labeled[-1]) if labeled.numel() else 0
    else:
        first_negative = int(negatives[0])
        start = int(labeled[first_negative - 1]) if first_negative > 0 else 0
    if positives.numel() == 0:
        end = int(labeled[0]) if labeled.numel() else signs.numel() - 1
    else:
        last_positive = int(positives[-1])
        end = int(labeled[last_positive + 1]) if last_positive + 1 < labeled.numel() else signs.numel() - 1
    return start, end


def shrunk_region(signs: Tensor, start: int, end: int, target: int, coin: torch.Generator) -> tuple[int, int]:
    """Moves the region's ends inward, the end whose threshold scores lower first (a fair coin on
    ties), until at most ``target`` unlabeled positions are left inside."""
    acc = threshold_scores(signs).tolist()
    unlabeled = (signs == 0).tolist()
    left = sum(unlabeled[start : end + 1])
    while left > target:
        if acc[start] < acc[end] or (acc[start] == acc[end] and torch.rand((), generator=coin) < 0.5):
            left -= unlabeled[start]
            start += 1
        else:
            left -= unlabeled[end]
            end -= 1
    return start, end


def nearest_to_threshold(signs: Tensor, count: int) -> Tensor:
    """Up to ``count`` unlabeled positions nearest the best threshold h (``argmax acc``, the
    smallest on ties), in the order h − 1, h, h − 2, h + 1, …"""
    best = int(torch.argmax(threshold_scores(signs)))  # the first maximum
    size = signs.numel()
    before = torch.arange(best - 1, -1, -1)
    after = torch.arange(best, size)
    steps = max(before.numel(), after.numel())
    alternating = torch.stack([torch.nn.functional.pad(before, (0, steps - before.numel()), value=-1), torch.nn.functional.pad(after, (0, steps - after.numel()), value=-1)], 1).flatten()
    walk = alternating[alternating >= 0]
    return walk[signs[walk] == 0][:count]


class DIRECT(AsksWithinRound):
    """DIRECT: each class's optimal separation threshold, searched with batches of
    ``annotators`` labels, then the rest of the budget around the thresholds (module docstring).

    The model stays fixed within the round. Every random choice (the draws in the uncertain
    region, the coin on tied ends, the order of the classes in the second phase) comes from
    (seed, round, class, batch). Cost: one forward of every pool item a round; a sort of the pool
    per class; O(N) per batch of labels.

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
            yield line.order[nearest_to_threshold(line.signs(labels.known, labels.label), share)]


def _searched(line: ClassLine, labels: RoundLabels, labels_left: int, annotators: int, seed: int, round_: int):
    """Class ``line.k``'s search: yields its batches (global indices) as it goes."""
    signs = line.signs(labels.known, labels.label)
    start, end = uncertain_region(signs)
    batch = 0
    while labels_left > 0:
        size = min(annotators, labels_left)
        inside = (signs[start : end + 1] == 0).nonzero().flatten() + start
        if inside.numel() == 0:
            return
        drawn = inside[torch.randperm(inside.numel(), generator=_generator(seed, "draw", round_, line.k, batch))[:size]]
        yield line.order[drawn]
        signs = line.signs(labels.known, labels.label)
        left, batches_to_come = int((signs[start : end + 1] == 0).sum()), labels_left // annotators
        if left > 0 and batches_to_come > 1:
            target = math.ceil(left / left ** (1 / batches_to_come))
            start, end = shrunk_region(signs, start, end, target, _generator(seed, "coin", round_, line.k, batch))
        labels_left -= size
        batch += 1


def _generator(seed: int, *purpose) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, "direct", *purpose))
