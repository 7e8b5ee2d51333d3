"""What a loader's batches hold, for the functions that walk a loader once and fill a store per
sample (descriptors, attention, pseudo-labels): the inputs of a batch, the samples a loader
yields, the labels checked against them."""

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader


def inputs_of(batch) -> Tensor:
    """The inputs of a loader's batch: the batch itself, or the first item of an (inputs, ...) tuple."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise TypeError(f"batches must be a Tensor or an (inputs, ...) tuple, got {type(batch).__name__}")


def num_samples(loader: DataLoader) -> int:
    """How many samples a batching loader yields in one pass (``drop_last`` included)."""
    if loader.batch_size is None:
        raise ValueError("the loader must batch its samples (batch_size must not be None)")
    if loader.drop_last:
        return len(loader) * loader.batch_size
    return len(loader.sampler)


def check_labels(labels, total: int) -> None:
    """``labels`` is ``"argmax"``, an int64 Tensor[total] (one per sample) or a callable (a label
    search, :func:`~torch_al.descriptors.compute_descriptors`); else a ValueError."""
    if isinstance(labels, Tensor) and (labels.dim() != 1 or labels.shape[0] != total or labels.dtype != torch.int64):
        raise ValueError(
            f"labels must be an int64 Tensor[{total}] (one per sample the loader yields), "
            f"got shape {tuple(labels.shape)} dtype {labels.dtype}"
        )
    if not isinstance(labels, Tensor) and not callable(labels) and labels != "argmax":
        raise ValueError(f"labels must be 'argmax', an int64 Tensor or a label search (a callable), got {labels!r}")


def store_rows(loader, total: int, device: torch.device) -> Iterator[tuple[Tensor, slice]]:
    """Each batch's inputs on ``device`` with its rows of a per-sample store (``total`` rows, in
    loader order); a ValueError when the loader yields more or fewer samples than ``total``."""
    start = 0
    for batch in loader:
        x = inputs_of(batch).to(device)
        rows = slice(start, start + x.shape[0])
        if rows.stop > total:
            raise ValueError(f"the loader yielded more than the {total} samples it reports")
        yield x, rows
        start = rows.stop
    if start != total:
        raise ValueError(f"the loader yielded {start} samples but reports {total}")


def first_batch_store(per_layer: dict[str, Tensor], total: int, rows: slice, columns: dict[str, slice] | None = None) -> tuple[Tensor, dict[str, slice]]:
    """A zeroed (total, L) store for per-layer values Tensor[B, L_layer] and the first batch
    copied into ``rows``: channel counts and dtypes are known only once a batch has run. Each
    layer takes its ``columns`` (default: side by side in the dict's order)."""
    if columns is None:
        columns, width = {}, 0
        for name, values in per_layer.items():
            columns[name] = slice(width, width + values.shape[1])
            width += values.shape[1]
    width = max(span.stop for span in columns.values())
    store = next(iter(per_layer.values())).new_zeros((total, width))
    for name, span in columns.items():
        store[rows, span] = per_layer[name]
    return store, columns
