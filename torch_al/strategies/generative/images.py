"""Reading a pool's items as images for the generative strategies (VAAL, M2-VAAL, BGADL): the shape
check before any training, batch checks, and seeded batch streams."""

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.strategies.generative.networks import check_image_shape


def pool_image_shape(name: str, pool: ActivePool, index: int) -> tuple[int, int, int]:
    """(C, H, W) of item ``index``'s input, which must be a floating-point image the
    :class:`~torch_al.strategies.generative.networks.ConvVAE` takes; otherwise a ValueError that
    starts with ``name``."""
    x = pool.inputs_of(pool.dataset[index])
    if not isinstance(x, Tensor) or not x.is_floating_point():
        what = f"a {x.dtype} tensor" if isinstance(x, Tensor) else f"a {type(x).__name__}"
        raise ValueError(f"{name}: every pool input must be a floating-point image Tensor[C, H, W]; item {index} is {what}")
    return check_image_shape(name, x.shape)


def checked_images(name: str, x: Tensor, rows: Tensor, image_shape: tuple[int, int, int]) -> Tensor:
    """A batch of pool inputs Tensor[B, C, H, W] (items ``rows``), checked to be finite floating
    images of ``image_shape``; otherwise a ValueError naming the items."""
    if not x.is_floating_point() or tuple(x.shape[1:]) != image_shape:
        raise ValueError(f"{name}: every pool input must be a floating-point image of the first's shape {image_shape}; "
                         f"a batch holding items {rows[:3].tolist()}... has shape {tuple(x.shape[1:])} per item, dtype {x.dtype}")  # fmt: skip
    if not bool(x.isfinite().all()):
        row = int((~x.isfinite().flatten(1).all(1)).nonzero()[0])
        raise ValueError(f"{name}: pool item {int(rows[row])} has non-finite input values")
    return x


def image_batches(
    name: str,
    pool: ActivePool,
    indices: Tensor,
    count: int,
    batch_size: int,
    generator: torch.Generator,
    image_shape: tuple[int, int, int],
    device: torch.device,
) -> Iterator[tuple[Tensor, Tensor]]:
    """``count`` batches (global indices Tensor[batch_size], checked images Tensor[batch_size, C,
    H, W] on ``device``) of the items of ``indices``: random permutations of them (from
    ``generator``) back to back, so a batch repeats items only when there are fewer than
    ``batch_size``."""
    needed = count * batch_size
    passes = [indices[torch.randperm(indices.numel(), generator=generator)] for _ in range(math.ceil(needed / indices.numel()))]
    stream = torch.cat(passes)[:needed]
    for rows, x in zip(stream.split(batch_size), inputs_loader(pool, stream, batch_size)):
        yield rows, checked_images(name, x, rows, image_shape).to(device)
