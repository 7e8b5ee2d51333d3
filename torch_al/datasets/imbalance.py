"""The papers' splits: a balanced validation set carved from the training split, and the
class-imbalanced pool (classes 5..9 decimated by a ratio r). All draws are seeded."""

from collections.abc import Sequence

import torch
from torch import Tensor


def balanced_split(labels: Tensor, size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Splits indices of ``labels`` into a class-balanced part of ``size`` items and the rest.

    Returns:
        (balanced, rest): sorted int64 index tensors; ``size / #classes`` items of every class go
        to ``balanced`` (the 60k → 10k validation + 50k pool split of the papers).
    """
    classes = labels.unique()
    if size % classes.numel():
        raise ValueError(f"size {size} is not a multiple of the {classes.numel()} classes")
    per_class = size // classes.numel()
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes.tolist():
        members = (labels == c).nonzero().flatten()
        if members.numel() < per_class:
            raise ValueError(f"class {c} has {members.numel()} items, fewer than the {per_class} a balanced split needs")
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]])
    balanced = torch.cat(chosen).sort().values
    keep = torch.ones(labels.numel(), dtype=torch.bool)
    keep[balanced] = False
    return balanced, keep.nonzero().flatten()


def imbalance(labels: Tensor, indices: Tensor, ratio: float, minority: Sequence[int] = (5, 6, 7, 8, 9), seed: int = 0) -> Tensor:
    """The class imbalance of the PFK/EBA experiments, as the authors' code makes it.

    Keeps every item of the majority classes (count M) and draws ``round(M / ratio)`` items
    uniformly from the union of the ``minority`` classes, so the totals are in ratio ``ratio``.

    Args:
        labels: int64 Tensor[N], the labels of the whole split.
        indices: int64 Tensor[K], the pool's indices into ``labels``.
        ratio: r >= 1 (1 draws as many minority items as there are majority items, up to all).

    Returns:
        The kept indices, sorted.
    """
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    is_minority = torch.isin(labels[indices], torch.tensor(list(minority)))
    majority, minority_items = indices[~is_minority], indices[is_minority]
    count = min(round(majority.numel() / ratio), minority_items.numel())
    generator = torch.Generator().manual_seed(seed)
    drawn = minority_items[torch.randperm(minority_items.numel(), generator=generator)[:count]]
    return torch.cat([majority, drawn]).sort().values
