"""Input checks shared by the pool, the strategies and the loop, and the dataset fingerprint."""

import hashlib
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace
from numbers import Real

import numpy as np
import torch
from torch import Tensor

FINGERPRINT_SAMPLES = 8


def as_indices(values, name: str, size: int) -> Tensor:
    """Global indices → int64 Tensor[K] on the CPU; rejects bools, floats, repeats and out-of-range values."""
    if isinstance(values, Tensor):
        if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
            raise TypeError(f"{name} must hold integer indices, got a {values.dtype} tensor")
        tensor = values.detach().to("cpu", torch.int64)
    else:
        array = np.asarray(values)
        if array.size and (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer)):
            raise TypeError(f"{name} must hold integer indices, got {array.dtype} values")
        tensor = torch.as_tensor(array.astype(np.int64))
    if tensor.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    bad = tensor[(tensor < 0) | (tensor >= size)]
    if bad.numel():
        raise IndexError(f"{name} out of range: {bad[:5].tolist()} not in [0, {size}) (the dataset has {size} items)")
    unique, counts = torch.unique(tensor, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{name} contain repeats: {unique[counts > 1][:5].tolist()}")
    return tensor


def as_labels(values, count: int) -> Tensor:
    """Class labels → int64 Tensor[count]; a float, bool or string label is an error, not a cast."""
    if isinstance(values, Tensor):
        if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
            raise TypeError(f"labels must be integer class labels, got a {values.dtype} tensor")
        tensor = values.detach().to("cpu", torch.int64)
    else:
        items = list(values) if isinstance(values, (Sequence, np.ndarray)) and not isinstance(values, str) else None
        if items is None:
            raise TypeError(f"labels must be a sequence or tensor of ints, got {type(values).__name__}")
        wrong = [v for v in items if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))]
        if wrong:
            raise TypeError(f"labels must be ints, got {type(wrong[0]).__name__} {wrong[0]!r}")
        tensor = torch.tensor([int(v) for v in items], dtype=torch.int64)
    if tensor.dim() != 1 or tensor.numel() != count:
        raise ValueError(f"expected {count} labels (one per index), got shape {tuple(tensor.shape)}")
    return tensor


def check_class_names(classes) -> tuple[str, ...]:
    """Class names: a sequence (not a str) of at least two distinct non-empty strings → a tuple."""
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError(f"classes must be a sequence of class names (str), got {type(classes).__name__}")
    names = tuple(classes)
    wrong = [name for name in names if not isinstance(name, str) or not name.strip()]
    if wrong:
        raise TypeError(f"class names must be non-empty strings, got {wrong[0]!r}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"classes must be at least two distinct names, got {list(names)}")
    return names


def check_int(value, name: str, minimum: int) -> int:
    """An int (not a bool) >= ``minimum``; ``name`` says what it is in the error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le}


def check_real(value, name: str, *, at_least: float | None = None, above: float | None = None, at_most: float | None = None) -> float:
    """A finite real number (an int or float, not a bool) as a float, within the bounds given
    (``at_least`` <= value, ``above`` < value, value <= ``at_most``; None: no such bound);
    ``name`` says what it is in the error."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float, got {value!r} ({type(value).__name__})")
    bounds = {">=": at_least, ">": above, "<=": at_most}
    wanted = {sign: bound for sign, bound in bounds.items() if bound is not None}
    if not math.isfinite(value) or not all(_COMPARE[sign](value, bound) for sign, bound in wanted.items()):
        conditions = "".join(f" {'and ' if i else ''}{sign} {bound:g}" for i, (sign, bound) in enumerate(wanted.items()))
        raise ValueError(f"{name} must be a finite float{conditions}, got {value!r}")
    return float(value)


def check_validation_set(name: str, validation) -> tuple[Tensor, Tensor]:
    """(inputs Tensor[M, ...], int64 labels Tensor[M]) with M >= 1: a held-out labeled set; the
    labels come back on the CPU. ``name`` (the strategy) starts the error."""
    inputs, labels = validation
    if labels.dim() != 1 or labels.dtype != torch.int64 or inputs.shape[0] != labels.shape[0] or labels.numel() == 0:
        raise ValueError(f"{name}: validation must be (Tensor[M, ...], int64 Tensor[M]) with M >= 1, got {tuple(inputs.shape)} and {tuple(labels.shape)} {labels.dtype}")
    return inputs, labels.cpu()


def check_budget(budget, available: int) -> int:
    """A budget is an int in [0, available]."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise TypeError(f"budget must be an int, got {type(budget).__name__}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if budget > available:
        raise ValueError(f"budget {budget} is larger than the {available} unlabeled items left in the pool")
    return int(budget)


def output_logits(outputs):
    """A model's logits: its outputs, or the Tensor ``logits`` field of an output object (a Hugging
    Face ``ModelOutput``); anything else is returned as it is, for the checks to name."""
    logits = getattr(outputs, "logits", None)
    return logits if not isinstance(outputs, Tensor) and isinstance(logits, Tensor) else outputs


def first_output(outputs) -> Tensor:
    """The logits of a model called outside a strategy (no :class:`LogitsCheck`): the first item
    of a tuple or list, else :func:`output_logits`."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else output_logits(outputs)


def check_logits(name: str, logits: object, batch_size: int, global_indices: Tensor | None = None, *, min_classes: int = 2, item: str = "pool item") -> Tensor:
    """A model's outputs for a batch of ``batch_size`` inputs, checked to be finite floating logits
    Tensor[batch_size, C >= min_classes], and returned. ``name`` (the strategy) starts every
    message; a non-finite row is named by ``global_indices[row]`` (CPU, one per row), or by the
    row itself when None. Costs one host sync."""
    logits = check_logits_shape(name, logits, batch_size, min_classes=min_classes)
    check_finite(name, logits, global_indices, item=item)
    return logits


def check_logits_shape(name: str, logits: object, batch_size: int, *, min_classes: int = 2) -> Tensor:
    """:func:`check_logits` without the finiteness check: metadata only, no host sync."""
    expected = "logits of shape (N, C)"
    logits = output_logits(logits)
    if not isinstance(logits, Tensor):
        raise ValueError(f"{name}: the model must return {expected} as a Tensor; got a {type(logits).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"{name}: the model must return {expected}; got shape {tuple(logits.shape)}")
    if logits.shape[1] < min_classes:
        # Every strategy here softmaxes or argmaxes over the classes: over a single logit (a
        # binary model with one output, say) every score and pseudo-label would be the same.
        raise ValueError(f"{name}: the model must return {expected} with C >= {min_classes} (one logit per class); got shape {tuple(logits.shape)}")
    if logits.shape[0] != batch_size:
        raise ValueError(f"{name}: the model must return {expected} with N = {batch_size}, the batch size; got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"{name}: the model must return floating-point {expected}; got dtype {logits.dtype}")
    return logits


def check_finite(name: str, values: Tensor, global_indices: Tensor | None = None, *, what: str = "logits", item: str = "pool item") -> None:
    """Raises a ValueError naming the first row of ``values`` (Tensor[B, ...]) that holds a NaN
    or an inf, by ``global_indices[row]`` (or the row when None)."""
    if bool(values.isfinite().all()):  # the one host sync; the search below runs only on failure
        return
    row = int((~values.isfinite().reshape(values.shape[0], -1).all(1)).nonzero()[0])
    kind = "nan" if bool(values[row].isnan().any()) else "inf"
    index = row if global_indices is None else int(global_indices[row])
    raise ValueError(f"{name}: the model returned non-finite {what} ({kind}) for {item} {index}")


@dataclass(frozen=True)
class LogitsCheck:
    """:func:`check_logits` bound to a strategy and a loader, for the functions that run the model
    batch by batch (they know loader rows, not pool items).

    Attributes:
        name: the strategy's class name, first in every message.
        indices: int64 Tensor[N] (CPU), the global index of each loader row, or None: the row itself.
        item: what an index counts, e.g. ``"pool item"`` or ``"validation item"``.
        min_classes: the least C the strategy works with.
    """

    name: str
    indices: Tensor | None = None
    item: str = "pool item"
    min_classes: int = 2

    def __call__(self, outputs: object, start: int, rows: int) -> Tensor:
        """The logits of loader rows ``start .. start + rows``."""
        return check_logits(self.name, outputs, rows, self._global(start, rows), min_classes=self.min_classes, item=self.item)

    def shape(self, outputs: object, rows: int) -> Tensor:
        """Type, shape and dtype of ``rows`` rows of logits, with no host sync (for models run
        several times per batch, whose finiteness is checked once per batch with :meth:`finite`)."""
        return check_logits_shape(self.name, outputs, rows, min_classes=self.min_classes)

    def finite(self, values: Tensor, start: int, what: str = "logits") -> None:
        """``values`` Tensor[B, ...] belong to loader rows ``start .. start + B``."""
        check_finite(self.name, values, self._global(start, values.shape[0]), what=what, item=self.item)

    def _global(self, start: int, rows: int) -> Tensor:
        return torch.arange(start, start + rows) if self.indices is None else self.indices[start : start + rows]

    def subset(self, positions: Tensor) -> "LogitsCheck":
        """The check for a loader whose row i is this loader's row ``positions[i]`` (a batch, or
        the copies of its items)."""
        return replace(self, indices=positions if self.indices is None else self.indices[positions])


def _update(digest, value) -> None:
    if isinstance(value, Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    elif isinstance(value, np.ndarray):
        digest.update(f"A{value.dtype}{value.shape}".encode() + np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (tuple, list)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _update(digest, item)
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(f"K{key}".encode())
            _update(digest, value[key])
    elif isinstance(value, (int, float, str, bytes, bool)) or value is None:
        digest.update(f"V{value!r}".encode())
    elif hasattr(value, "tobytes"):  # PIL images and similar buffers
        digest.update(value.tobytes())
    else:  # an object whose repr may hold a memory address: its type is all that is stable
        digest.update(f"O{type(value).__qualname__}".encode())


def dataset_fingerprint(dataset) -> dict:
    """Size plus a SHA-256 of a few evenly spaced items: cheap, and enough to tell datasets apart."""
    size = len(dataset)
    digest = hashlib.sha256()
    positions = sorted({round(k * (size - 1) / (FINGERPRINT_SAMPLES - 1)) for k in range(FINGERPRINT_SAMPLES)}) if size else []
    for position in positions:
        digest.update(f"#{position}".encode())
        _update(digest, dataset[position])
    return {"size": size, "sample_sha256": digest.hexdigest()[:16]}
