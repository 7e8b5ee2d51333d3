"""Class-balanced uncertainty: the batch filled towards the classes with the fewest labels.

A control for the imbalance methods: as cheap as entropy or margin, and with the one idea most
class-balancing query rules share. Each unlabeled item is scored by an uncertainty criterion and
counted for the class the model predicts for it. The batch is filled one pick at a time: the pick
goes to the class with the fewest labeled plus already picked items (ties to the lower class), as
its most uncertain remaining item predicted there (ties to the lower global index); a class with no
item predicted there left is passed over.
"""

import torch
from torch import Tensor

from torch_al.checks import LogitsCheck
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.strategies.base import Strategy, predict_probabilities
from torch_al.strategies.uncertainty.uncertainty_sampling import CRITERIA


def balanced_fill(scores: Tensor, predicted: Tensor, indices: Tensor, labeled_counts: Tensor, budget: int) -> tuple[Tensor, Tensor]:
    """(indices, scores) of ``budget`` picks among the candidates (``indices`` with their
    ``scores`` and ``predicted`` classes), each to the class with the fewest labeled plus picked
    items that still has a candidate, its highest score first (ties to the lower index)."""
    classes = labeled_counts.numel()
    by_index = torch.argsort(indices, stable=True)
    order = by_index[torch.sort(scores[by_index], descending=True, stable=True).indices]
    queues = [order[predicted[order] == c].tolist() for c in range(classes)]
    counts, heads, picks = labeled_counts.tolist(), [0] * classes, []
    for _ in range(budget):
        open_classes = [c for c in range(classes) if heads[c] < len(queues[c])]
        chosen = min(open_classes, key=lambda c: (counts[c], c))
        picks.append(queues[chosen][heads[chosen]])
        heads[chosen] += 1
        counts[chosen] += 1
    picks = torch.tensor(picks, dtype=torch.int64)
    return indices[picks], scores[picks]


class ClassBalanced(Strategy):
    """The most uncertain items (``criterion``: ``"entropy"``, ``"margin"`` or
    ``"least_confidence"``), the batch filled towards the classes with the fewest labels (module
    docstring). Cost: N̂ forwards. Over ranks, each rank sends its best ``budget`` candidates per
    predicted class; every rank fills from their union (exact: a class never takes more than
    ``budget``).

    Args:
        criterion: the uncertainty score.
        batch_size: scoring batch size.
        progress: show a progress bar while scoring.
    """

    def __init__(self, criterion: str = "entropy", batch_size: int = 256, progress: bool = True) -> None:
        if criterion not in CRITERIA:
            raise ValueError(f"ClassBalanced: criterion must be one of {sorted(CRITERIA)}, got {criterion!r}")
        self.criterion, self.batch_size, self.progress = criterion, batch_size, progress
        self._criterion = CRITERIA[criterion](progress=False)

    def query(self, model, pool, budget):
        candidates = pool.unlabeled_indices
        scores, predicted, classes = self._scored(model, pool, candidates)
        return balanced_fill(scores, predicted, candidates, labeled_counts(pool, classes), budget)

    def query_over_ranks(self, model, pool, budget, shard):
        scores, predicted, classes = shard.on_every_rank(lambda: self._scored(model, pool, shard.owned))
        classes = int(shard.all_reduced(torch.tensor(classes), torch.distributed.ReduceOp.MAX))
        best = torch.cat([best_of_class(scores, predicted, c, budget) for c in range(classes)])
        parts = shard.all_gathered((shard.owned[best], scores[best], predicted[best]))
        indices, gathered, predicted = (torch.cat([part[i] for part in parts]) for i in range(3))
        return balanced_fill(gathered, predicted, indices, labeled_counts(pool, classes), budget)[0]

    def _scored(self, model, pool: ActivePool, rows: Tensor) -> tuple[Tensor, Tensor, int]:
        """Uncertainty scores and predicted classes of the pool items ``rows`` (one forward each),
        and the model's class count (0 when ``rows`` is empty)."""
        if model is None:
            raise ValueError("ClassBalanced scores with a model; got model=None")
        if rows.numel() == 0:
            return torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0
        probabilities = predict_probabilities(model, inputs_loader(pool, rows, self.batch_size), self.progress, LogitsCheck("ClassBalanced", rows))
        self.charge(forward=rows.numel())
        return self._criterion.score(probabilities).cpu(), probabilities.argmax(1).cpu(), probabilities.shape[1]


def best_of_class(scores: Tensor, predicted: Tensor, c: int, count: int) -> Tensor:
    """Rows of the ``count`` highest scores predicted as class ``c`` (ties to the lower row)."""
    rows = torch.nonzero(predicted == c).flatten()
    return rows[torch.sort(scores[rows], descending=True, stable=True).indices[:count]]


def labeled_counts(pool: ActivePool, classes: int) -> Tensor:
    """Labeled items per class, for the model's ``classes`` classes (labels beyond them are not
    predicted, so they do not steer the fill)."""
    labels = pool.labels_of(pool.labeled_indices)
    return torch.bincount(labels[labels < classes], minlength=classes)
