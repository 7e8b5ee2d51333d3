"""Attention stores for a whole dataset: EBA's integrated-gradient attention, K passes per image."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from torch_al.batches import check_labels, first_batch_store, num_samples, store_rows
from torch_al.checks import LogitsCheck
from torch_al.devices import model_device
from torch_al.nn.capture import LossFn, Tokens, sum_cross_entropy
from torch_al.nn.integrated_gradients import IntegratedGradients


@dataclass
class Attention:
    """Per-sample multi-scale attention of a dataset, rows in loader order.

    Attributes:
        attention: Tensor[N, L], float32 (float64 for float64 models): the pooled average
            gradient a_i of each layer, concatenated in layer order.
        labels: Tensor[N] int64, the labels the gradients were taken with.
        columns: layer name → its slice of the L columns, in the order the layers were given.
    """

    attention: Tensor
    labels: Tensor
    columns: dict[str, slice]


def compute_attention(
    model: nn.Module,
    loader: DataLoader,
    layers: Sequence[str | nn.Module],
    steps: int = 128,
    chunk: int = 16,
    baseline: float | Tensor = 0.0,
    labels: Tensor | Literal["argmax"] = "argmax",
    loss_fn: LossFn = sum_cross_entropy,
    channel_dim: int = 1,
    tokens: Tokens = "mean",
    progress: bool = True,
    check: LogitsCheck | None = None,
) -> Attention:
    """Runs a dataset through :class:`~torch_al.nn.IntegratedGradients` and fills an (N, L)
    attention store; each batch after the first adds straight into its rows of the store.

    Costs K forward/backward passes per image (``steps``), run ``chunk`` steps at a time; memory
    beyond the model's own is chunk·batch rows of activations plus the O(N·L) store.

    Args:
        model: the task model; outputs logits Tensor[B, classes] (or a tuple whose first item is).
        loader: batches of inputs, or of (inputs, ...) tuples, in a fixed order.
        layers, steps, chunk, baseline, loss_fn, channel_dim, tokens: as in ``IntegratedGradients``.
        labels: "argmax" for pseudo-labels ŷ = argmax f(x), or Tensor[N] int64 labels in loader
            order.
        progress: show a progress bar.
        check: validates each batch's raw outputs as logits (a strategy's :class:`LogitsCheck`,
            which rejects tuples); default: take the first item of a tuple, check nothing.
    """
    total = num_samples(loader)
    if total == 0:
        raise ValueError("the loader yields no samples: there is nothing to attend to")
    check_labels(labels, total)
    integrated_gradients = IntegratedGradients(model, layers, steps, baseline, chunk, loss_fn, channel_dim, tokens)
    device = model_device(model)
    used_labels = torch.empty(total, dtype=torch.int64, device=device)
    store: Tensor | None = None
    columns: dict[str, slice] = {}
    for x, rows in store_rows(tqdm(loader, desc="attention", disable=not progress), total, device):
        given = None if isinstance(labels, str) else labels[rows].to(device)
        rows_of_store = None if store is None else {name: store[rows, span] for name, span in columns.items()}
        batch_check = None if check is None else check.subset(torch.arange(rows.start, rows.stop))
        attention, batch_labels = integrated_gradients(x, given, out=rows_of_store, check=batch_check)
        used_labels[rows] = batch_labels
        if store is None:
            store, columns = first_batch_store(attention, total, rows)
    return Attention(store, used_labels, columns)
