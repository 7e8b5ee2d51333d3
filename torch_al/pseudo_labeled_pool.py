"""Training on the ledger's labels plus one round's pseudo-labels (CEAL), without writing them to the pool.

Pseudo-labels are guesses: they must never reach the ledger, a saved pool or the oracle's
bookkeeping. So they live beside the pool, in a :class:`PseudoLabelSet`, and training reads them
through a :class:`PseudoLabeledPool` view that a new round replaces.
"""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from torch_al.checks import as_indices, as_labels
from torch_al.pool import ActivePool


@dataclass(frozen=True)
class PseudoLabelSet:
    """Pseudo-labels for one round's training (not labels: they never enter the ledger).

    Attributes:
        indices: int64 Tensor[K] (CPU), distinct global indices, ascending.
        labels: int64 Tensor[K] (CPU), the predicted class of each index.
        threshold: the entropy threshold δ_t that chose them (CEAL).
    """

    indices: Tensor
    labels: Tensor
    threshold: float

    def __post_init__(self) -> None:
        for name in ("indices", "labels"):
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.dtype != torch.int64 or value.dim() != 1:
                raise TypeError(f"PseudoLabelSet.{name} must be a 1-D int64 Tensor, got {value!r}")
        if self.indices.shape != self.labels.shape:
            raise ValueError(f"PseudoLabelSet: {self.indices.numel()} indices but {self.labels.numel()} labels")

    def __len__(self) -> int:
        return self.indices.numel()


class PseudoLabeledPool(Dataset):
    """An :class:`ActivePool`'s training view with pseudo-labels added; the pool is only read.

    It answers what training code reads from a pool, so code written for one trains on both kinds
    of labels unchanged: ``labeled_indices`` (here: ledger-labeled ∪ pseudo-labeled, ascending),
    ``round``, ``len`` and ``view[i] -> (inputs_i, label_i)``. ``ActiveSampler(view)`` and
    ``DataLoader(view, sampler=...)`` work as with the pool. Where the ledger and a pseudo-label
    both hold an item (it was labeled after the pseudo-labels were made), the ledger wins. The
    ledger is read at each access, like the pool's own views.

    Args:
        pool: the :class:`ActivePool`.
        pseudo_labels: a :class:`PseudoLabelSet` (e.g. ``CEAL.last_pseudo_labels``), or None:
            then the view serves exactly the pool's labels.
    """

    def __init__(self, pool: ActivePool, pseudo_labels: PseudoLabelSet | None = None) -> None:
        self.pool = pool
        self.pseudo_labels = pseudo_labels
        self._has_pseudo = torch.zeros(len(pool), dtype=torch.bool)
        self._pseudo = torch.zeros(len(pool), dtype=torch.int64)
        if pseudo_labels is not None:
            indices = as_indices(pseudo_labels.indices, "pseudo-label indices", len(pool))
            self._has_pseudo[indices] = True
            self._pseudo[indices] = as_labels(pseudo_labels.labels, indices.numel())

    def __len__(self) -> int:
        return len(self.pool)  # global indices, as the pool's

    def __getitem__(self, index: int):
        if self._has_pseudo[index] and not self.pool.is_labeled(index):
            return self.pool.inputs_of(self.pool.dataset[index]), int(self._pseudo[index])
        return self.pool[index]  # the ledger's label, or the pool's KeyError for an item with neither

    @property
    def labeled_indices(self) -> Tensor:
        """int64 Tensor[L + K'], ascending: every item training sees (ledger ∪ pseudo-labels)."""
        return (self.pool.labeled_mask | self._has_pseudo).nonzero().flatten()

    @property
    def pseudo_indices(self) -> Tensor:
        """int64 Tensor[K'], ascending: the items served with their pseudo-label (not in the ledger)."""
        return (self._has_pseudo & ~self.pool.labeled_mask).nonzero().flatten()

    @property
    def round(self) -> int:
        return self.pool.round

    def __repr__(self) -> str:
        return f"PseudoLabeledPool({self.pool!r}, pseudo_labeled={self.pseudo_indices.numel()})"
