"""Consistent MC-dropout masks: within one selection, pass t applies one mask per dropout module to
every item, so pass t is one weight sample θ_t shared by the whole pool (Kirsch et al., BatchBALD).

Drawing a mask per item instead (what a dropout module in training mode does to a batch) gives
every item its own weights: two copies of one input then get different predictions in the same
pass, and a joint entropy over items, BatchBALD's, measures mask noise rather than the model.

The mask of module m in pass t is drawn from a generator seeded by (selection seed, m, t) (and the
call's number, for a module called more than once in a forward), the selection seed itself derived
from (strategy seed, round): the same passes whatever the batch size, the chunking of passes or
the position of an item in the loader. Masks are kept per module
as Tensor[T, *item features] (channel dropout: Tensor[T, C, 1, ...]), O(T × features) memory.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from torch_al.seeding import derived_seed

# Dropout modules whose rule this file reproduces, as (class, drops whole channels, alpha dropout).
_COVERED: tuple[tuple[type[nn.Module], bool, bool], ...] = (
    (nn.Dropout, False, False),
    (nn.Dropout1d, True, False),
    (nn.Dropout2d, True, False),
    (nn.Dropout3d, True, False),
    (nn.AlphaDropout, False, True),
    (nn.FeatureAlphaDropout, True, True),
)
_SELU_SATURATION = 1.7580993408473766  # −λα of SELU: an alpha-dropped unit's value before the affine correction


def _rule(module: nn.Module) -> tuple[bool, bool] | None:
    """(drops channels, alpha) when ``module`` runs one of the covered dropout rules unchanged."""
    for kind, channels, alpha in _COVERED:
        if isinstance(module, kind) and type(module).forward is kind.forward:
            return channels, alpha
    return None


def dropout_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's dropout modules as (qualified name, module), in registration order.

    Raises:
        ValueError: a dropout module whose rule is not one of torch's six (a subclass with its own
            ``forward``): its masks cannot be made consistent, and per-item masks would be wrong.
    """
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.modules.dropout._DropoutNd):
            continue
        if _rule(module) is None:
            covered = ", ".join(kind.__name__ for kind, _, _ in _COVERED)
            raise ValueError(
                f"MC dropout: module {name!r} ({type(module).__name__}) overrides the dropout rule; consistent masks cover "
                f"{covered} only. Replace it by one of those, or see docs/methods.md (MC dropout) for functional dropout"
            )
        found.append((name or type(module).__name__, module))
    return found


class _ModuleMasks:
    """One module's pass masks: drawn on first use for each item shape, kept on the output's device."""

    def __init__(self, name: str, module: nn.Module, index: int, passes: int, seed: int) -> None:
        self.name, self.index, self.passes, self.seed = name, index, passes, seed
        self.p = float(module.p)
        self.channels, self.alpha = _rule(module)  # type: ignore[misc]
        self.cache: dict[tuple, Tensor] = {}
        self.calls = 0  # calls of the module in the current forward: each call has masks of its own

    def keep(self, item_shape: tuple[int, ...], call: int, like: Tensor) -> Tensor:
        """Tensor[T, *mask shape] of 1 (kept) and 0 (dropped) for the module's ``call``-th call in
        a forward, in ``like``'s dtype and device; without alpha, the kept entries are 1 / (1 − p)
        instead, so a pass costs one multiply."""
        shape = (item_shape[0], *[1] * (len(item_shape) - 1)) if self.channels and item_shape else item_shape
        key = (shape, call, like.dtype, like.device)
        if key not in self.cache:
            draws = []
            for t in range(self.passes):
                generator = torch.Generator().manual_seed(derived_seed(self.seed, self.index, call, t))
                draws.append(torch.rand(shape, generator=generator, dtype=torch.float64) >= self.p)
            keep = torch.stack(draws).to(torch.float64)
            self.cache[key] = (keep if self.alpha else keep / (1 - self.p)).to(like.device, like.dtype)
        return self.cache[key]

    def apply(self, x: Tensor, first: int, count: int, items: int) -> Tensor:
        """``x`` (count·items pass-major rows) with pass first + j's mask on rows j·items …"""
        if x.dim() == 0 or x.shape[0] != count * items:
            raise ValueError(
                f"MC dropout: module {self.name!r} got input of shape {tuple(x.shape)}; consistent masks need one row per "
                f"item and pass first ({count} passes × {items} items = {count * items} rows), as every dropout layer of a "
                f"batch-first model has"
            )
        call, self.calls = self.calls, self.calls + 1
        if self.p == 1:
            return torch.zeros_like(x)  # torch's dropout at p = 1, alpha dropout included
        keep = self.keep(tuple(x.shape[1:]), call, x)[first : first + count].unsqueeze(1)  # [count, 1, *mask]
        rows = x.unflatten(0, (count, items))
        if not self.alpha:
            return (rows * keep).flatten(0, 1)
        scale = ((_SELU_SATURATION**2 * self.p + 1) * (1 - self.p)) ** -0.5
        shift = _SELU_SATURATION * scale
        return (rows * keep * scale + shift * (keep - 1 + self.p)).flatten(0, 1)


class ConsistentMasks:
    """Applies the pass masks of every dropout module during the forwards of one selection.

    Inside :meth:`applied`, the dropout modules are in eval mode (their own forward is the identity
    and draws nothing) and a forward hook replaces each one's output by its input times the mask of
    its pass. Before each forward, :meth:`passes` says which passes the forward's pass-major rows
    hold: ``count`` passes × ``items`` items, starting at pass ``first``.

    Args:
        dropouts: the model's :func:`dropout_modules`.
        passes: T.
        seed: the selection's seed (derive it from the strategy's seed and the round).
    """

    def __init__(self, dropouts: list[tuple[str, nn.Module]], passes: int, seed: int) -> None:
        self.modules = [(module, _ModuleMasks(name, module, index, passes, seed)) for index, (name, module) in enumerate(dropouts)]
        self.first, self.count, self.items = 0, 1, 0

    def passes(self, first: int, count: int, items: int) -> None:
        self.first, self.count, self.items = first, count, items
        for _, masks in self.modules:
            masks.calls = 0

    @contextmanager
    def applied(self) -> Iterator["ConsistentMasks"]:
        modes = [(module, module.training) for module, _ in self.modules]
        handles = []
        try:
            for module, masks in self.modules:
                module.eval()
                handles.append(module.register_forward_hook(self._hook(masks)))
            yield self
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes:
                module.training = training

    def _hook(self, masks: _ModuleMasks):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
            return masks.apply(output, self.first, self.count, self.items)

        return hook
