"""Descriptor stores for a whole dataset: one forward and one backward per batch, pooled on the fly."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from torch_al.batches import check_labels, first_batch_store, num_samples, store_rows
from torch_al.checks import LogitsCheck, first_output
from torch_al.devices import model_device
from torch_al.nn.capture import CaptureKind, DescriptorCapture, LossFn, backward_to_layers, sum_cross_entropy


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
    labels: Tensor | Literal["argmax"] = "argmax",
    loss_fn: LossFn = sum_cross_entropy,
    channel_dim: int = 1,
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
        labels: "argmax" for pseudo-labels ŷ = argmax f(x), or Tensor[N] int64 labels in loader
            order (true labels, or any estimator's).
        loss_fn: (logits, labels) -> summed loss; the sum makes each sample's gradient its own.
        channel_dim: channel dim of the layer outputs (1, or -1 for (B, T, C)).
        progress: show a progress bar.
        check: validates each batch's raw outputs as logits (a strategy's :class:`LogitsCheck`,
            which rejects tuples); default: take the first item of a tuple, check nothing.
    """
    total = num_samples(loader)
    if total == 0:
        raise ValueError("the loader yields no samples: there is nothing to describe")
    check_labels(labels, total)

    kinds = {"features": ["features"], "gradients": ["gradients"], "both": ["features", "gradients"]}[capture]
    device = model_device(model)
    stores: dict[str, Tensor | None] = {}
    used_labels = torch.empty(total, dtype=torch.int64, device=device)
    was_training = model.training
    model.eval()
    try:
        with DescriptorCapture(model, layers, capture=capture, channel_dim=channel_dim) as hooks:
            for x, rows in store_rows(tqdm(loader, desc="descriptors", disable=not progress), total, device):
                if stores:
                    hooks.write_into(stores, rows)
                with torch.enable_grad():
                    x.requires_grad_(capture != "features")
                    logits = _logits_of(model(x), check, rows.start, x.shape[0])
                    batch_labels = logits.argmax(1) if isinstance(labels, str) else labels[rows].to(device)
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


def standardise(store: Tensor, columns: dict[str, slice]) -> list[Tensor]:
    """Each sample's descriptor, per scale, standardised across that scale's channels (minus the
    mean, over the unbiased std + 1e-10), as the authors' code does: a dot product of two such
    vectors is the per-scale Pearson correlation weighted by the channel count. A one-channel
    scale has no spread and becomes 0. The scales are column views of one new (N, L) store, which
    the pfk_topk kernels read in place instead of packing the scales per tile."""
    standardised = torch.empty_like(store)
    for span in columns.values():
        x = store[:, span]
        std = x.std(dim=1, keepdim=True, correction=1 if x.shape[1] > 1 else 0)
        torch.div(x - x.mean(dim=1, keepdim=True), std + 1e-10, out=standardised[:, span])
    return [standardised[:, span] for span in columns.values()]
