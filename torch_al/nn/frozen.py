"""Frozen-embedding mode: a frozen backbone's features, computed once, and the head trained on them."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class FeatureHead(nn.Module):
    """The trainable head of a frozen backbone, fed the backbone's stored features: a pool of
    features ``TensorDataset(features Tensor[N, D], labels)`` and this module as the model make
    every strategy run without the backbone.

    The features enter through one ``nn.Identity`` per stored layer (``layers.0``, ``layers.1``,
    ...: column blocks of ``widths``), which are its ``descriptor_layers``: PFK and PCC take z as
    the stored features themselves and g as the loss gradient with respect to them through the
    head (the head's backward is all a gradient costs); core-set, BADGE and Suggestive embed the
    input of the head's last ``nn.Linear``; BALD and the other MC-dropout strategies sample the
    head's dropout modules; a :class:`~torch_al.strategies.Committee` of heads serves the
    ensembles; the low-budget methods take the features as ``features=`` or through the head.

    Args:
        head: maps Tensor[B, D] (the layers' features side by side) to logits Tensor[B, C].
        widths: each stored layer's width, in column order (default: one layer of any width).

    Example: ``FeatureHead(nn.Linear(768, 10))``, or for two layers' features stored side by side
    ``FeatureHead(nn.Sequential(nn.Dropout(0.1), nn.Linear(1536, 10)), widths=(768, 768))``.
    """

    def __init__(self, head: nn.Module, widths: Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(head, nn.Module):
            raise TypeError(f"FeatureHead: head must be an nn.Module, got {type(head).__name__}")
        if widths is not None and (len(widths) == 0 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths)):
            raise ValueError(f"FeatureHead: widths must be positive ints, one per stored layer, got {widths!r}")
        self.widths = None if widths is None else tuple(widths)
        self.layers = nn.ModuleList(nn.Identity() for _ in range(len(self.widths or (0,))))
        self.head = head
        self.descriptor_layers = tuple(f"layers.{index}" for index in range(len(self.layers)))

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or (self.widths is not None and features.shape[1] != sum(self.widths)):
            expected = f"Tensor[B, {sum(self.widths)}]" if self.widths is not None else "Tensor[B, D]"
            raise ValueError(f"FeatureHead: the stored features must be {expected}; got shape {tuple(features.shape)}")
        blocks = features.split(list(self.widths or (features.shape[1],)), dim=1)
        outputs = [layer(block) for layer, block in zip(self.layers, blocks)]
        return self.head(outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1))  # one layer: no copy
