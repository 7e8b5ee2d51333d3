"""Small networks of the generative strategies: a convolutional β-VAE for images and the
per-item terms of its objective (VAAL, BGADL), Kingma et al.'s semi-supervised M2 model on the same
convolutional blocks (M2-VAAL), and an MLP discriminator on a latent space (VAAL, M2-VAAL)."""

import math
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


def conv_encoder(channels: int, width: int) -> nn.Sequential:
    """Images Tensor[B, channels, H, W] → features Tensor[B, 2·width·(H/4)·(W/4)]: two stride-2
    4×4 convolutions (``width``, 2·``width`` channels, ReLU), flattened."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),
        nn.Flatten(),
    )  # fmt: skip


def conv_decoder(channels: int, width: int) -> nn.Sequential:
    """The mirror of :func:`conv_encoder`: Tensor[B, 2·width, H/4, W/4] → Tensor[B, channels, H, W]
    (transposed convolutions, linear output for a squared-error reconstruction)."""
    return nn.Sequential(
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(width, channels, 4, 2, 1),
    )  # fmt: skip


def inner_shape(image_shape: tuple[int, int, int], width: int) -> tuple[int, int, int]:
    """The shape of :func:`conv_encoder`'s last feature map for one image, (2·width, H/4, W/4)."""
    return (2 * width, image_shape[1] // DOWNSAMPLING, image_shape[2] // DOWNSAMPLING)


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
        self._inner = inner_shape(self.image_shape, width)
        features = math.prod(self._inner)
        self.encoder = conv_encoder(channels, width)
        self.mean = nn.Linear(features, latent_dim)
        self.log_variance = nn.Linear(features, latent_dim)
        self.project = nn.Sequential(nn.Linear(latent_dim, features), nn.ReLU())
        self.decoder = conv_decoder(channels, width)

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


def gaussian_kl(mean: Tensor, log_variance: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_d (μ_d² + σ_d² − 1 − log σ_d²) per row: Tensor[B, D] × 2 → Tensor[B]."""
    return 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(1)


def elbo_terms(vae: ConvVAE, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The per-item terms of a VAE's objective on images Tensor[B, C, H, W]: the reconstruction
    error ‖x̂ − x‖² summed over pixels (x̂ decoded from z = μ + σ·ε, ε drawn from ``generator``),
    KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_d (μ_d² + σ_d² − 1 − log σ_d²), each Tensor[B], and the latent
    means μ, Tensor[B, latent_dim]."""
    reconstruction, mean, log_variance = vae(images, generator)
    squared_error = (reconstruction - images).pow(2).flatten(1).sum(1)
    return squared_error, gaussian_kl(mean, log_variance), mean


class M2VAE(nn.Module):
    """Kingma, Rezende, Mohamed & Welling's M2 (NIPS 2014) for images Tensor[B, C, H, W] (H, W
    multiples of 4), on :class:`ConvVAE`'s blocks: a classifier q(y | x) (its own
    :func:`conv_encoder` and a linear layer to ``classes`` logits), a Gaussian encoder
    q(z | x, y) (a second :func:`conv_encoder`, whose features are concatenated with y before the
    mean and log-variance layers) and a decoder p(x | y, z) (a linear layer from [z, y] to the
    feature map, then :func:`conv_decoder`). y is a Tensor[B, classes] row of class
    probabilities: one-hot for a given class, q(y | x) for the latent code :meth:`latent`.

    Args:
        image_shape: (C, H, W) of one image (see :func:`check_image_shape`).
        classes: number of classes K (>= 2).
        latent_dim: size of z.
        width: channels of the first convolution of each block.
    """

    def __init__(self, image_shape: Sequence[int], classes: int, latent_dim: int = 32, width: int = 32) -> None:
        super().__init__()
        channels, height, width_px = check_image_shape("M2VAE", image_shape)
        self.image_shape = (channels, height, width_px)
        self.classes, self.latent_dim = classes, latent_dim
        self._inner = inner_shape(self.image_shape, width)
        features = math.prod(self._inner)
        self.classifier = nn.Sequential(conv_encoder(channels, width), nn.Linear(features, classes))
        self.encoder = conv_encoder(channels, width)
        self.mean = nn.Linear(features + classes, latent_dim)
        self.log_variance = nn.Linear(features + classes, latent_dim)
        self.project = nn.Sequential(nn.Linear(latent_dim + classes, features), nn.ReLU())
        self.decoder = conv_decoder(channels, width)

    def classify(self, x: Tensor) -> Tensor:
        """Tensor[B, C, H, W] → the logits of q(y | x), Tensor[B, classes]."""
        return self.classifier(x)

    def posterior(self, features: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder features Tensor[B, F] (``self.encoder(x)``) and y Tensor[B, classes] →
        (μ, log σ²) of q(z | x, y), each Tensor[B, latent_dim]. Split from the convolutions so
        that one pass of x serves every class."""
        features = torch.cat([features, y], 1)
        return self.mean(features), self.log_variance(features)

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """z Tensor[B, latent_dim] and y Tensor[B, classes] → the mean of p(x | y, z), Tensor[B, C, H, W]."""
        return self.decoder(self.project(torch.cat([z, y], 1)).view(-1, *self._inner))

    def latent(self, x: Tensor) -> Tensor:
        """The latent code [μ(x, y'), y'] with y' = q(y | x), Tensor[B, latent_dim + classes]: the
        space M2-VAAL's discriminator and distance rules work in (the probabilities are its last
        ``classes`` columns)."""
        return self.code(self.encoder(x), self.classify(x).softmax(1))

    def code(self, features: Tensor, probabilities: Tensor) -> Tensor:
        """:meth:`latent` from encoder features Tensor[B, F] and q(y | x) Tensor[B, classes]."""
        return torch.cat([self.posterior(features, probabilities)[0], probabilities], 1)


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
