"""Each class's pool as a line, from the model's probabilities: the 1-D problems GALAXY and DIRECT search.

For class k the pool is ordered from most to least k-like: first the items the model predicts as
k, by p_k (most confident first), then the others by p_k − max_j p_j, their margin to the class
they are predicted as (the authors' code orders them so: p_k − max_j p_j + 1e-8 · max_j p_j). Ties
go to the lower global index. A labeled item is +1 on class k's line when its label is k, else −1.
"""

import torch
from torch import Tensor, nn

from torch_al.checks import LogitsCheck
from torch_al.ops.class_line_order import class_line_order
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.strategies.base import predict_probabilities


def pool_probabilities(strategy, model: nn.Module | None, pool: ActivePool, batch_size: int, progress: bool) -> Tensor:
    """The model's float64 class probabilities of every pool item, labeled or not (one forward each)."""
    if model is None:
        raise ValueError(f"{type(strategy).__name__} orders the pool by a model's probabilities; got model=None")
    everything = torch.arange(len(pool))
    check = LogitsCheck(type(strategy).__name__, everything)
    probabilities = predict_probabilities(model, inputs_loader(pool, everything, batch_size), progress, check)
    strategy.charge(forward=len(pool))
    return probabilities.double().cpu()


class ClassLine:
    """Class k's line (:func:`torch_al.class_line_order`): ``order[position]`` is the global
    index there, ``position[index]`` its place (both int64 Tensor[N]); position 0 is the most
    k-like item."""

    def __init__(self, probabilities: Tensor, k: int) -> None:
        self.k = k
        self.order, self.position = class_line_order(probabilities, k)

    @property
    def size(self) -> int:
        """N, the positions on the line."""
        return self.order.numel()

    def labeled_signs(self, known: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """The places of the ``known`` items (global indices) on the line, increasing, and their
        signs: +1 labeled k, −1 another class (``label``: int64 Tensor[N] of labels)."""
        places, order = torch.sort(self.position[known])
        return places, torch.where(label[known[order]] == self.k, 1, -1)


class ClassLines:
    """The classes' lines, each built when first asked for (16·N bytes a class)."""

    def __init__(self, probabilities: Tensor) -> None:
        self.probabilities = probabilities
        self._lines: dict[int, ClassLine] = {}

    def __getitem__(self, k: int) -> ClassLine:
        if k not in self._lines:
            self._lines[k] = ClassLine(self.probabilities, k)
        return self._lines[k]
