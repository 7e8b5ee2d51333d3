"""Descriptor stores for a whole dataset: one forward and one backward per batch, pooled on the fly."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from torch_al.batches import check_labels, first_batch_store, num_samples, store_rows
from torch_al.checks import LogitsCheck, first_output
from torch_al.devices import model_device
from torch_al.nn.capture import CaptureKind, DescriptorCapture, LossFn, Tokens, backward_to_layers, sum_cross_entropy

LabelSearch = Callable[[Tensor, dict[str, slice]], Tensor]


@dataclass
class Descriptors:
    """Per-sample multi-scale descriptors of a dataset, rows in loader order.

    Attributes:
        features: Tensor[N, L] pooled layer outputs z, or None when not captured.
        gradients: Tensor[N, L] pooled loss gradients g = pool(∂L/∂z), or None.
        labels: Tensor[N] int64, the labels the gradients were taken with (or the argmax
            predictions when only features were captured).
        columns: layer name → its slice of the L columns, in the order the layers were given.
    """

    features: Tensor | None
    gradients: Tensor | None
    labels: Tensor
    columns: dict[str, slice]


def _logits_of(outputs, check: LogitsCheck | None, start: int, rows: int) -> Tensor:
    """The logits of loader rows ``start .. start + rows``: checked, or the first item of a tuple."""
    if check is not None:
        return check(outputs, start, rows)
    return first_output(outputs)


def compute_descriptors(
    model: nn.Module,
    loader: DataLoader,
    layers: Sequence[str | nn.Module],
    capture: CaptureKind = "both",
    labels: Tensor | Literal["argmax"] | LabelSearch = "argmax",
    loss_fn: LossFn = sum_cross_entropy,
    channel_dim: int = 1,
    tokens: Tokens = "mean",
    progress: bool = True,
    check: LogitsCheck | None = None,
) -> Descriptors:
    """Runs a dataset through the model and fills (N, L) feature and gradient stores.

    The model runs in eval mode (batch-norm uses its running statistics, as in the PFK authors'
    code) and is put back in its previous mode afterwards. Gradients are taken with respect to the
    input (no parameter gradients), so a batch costs one forward and one input-gradient
    backward; memory beyond the model's own is the O(N·L) stores.

    Args:
        model: the task model; outputs logits Tensor[B, K] (or a tuple whose first item is).
        loader: batches of inputs, or of (inputs, ...) tuples, in a fixed order.
        layers: layer names or submodules to describe (multi-scale).
        capture: "features", "gradients" or "both".
        labels: "argmax" for pseudo-labels ŷ = argmax f(x), Tensor[N] int64 labels in loader
            order (true labels, or any estimator's), or a label search: called with each batch's
            pooled features Tensor[B, L] and the layers' columns between its forward and its
            backward, it returns the batch's int64 labels Tensor[B] (PFK's ``validation_match``
            finds the nearest validation item so, with no second forward); needs
            ``capture="both"``.
        loss_fn: (logits, labels) -> summed loss; the sum makes each sample's gradient its own.
        channel_dim: channel dim of the layer outputs (1, or -1 for (B, T, C)).
        tokens: ``"mean"`` over every position, or ``"first"``: a (B, T, C) output's first token.
        progress: show a progress bar.
        check: validates each batch's raw outputs as logits (a strategy's :class:`LogitsCheck`,
            which rejects tuples); default: take the first item of a tuple, check nothing.
    """
    total = num_samples(loader)
    if total == 0:
        raise ValueError("the loader yields no samples: there is nothing to describe")
    check_labels(labels, total)
    if callable(labels) and capture != "both":
        raise ValueError(f"a label search reads the batch's features before its backward: capture must be 'both', got {capture!r}")

    kinds = {"features": ["features"], "gradients": ["gradients"], "both": ["features", "gradients"]}[capture]
    device = model_device(model)
    stores: dict[str, Tensor | None] = {}
    used_labels = torch.empty(total, dtype=torch.int64, device=device)
    was_training = model.training
    model.eval()
    try:
        with DescriptorCapture(model, layers, capture=capture, channel_dim=channel_dim, tokens=tokens) as hooks:
            for x, rows in store_rows(tqdm(loader, desc="descriptors", disable=not progress), total, device):
                if stores:
                    hooks.write_into(stores, rows)
                with torch.enable_grad():
                    x.requires_grad_(capture != "features" and x.is_floating_point())  # token ids: see backward_to_layers
                    logits = _logits_of(model(x), check, rows.start, x.shape[0])
                    batch_labels = _batch_labels(labels, logits, hooks, stores, rows, device)
                    if capture != "features":
                        backward_to_layers(hooks, loss_fn(logits, batch_labels), x)
                used_labels[rows] = batch_labels.detach()
                if not stores:
                    stores = {kind: first_batch_store(hooks.gradients if kind == "gradients" else hooks.features, total, rows, hooks.columns())[0] for kind in kinds}
            hooks.stop_writing()
    finally:
        model.train(was_training)
    columns = hooks.columns() if hooks.channels else {}
    return Descriptors(stores.get("features"), stores.get("gradients"), used_labels, columns)


def _batch_labels(labels, logits: Tensor, hooks: DescriptorCapture, stores: dict[str, Tensor | None], rows: slice, device: torch.device) -> Tensor:
    if isinstance(labels, str):
        return logits.argmax(1)
    if isinstance(labels, Tensor):
        return labels[rows].to(device)
    # The forward hooks have pooled this batch's features: into the store, or (first batch) the dict.
    features = stores["features"][rows] if stores else torch.cat(list(hooks.features.values()), dim=1)
    found = labels(features, hooks.columns())
    if not isinstance(found, Tensor) or found.shape != (rows.stop - rows.start,) or found.dtype != torch.int64:
        raise ValueError(f"the label search must return an int64 Tensor[{rows.stop - rows.start}], got {type(found).__name__} {getattr(found, 'shape', '')} {getattr(found, 'dtype', '')}")
    return found.to(device)


STANDARDISE_ROWS = 65536  # rows standardised at a time: temporaries of 64k·C, whatever N is


def standardise(store: Tensor, columns: dict[str, slice], out: Tensor | None = None) -> list[Tensor]:
    """Each sample's descriptor, per scale, standardised across that scale's channels (minus the
    mean, over the unbiased std + 1e-10), as the authors' code does: a dot product of two such
    vectors is the per-scale Pearson correlation weighted by the channel count. A one-channel
    scale has no spread and becomes 0. The scales are column views of one (N, L) store, ``out``
    (default a new one; ``out=store`` standardises in place), which the pfk_topk kernels read in
    place instead of packing the scales per tile. Rows go in blocks, so the extra memory is that
    of a block, not of the store."""
    standardised = torch.empty_like(store) if out is None else out
    for start in range(0, store.shape[0], STANDARDISE_ROWS):
        rows = slice(start, start + STANDARDISE_ROWS)
        for span in columns.values():
            x = store[rows, span]
            std = x.std(dim=1, keepdim=True, correction=1 if x.shape[1] > 1 else 0)
            centred = x - x.mean(dim=1, keepdim=True)
            torch.div(centred, std + 1e-10, out=standardised[rows, span])
    return [standardised[:, span] for span in columns.values()]
