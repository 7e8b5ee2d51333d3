"""VAAL: Sinha, Ebrahimi & Darrell, "Variational Adversarial Active Learning", ICCV 2019.

A β-VAE learns a latent space of labeled ∪ unlabeled images while a discriminator on its latent
means learns to tell labeled from unlabeled items; the VAE is also trained to fool it. The query is
the unlabeled items the discriminator is surest are unlabeled: what the labeled set does not cover.
"""

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from torch_al.checks import check_int, check_real
from torch_al.devices import model_device
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.cold_start import DrawsUntilLabeled
from torch_al.strategies.generative.images import checked_images, image_batches, pool_image_shape
from torch_al.strategies.generative.networks import ConvVAE, LatentDiscriminator, elbo_terms

VAE_STEPS = 2  # VAE updates per discriminator update, as in the authors' released code


class VAELoss(NamedTuple):
    """The terms of the VAE's objective on a labeled and an unlabeled batch (0-d Tensors):
    ``reconstruction`` and ``kl`` each sum the labeled batch's mean over its items and the
    unlabeled batch's; ``adversarial`` is −mean log D(μ_L) − mean log D(μ_U);
    ``total = reconstruction + β·kl + λ·adversarial``."""

    reconstruction: Tensor
    kl: Tensor
    adversarial: Tensor
    total: Tensor


def vae_loss(
    vae: ConvVAE,
    discriminator: LatentDiscriminator,
    labeled: Tensor,
    unlabeled: Tensor,
    beta: float = 1.0,
    adversary_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> VAELoss:
    """VAAL's VAE objective (the paper's L_trd + λ·L_adv) on images Tensor[B_L, C, H, W] and
    Tensor[B_U, C, H, W]. Per item: reconstruction ‖x̂ − x‖² summed over pixels (x̂ decoded from
    z = μ + σ·ε, ε drawn from ``generator``), KL(N(μ, σ²) ‖ N(0, I)) =
    ½ Σ_d (μ_d² + σ_d² − 1 − log σ_d²); the adversarial term asks the discriminator to call both
    batches labeled."""
    squared_error, kl, mean = elbo_terms(vae, torch.cat([labeled, unlabeled]), generator)
    logits = discriminator(mean)
    split = labeled.shape[0]
    reconstruction_term = squared_error[:split].mean() + squared_error[split:].mean()
    kl_term = kl[:split].mean() + kl[split:].mean()
    adversarial = fooling_loss(logits[:split], logits[split:])
    return VAELoss(reconstruction_term, kl_term, adversarial, reconstruction_term + beta * kl_term + adversary_weight * adversarial)


def discriminator_loss(vae: ConvVAE, discriminator: LatentDiscriminator, labeled: Tensor, unlabeled: Tensor) -> Tensor:
    """−mean log D(μ_L) − mean log(1 − D(μ_U)): labeled → 1, unlabeled → 0, on the latent means
    (no gradient reaches the VAE)."""
    with torch.no_grad():
        labeled_mean, _ = vae.encode(labeled)
        unlabeled_mean, _ = vae.encode(unlabeled)
    return separation_loss(discriminator(labeled_mean), discriminator(unlabeled_mean))


def fooling_loss(labeled_logits: Tensor, unlabeled_logits: Tensor) -> Tensor:
    """The generator's adversarial term from discriminator logits: −mean log D(L) − mean log D(U)
    (both batches called labeled)."""
    return _labeled_loss(labeled_logits, True) + _labeled_loss(unlabeled_logits, True)


def separation_loss(labeled_logits: Tensor, unlabeled_logits: Tensor) -> Tensor:
    """The discriminator's loss from its logits: −mean log D(L) − mean log(1 − D(U))."""
    return _labeled_loss(labeled_logits, True) + _labeled_loss(unlabeled_logits, False)


def _labeled_loss(logits: Tensor, labeled: bool) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(labeled)))


class VAAL(DrawsUntilLabeled):
    """Variational adversarial active learning on image pools (items Tensor[C, H, W], H and W
    multiples of 4).

    At each selection a fresh :class:`ConvVAE` and :class:`LatentDiscriminator` are trained from
    scratch for ``iterations`` iterations. Each iteration takes two VAE steps (Adam) on
    :func:`vae_loss`, each on a fresh labeled and a fresh unlabeled batch, then one discriminator
    step (Adam) on :func:`discriminator_loss` with the second pair of batches. The query is the
    ``budget`` unlabeled items with the lowest discriminator logit on their latent mean, i.e. the
    lowest P(labeled | μ(x)); ties to the lower global index. Scores: minus that logit, the
    log-odds that the item is unlabeled (P(unlabeled | μ) itself rounds to 1 for many items).

    Every random draw (initial weights, batches, the VAE's noise) comes from (seed, round), so a
    resumed run repeats the selection; torch's global RNG is left as it was. The task model is not
    used, only its device (CPU when None). With nothing labeled the discriminator has no labeled
    class: the query is then uniform at random from (seed, round), as the paper's random initial
    labeled set, and nothing is trained. The networks of the last selection are ``last_vae`` and
    ``last_discriminator``.

    Cost per round, in images: 3·iterations·2·batch_size forwards through the encoder (the VAE
    steps also decode) plus N̂ to score, and as many backwards (a discriminator step's backward
    goes through the discriminator alone); nothing with zero labeled items.

    Args:
        iterations: discriminator steps (each after two VAE steps).
        batch_size: labeled and unlabeled items per training batch (each), and items per scoring batch.
        latent_dim: size of the latent z.
        beta: β, the weight of the KL term.
        adversary_weight: λ, the weight of the VAE's adversarial term.
        lr: Adam learning rate of both networks.
        seed: base seed.
        progress: show a progress bar while training.
    """

    last_vae: ConvVAE | None = None
    last_discriminator: LatentDiscriminator | None = None
    seed_name = "vaal"  # the purpose its (seed, purpose, round) streams are named after

    def __init__(
        self,
        iterations: int = 200,
        batch_size: int = 64,
        latent_dim: int = 32,
        beta: float = 1.0,
        adversary_weight: float = 1.0,
        lr: float = 5e-4,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        name = type(self).__name__
        self.iterations = check_int(iterations, f"{name}: iterations", 1)
        self.batch_size = check_int(batch_size, f"{name}: batch_size", 1)
        self.latent_dim = check_int(latent_dim, f"{name}: latent_dim", 1)
        self.beta = check_real(beta, f"{name}: beta", at_least=0)
        self.adversary_weight = check_real(adversary_weight, f"{name}: adversary_weight", at_least=0)
        self.lr = check_real(lr, f"{name}: lr", above=0)
        self.seed = seed
        self.progress = progress

    @property
    def draw_stream(self) -> str:
        return self.seed_name

    def query(self, model, pool, budget):
        self.last_vae = self.last_discriminator = None
        pool_image_shape(type(self).__name__, pool, int(pool.unlabeled_indices[0]))  # even a draw is of an image pool
        return super().query(model, pool, budget)

    def labeled_query(self, model, pool, budget):
        """Trains this round's networks once and ranks every unlabeled item by them."""
        with self.round_training(model, pool) as (networks, image_shape, device):
            return self._scored_query(networks, pool, pool.unlabeled_indices, budget, image_shape, device)

    def item_scores(self, model: nn.Module | None, pool: ActivePool, rows: Tensor) -> Tensor:
        """Minus the discriminator logit of the pool items ``rows`` after this round's training on
        the whole pool (the query's scores; needs a labeled item): what a distributed query merges,
        the same training on every rank."""
        with self.round_training(model, pool) as (networks, image_shape, device):
            return -self._labeled_logits(networks, pool, rows, image_shape, device)

    @contextlib.contextmanager
    def round_training(self, model: nn.Module | None, pool: ActivePool):
        """This round's networks trained on the whole pool, with the image shape and device scoring
        needs: yields (networks, image_shape, device). Forked: the initial weights come from a CPU
        RNG seeded by (seed, round), and each DataLoader draws a seed of its own from it; the
        caller's RNG is left as it was."""
        candidates, labeled = pool.unlabeled_indices, pool.labeled_indices
        image_shape = pool_image_shape(type(self).__name__, pool, int(candidates[0]))
        device = model_device(model) if model is not None else torch.device("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derived_seed(self.seed, f"{self.seed_name} init", pool.round))
            yield self._trained_networks(pool, labeled, candidates, image_shape, device), image_shape, device

    def _scored_query(self, networks, pool, candidates, budget, image_shape, device) -> tuple[Tensor, Tensor]:
        """Ranks ``candidates`` with this round's trained networks (inside :meth:`round_training`)."""
        return surest_unlabeled(candidates, self._labeled_logits(networks, pool, candidates, image_shape, device), budget)

    def _labeled_logits(self, networks, pool, rows, image_shape, device) -> Tensor:
        """The discriminator's logits of P(labeled), Tensor[n], for the pool items ``rows``."""
        return self._outputs(self._labeled_logit(networks), list(networks), pool, rows, image_shape, device)

    def _trained_networks(self, pool, labeled, candidates, image_shape, device) -> tuple[nn.Module, nn.Module]:
        """The generative network and the discriminator, trained (the global RNG is seeded)."""
        vae = ConvVAE(image_shape, self.latent_dim).to(device)
        discriminator = LatentDiscriminator(self.latent_dim).to(device)
        self._train(vae, discriminator, pool, labeled, candidates, image_shape, device)
        self.last_vae, self.last_discriminator = vae, discriminator
        return vae, discriminator

    @staticmethod
    def _labeled_logit(networks: tuple[nn.Module, nn.Module]):
        """images -> the discriminator's logit of P(labeled) on their latent code."""
        vae, discriminator = networks
        return lambda x: discriminator(vae.encode(x)[0])

    def _generator_loss(self, vae, discriminator, pool, labeled_rows, labeled_images, unlabeled_images, noise) -> Tensor:
        return vae_loss(vae, discriminator, labeled_images, unlabeled_images, self.beta, self.adversary_weight, noise).total

    def _discriminator_loss(self, vae, discriminator, labeled_images, unlabeled_images) -> Tensor:
        return discriminator_loss(vae, discriminator, labeled_images, unlabeled_images)

    def _generator_step_images(self, vae) -> int:
        """Images one generator step sends forward (and back) through the generative network."""
        return 2 * self.batch_size

    def _train(self, vae, discriminator, pool, labeled, unlabeled, image_shape, device) -> None:
        """``iterations`` × (two generator steps, then one discriminator step unless
        ``discriminator`` is None), each on a fresh labeled and a fresh unlabeled batch."""
        vae_optimizer = torch.optim.Adam(vae.parameters(), lr=self.lr)
        discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=self.lr) if discriminator is not None else None
        order = torch.Generator().manual_seed(derived_seed(self.seed, f"{self.seed_name} batches", pool.round))
        noise = torch.Generator(device).manual_seed(derived_seed(self.seed, f"{self.seed_name} noise", pool.round))
        steps = self.iterations * VAE_STEPS
        pairs = zip(*(image_batches(type(self).__name__, pool, indices, steps, self.batch_size, order, image_shape, device) for indices in (labeled, unlabeled)))
        for network in (vae, discriminator):
            if network is not None:
                network.train()
        for _ in tqdm(range(self.iterations), desc=self.seed_name, disable=not self.progress):
            for _ in range(VAE_STEPS):
                (labeled_rows, labeled_images), (_, unlabeled_images) = next(pairs)
                vae_optimizer.zero_grad()
                self._generator_loss(vae, discriminator, pool, labeled_rows, labeled_images, unlabeled_images, noise).backward()
                vae_optimizer.step()
            if discriminator_optimizer is not None:
                discriminator_optimizer.zero_grad()
                self._discriminator_loss(vae, discriminator, labeled_images, unlabeled_images).backward()
                discriminator_optimizer.step()
        images = self.iterations * (VAE_STEPS * self._generator_step_images(vae) + (2 * self.batch_size if discriminator is not None else 0))
        self.charge(forward=images, backward=images)

    @torch.no_grad()
    def _outputs(self, function, networks, pool, indices, image_shape, device) -> Tensor:
        """``function`` of every item of ``indices`` in batches, the ``networks`` in eval mode,
        concatenated on the CPU in float32; charges one forward per item."""
        for network in networks:
            network.eval()
        chunks = []
        for rows, x in zip(indices.split(self.batch_size), inputs_loader(pool, indices, self.batch_size)):
            chunks.append(function(checked_images(type(self).__name__, x, rows, image_shape).to(device)).float().cpu())
        self.charge(forward=indices.numel())
        outputs = torch.cat(chunks)
        if not bool(outputs.isfinite().all()):
            raise ValueError(self._diverged())
        return outputs

    def _diverged(self) -> str:
        return (f"{type(self).__name__}: training diverged: the networks gave non-finite scores "
                f"(lr={self.lr}, beta={self.beta}, adversary_weight={self.adversary_weight})")  # fmt: skip


def surest_unlabeled(candidates: Tensor, logits: Tensor, budget: int) -> tuple[Tensor, Tensor]:
    """The ``budget`` candidates with the lowest discriminator logit (lowest P(labeled)), ties to
    the lower index (stable sort), and their scores, minus the logit."""
    order = torch.sort(logits, stable=True).indices[:budget]
    return candidates[order], -logits[order]
