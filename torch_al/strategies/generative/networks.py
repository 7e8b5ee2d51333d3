"""Small networks of the generative strategies (VAAL, BGADL): a convolutional β-VAE for images,
the per-item terms of its objective, and an MLP discriminator on its latent space."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

DOWNSAMPLING = 4  # two stride-2 convolutions: H and W must be multiples of 4


def check_image_shape(name: str, shape: Sequence[int]) -> tuple[int, int, int]:
    """The shape of one item, (C, H, W) with C >= 1 and H, W positive multiples of 4 (what
    :class:`ConvVAE` takes), as a tuple; otherwise a ValueError that starts with ``name`` and
    names the shape it got."""
    shape = tuple(int(size) for size in shape)
    if len(shape) != 3 or min(shape) < 1 or any(size % DOWNSAMPLING for size in shape[1:]):
        raise ValueError(
            f"{name}: every pool input must be an image Tensor[C, H, W] with H and W multiples of {DOWNSAMPLING} "
            f"(e.g. 1 x 28 x 28); got an input of shape {shape}"
        )
    return shape  # type: ignore[return-value]


class ConvVAE(nn.Module):
    """β-VAE for images Tensor[B, C, H, W] (H, W multiples of 4), after Sinha et al.'s VAAL
    network scaled down: two stride-2 4×4 convolutions (``width``, 2·``width`` channels, ReLU) to
    the mean and log-variance of a diagonal Gaussian posterior q(z | x) over ``latent_dim``
    dimensions; the decoder mirrors it with transposed convolutions back to Tensor[B, C, H, W]
    (linear output, for a squared-error reconstruction). No batch-norm: batch statistics would
    differ between labeled and unlabeled batches, and the discriminator could read them.

    Args:
        image_shape: (C, H, W) of one image (see :func:`check_image_shape`).
        latent_dim: size of z.
        width: channels of the first convolution.
    """

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 32, width: int = 32) -> None:
        super().__init__()
        channels, height, width_px = check_image_shape("ConvVAE", image_shape)
        self.image_shape = (channels, height, width_px)
        self.latent_dim = latent_dim
        self._inner = (2 * width, height // DOWNSAMPLING, width_px // DOWNSAMPLING)
        features = self._inner[0] * self._inner[1] * self._inner[2]
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        self.mean = nn.Linear(features, latent_dim)
        self.log_variance = nn.Linear(features, latent_dim)
        self.project = nn.Sequential(nn.Linear(latent_dim, features), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),
        )  # fmt: skip

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Tensor[B, C, H, W] → (μ, log σ²), each Tensor[B, latent_dim]."""
        features = self.encoder(x)
        return self.mean(features), self.log_variance(features)

    def decode(self, z: Tensor) -> Tensor:
        """Tensor[B, latent_dim] → reconstructions Tensor[B, C, H, W]."""
        return self.decoder(self.project(z).view(-1, *self._inner))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Tensor[B, C, H, W] → (reconstruction of z = μ + σ·ε, μ, log σ²), ε ~ N(0, I) drawn
        from ``generator`` (on x's device; None: torch's global RNG)."""
        mean, log_variance = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + noise * (0.5 * log_variance).exp()
        return self.decode(z), mean, log_variance


def elbo_terms(vae: ConvVAE, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The per-item terms of a VAE's objective on images Tensor[B, C, H, W]: the reconstruction
    error ‖x̂ − x‖² summed over pixels (x̂ decoded from z = μ + σ·ε, ε drawn from ``generator``),
    KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_d (μ_d² + σ_d² − 1 − log σ_d²), each Tensor[B], and the latent
    means μ, Tensor[B, latent_dim]."""
    reconstruction, mean, log_variance = vae(images, generator)
    squared_error = (reconstruction - images).pow(2).flatten(1).sum(1)
    kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(1)
    return squared_error, kl, mean


class LatentDiscriminator(nn.Module):
    """MLP on a latent code Tensor[B, latent_dim] → one logit per row, Tensor[B]: the log-odds
    that the item is labeled (VAAL's adversary; sigmoid of it is P(labeled | z)). ``depth``
    hidden ReLU layers of ``hidden`` units (the paper's network: 4 of 512).

    Args:
        latent_dim: size of z.
        hidden: units per hidden layer.
        depth: hidden layers (>= 1).
    """

    def __init__(self, latent_dim: int = 32, hidden: int = 512, depth: int = 4) -> None:
        super().__init__()
        sizes = [latent_dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for inputs, outputs in zip(sizes, sizes[1:]):
            layers += [nn.Linear(inputs, outputs), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(1)
