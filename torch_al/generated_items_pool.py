"""Training on the ledger's labeled items plus generated ones (BGADL), without writing them to the pool.

Generated items are not pool items: nobody labels them, they have no place in the ledger, a saved
pool or the oracle's bookkeeping. The strategy that makes them keeps them (and its checkpoint
carries them); training reads them through a :class:`GeneratedItemsPool` view, where each takes
the ledger's label of the pool item it was generated from.
"""

import torch
from torch import Tensor
from torch.utils.data import Dataset

from torch_al.pool import ActivePool
from torch_al.pseudo_labeled_pool import PseudoLabeledPool


class GeneratedItemsPool(Dataset):
    """A training view: the items of ``base`` (an :class:`ActivePool`, or a
    :class:`PseudoLabeledPool` over one) followed by G generated items; the pool is only read.

    It answers what training code reads from a pool, so code written for one trains on it
    unchanged: ``len`` (N + G), ``round``, ``labeled_indices`` and ``view[i] -> (inputs_i,
    label_i)``; ``ActiveSampler(view)`` and ``DataLoader(view, sampler=...)`` work as with the pool.
    Indices 0 .. N − 1 are the base's (served by it); N + g is generated item g, whose label is
    the ledger's label of its source item, read at each access. A generated item whose source is
    not labeled (yet) is not served: it is missing from ``labeled_indices``, and reading it raises
    the pool's KeyError.

    Args:
        base: the pool, or the pool with pseudo-labels.
        inputs: Tensor[G, *item shape], the generated inputs (G may be 0).
        sources: int64 Tensor[G], the global index of the pool item each was generated from
            (repeats allowed: several items may come from one source).
    """

    def __init__(self, base: ActivePool | PseudoLabeledPool, inputs: Tensor, sources: Tensor) -> None:
        self.base = base
        self.pool: ActivePool = base.pool if isinstance(base, PseudoLabeledPool) else base
        if not isinstance(sources, Tensor) or sources.dtype != torch.int64 or sources.dim() != 1:
            raise TypeError(f"GeneratedItemsPool: sources must be a 1-D int64 Tensor, got {sources!r}")
        if not isinstance(inputs, Tensor) or inputs.dim() == 0 or inputs.shape[0] != sources.numel():
            raise ValueError(f"GeneratedItemsPool: inputs must be a Tensor[G, ...] with one row per source ({sources.numel()}), got {getattr(inputs, 'shape', type(inputs))}")
        if sources.numel() and not (0 <= int(sources.min()) and int(sources.max()) < len(self.pool)):
            raise ValueError(f"GeneratedItemsPool: sources must be global indices in [0, {len(self.pool)}), got values in [{int(sources.min())}, {int(sources.max())}]")
        self.inputs, self.sources = inputs, sources.cpu()

    def __len__(self) -> int:
        return len(self.base) + self.sources.numel()

    def __getitem__(self, index: int):
        if index < len(self.base):
            return self.base[index]
        generated = index - len(self.base)
        return self.inputs[generated], int(self.pool.labels_of(self.sources[generated : generated + 1])[0])

    @property
    def generated_indices(self) -> Tensor:
        """int64 Tensor[G'], ascending: the view indices of the generated items served (their
        source is labeled)."""
        return len(self.base) + self.pool.labeled_mask[self.sources].nonzero().flatten()

    @property
    def labeled_indices(self) -> Tensor:
        """int64 Tensor[L + G'], ascending: every item training sees (the base's, then the
        generated ones served)."""
        return torch.cat([self.base.labeled_indices, self.generated_indices])

    @property
    def round(self) -> int:
        return self.base.round

    def __repr__(self) -> str:
        return f"GeneratedItemsPool({self.base!r}, generated={self.sources.numel()})"


TrainingSet = ActivePool | PseudoLabeledPool | GeneratedItemsPool  # what a training function may be given
