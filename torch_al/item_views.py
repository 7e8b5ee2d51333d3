"""How a pool's items are shown to the people who label them: images as PNG (or the image file's
own bytes), text as text. The labeling page and the Label Studio export both show items through
:func:`view_item`; a pool of anything else passes ``render=``, a function from the item's inputs to
something :func:`view_item` shows (a string of text, an image tensor, a PIL image, a file path).
"""

import base64
import mimetypes
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
Render = Callable[[Any], Any]


@dataclass(frozen=True)
class ItemView:
    """One item as a person sees it: ``kind`` "image" with encoded bytes and their MIME type, or
    "text" with the text (``mime`` "text/plain")."""

    kind: Literal["image", "text"]
    content: bytes | str
    mime: str

    def data_url(self) -> str:
        """The image as a ``data:`` URL (what a Label Studio task can carry inline)."""
        if self.kind != "image":
            raise ValueError("only an image item has a data URL; a text item is shown as its text")
        return f"data:{self.mime};base64,{base64.b64encode(self.content).decode()}"


def view_item(inputs, render: Render | None = None) -> ItemView:
    """Turns an item's inputs (or ``render(inputs)``) into an :class:`ItemView`.

    Shown as they are: an :class:`ItemView`; image tensors or arrays ``(C, H, W)`` with C in
    {1, 3, 4} or ``(H, W)``, uint8 or floating point in [0, 1]; PIL images; a path
    (``os.PathLike``, or a ``str`` naming an existing file) to a .png/.jpg/.jpeg/.gif/.webp/.bmp
    file. Any other ``str`` is text. Anything else is a TypeError that asks for ``render=``.
    """
    value = render(inputs) if render is not None else inputs
    if isinstance(value, ItemView):
        return value
    if isinstance(value, os.PathLike) or (isinstance(value, str) and _names_image_file(value)):
        return _image_file(os.fspath(value))
    if isinstance(value, str):
        return ItemView("text", value, "text/plain")
    if isinstance(value, np.ndarray):
        value = torch.tensor(value)  # a copy: the array may be read-only
    if isinstance(value, Tensor):
        return ItemView("image", png_bytes(value), "image/png")
    if _is_pil_image(value):
        return ItemView("image", _png(np.asarray(value.convert("RGBA" if "A" in value.getbands() else "RGB"))), "image/png")
    raise TypeError(
        f"cannot show an item of type {type(value).__name__}: give an image tensor (C, H, W), a PIL image, an image file path or a str of text, "
        "or pass render= (a function from the item's inputs to one of those, e.g. a tokenizer's decode for text)"
    )


def _names_image_file(text: str) -> bool:
    return len(text) < 4096 and text.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(text)


def _image_file(path: str) -> ItemView:
    mime = mimetypes.guess_type(path)[0]
    if not path.lower().endswith(IMAGE_SUFFIXES) or mime is None:
        raise ValueError(f"item file {path!r} is not an image this page can show (suffixes {', '.join(IMAGE_SUFFIXES)})")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"item image file {path!r} does not exist")
    with open(path, "rb") as f:
        return ItemView("image", f.read(), mime)


def _is_pil_image(value) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "getbands") and hasattr(value, "convert")


def png_bytes(image: Tensor) -> bytes:
    """Encodes an image tensor ``(C, H, W)`` (C = 1 grey, 3 RGB, 4 RGBA) or ``(H, W)``, uint8 or
    floating point in [0, 1], as PNG."""
    return _png(_as_uint8_hwc(image))


def _png(pixels: np.ndarray) -> bytes:
    """uint8 pixels ``(H, W, C)`` as PNG: one IDAT chunk, filter 0 on every row."""
    height, width, channels = pixels.shape
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * channels)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _as_uint8_hwc(image: Tensor) -> np.ndarray:
    shape = f"{image.dtype} tensor of shape {tuple(image.shape)}"
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3 or image.shape[0] not in (1, 3, 4) or image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"an image item must be (C, H, W) with C in 1, 3, 4, or (H, W); got a {shape} (pass render= to show it otherwise)")
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        return image.permute(1, 2, 0).contiguous().numpy()
    if not image.is_floating_point():
        raise ValueError(f"an image item must be uint8 or floating point in [0, 1]; got a {shape}")
    low, high = float(image.min()), float(image.max())
    if not (0.0 <= low and high <= 1.0):  # also refuses NaN
        raise ValueError(f"a floating-point image item must lie in [0, 1]; got values in [{low}, {high}] ({shape}): pass render= to rescale it")
    return (image.float() * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def rescaled(inputs):
    """A render for image tensors in any range (normalised inputs): each item scaled to [0, 1] by
    its own minimum and maximum (a constant item shows black)."""
    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        raise TypeError(f"rescaled shows floating-point image tensors, got {type(inputs).__name__}")
    low, high = inputs.min(), inputs.max()
    return (inputs - low) / (high - low) if high > low else torch.zeros_like(inputs)
