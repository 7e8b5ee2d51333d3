"""Each class's pool as a line, from the model's probabilities: the 1-D problems GALAXY and DIRECT search.

For class k the pool is ordered from most to least k-like: first the items the model predicts as
k, by p_k (most confident first), then the others by p_k − max_j p_j, their margin to the class
they are predicted as (the authors' code orders them so: p_k − max_j p_j + 1e-8 · max_j p_j). Ties
go to the lower global index. A labeled item is +1 on class k's line when its label is k, else −1.
"""

import torch
from torch import Tensor, nn

from torch_al.checks import LogitsCheck
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


def one_vs_rest_keys(probabilities: Tensor) -> Tensor:
    """(N, C) float64 keys, higher is more k-like in column k: 1 + p_k where k is a predicted
    class (p_k is the row's maximum), p_k − max_j p_j (in [−1, 0]) elsewhere."""
    probabilities = probabilities.double()
    top = probabilities.max(1, keepdim=True).values
    return torch.where(probabilities == top, 1 + probabilities, probabilities - top)


def descending_order(keys: Tensor) -> Tensor:
    """``torch.sort(keys, descending=True, stable=True).indices`` for finite float64 ``keys``,
    about 3× faster on a CPU: the keys' bits as int64 integers in the same order, reversed with a
    bitwise not (order-exact, ties kept), then an ascending stable sort, which ATen runs as a radix
    sort on integers."""
    bits = (keys.double() + 0.0).view(torch.int64)  # + 0.0: −0.0 becomes +0.0, equal as floats
    ordered = torch.where(bits < 0, bits ^ torch.iinfo(torch.int64).max, bits)  # negative floats: magnitude bits reversed
    return torch.sort(torch.bitwise_not(ordered), stable=True).indices


class ClassLine:
    """Class k's line: ``order[position]`` is the global index there, ``position[index]`` its
    place (both int64 Tensor[N]); position 0 is the most k-like item."""

    def __init__(self, keys: Tensor, k: int) -> None:
        self.k = k
        self.size = keys.shape[0]
        self.order = descending_order(keys[:, k].contiguous())
        self.position = torch.empty_like(self.order)
        self.position[self.order] = torch.arange(self.order.numel())

    def labeled_signs(self, known: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """The places of the ``known`` items (global indices) on the line, increasing, and their
        signs: +1 labeled k, −1 another class (``label``: int64 Tensor[N] of labels)."""
        places, order = torch.sort(self.position[known])
        return places, torch.where(label[known[order]] == self.k, 1, -1)


class ClassLines:
    """The classes' lines, each built when first asked for (16·N bytes a class)."""

    def __init__(self, probabilities: Tensor) -> None:
        self.keys = one_vs_rest_keys(probabilities)
        self._lines: dict[int, ClassLine] = {}

    def __getitem__(self, k: int) -> ClassLine:
        if k not in self._lines:
            self._lines[k] = ClassLine(self.keys, k)
        return self._lines[k]
