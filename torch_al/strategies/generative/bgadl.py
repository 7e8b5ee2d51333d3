"""BGADL: Tran, Do, Reid & Carneiro, "Bayesian Generative Active Deep Learning", ICML 2019.

BALD (MC dropout) picks the items x* to label; a generative model makes a synthetic image
x' = g(e(x*)) close to each pick, and training adds (x', y*), y* the oracle's label of x*. The
acquisition function says where the model needs data, and the augmentation adds it there.
"""

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from torch_al.checks import check_int, check_real
from torch_al.devices import model_device
from torch_al.generated_items_pool import GeneratedItemsPool, TrainingSet
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.bayesian.mc_dropout import BALD
from torch_al.strategies.generative.images import checked_images, image_batches, pool_image_shape
from torch_al.strategies.generative.networks import ConvVAE, elbo_terms


class BGADL(BALD):
    """BALD's query, plus one generated training image per queried item, on image pools (items
    Tensor[C, H, W], H and W multiples of 4).

    The query is exactly :class:`BALD`'s (same passes, same consistent masks from (seed, round)). Then
    a fresh :class:`ConvVAE` is trained for ``generator_iterations`` Adam steps on
    ``generator_batch_size`` pool images each (labeled and unlabeled alike: it uses no label),
    minimising the mean of ‖x̂ − x‖² + β·KL (:func:`elbo_terms`), and each pick x* gets
    x' = decode(μ(x*) + σ(x*)·ε), ε ~ N(0, I): a sample of the decoder at a latent code drawn
    from the encoder's posterior of x*, the paper's x' = g(e(x*)).

    The generated images are kept by the strategy, each with its source's global index, never in
    the pool: ``state_dict()`` holds them (``generated_inputs`` Tensor[G, C, H, W],
    ``generated_sources`` int64 Tensor[G]), so the loop's checkpoint carries them, and
    :meth:`training_set` serves them after the ledger's items through a
    :class:`~torch_al.GeneratedItemsPool`, each with the ledger's label of its source: y* is
    read when training starts, once the oracle has answered. They accumulate over rounds: with
    budget P the ledger grows by P per round and the training set by 2P. A source queried again
    (its earlier query discarded unlabeled) has its earlier image replaced.

    Every random draw of the generator (initial weights, batches, ε) comes from (seed, round), on
    the task model's device; torch's global RNG is left as it was. The network of the last
    selection is ``last_generator``.

    Cost per round, in images: BALD's T·N̂ forwards, plus generator_iterations ·
    generator_batch_size forwards and backwards through the VAE and P forwards to generate.

    Args:
        passes, chunk, batch_size, prefix_once, progress: as :class:`BALD`'s.
        generator_iterations: Adam steps of the VAE per selection.
        generator_batch_size: images per VAE step.
        latent_dim: size of the latent z.
        beta: β, the weight of the KL term.
        generator_lr: Adam learning rate of the VAE.
        seed: base seed of the masks and of the generator's draws.
    """

    last_generator: ConvVAE | None = None

    def __init__(
        self,
        passes: int = 128,
        chunk: int | None = None,
        batch_size: int = 256,
        progress: bool = True,
        prefix_once: bool = True,
        generator_iterations: int = 300,
        generator_batch_size: int = 64,
        latent_dim: int = 32,
        beta: float = 1.0,
        generator_lr: float = 1e-3,
        seed: int = 0,
    ) -> None:
        super().__init__(passes, chunk, batch_size, progress, prefix_once, seed)
        self.generator_iterations = check_int(generator_iterations, "BGADL: generator_iterations", 1)
        self.generator_batch_size = check_int(generator_batch_size, "BGADL: generator_batch_size", 1)
        self.latent_dim = check_int(latent_dim, "BGADL: latent_dim", 1)
        self.beta = check_real(beta, "BGADL: beta", at_least=0)
        self.generator_lr = check_real(generator_lr, "BGADL: generator_lr", above=0)
        self._inputs: Tensor | None = None  # Tensor[G, C, H, W], None before the first generation
        self._sources = torch.empty(0, dtype=torch.int64)

    def query(self, model, pool, budget):
        if model is None:
            raise ValueError("BGADL scores with a model; got model=None")
        image_shape = pool_image_shape("BGADL", pool, int(pool.unlabeled_indices[0]))  # before BALD's passes
        picks, scores = super().query(model, pool, budget)
        self.add_twins(model, pool, picks, image_shape)
        return picks, scores

    def query_over_ranks(self, model, pool, budget, shard):
        """BALD's picks over the ranks, then every rank trains the same seeded generator on the
        whole pool and keeps the picks' generated twins (its training set)."""
        picks = shard.top(lambda rows: self.item_scores(model, pool, rows), budget)
        shard.on_every_rank(lambda: self.add_twins(model, pool, picks, pool_image_shape("BGADL", pool, int(pool.unlabeled_indices[0]))))
        return picks

    def add_twins(self, model: nn.Module, pool: ActivePool, picks: Tensor, image_shape: tuple[int, int, int]) -> None:
        """Trains this round's generator on the whole pool (seeded by (seed, round)) and keeps one
        generated twin per pick for the next training."""
        device = model_device(model)
        # Forked: the initial weights come from a seeded CPU RNG; the caller's RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derived_seed(self.seed, "bgadl init", pool.round))
            vae = ConvVAE(image_shape, self.latent_dim).to(device)
            self._train(vae, pool, image_shape, device)
            generated = self._generate(vae, pool, picks, image_shape, device)
        kept = ~torch.isin(self._sources, picks)
        earlier = generated[:0] if self._inputs is None else self._inputs[kept]
        self._inputs, self._sources = torch.cat([earlier, generated]), torch.cat([self._sources[kept], picks])
        self.last_generator = vae

    def _train(self, vae: ConvVAE, pool: ActivePool, image_shape: tuple[int, int, int], device: torch.device) -> None:
        optimizer = torch.optim.Adam(vae.parameters(), lr=self.generator_lr)
        order = torch.Generator().manual_seed(derived_seed(self.seed, "bgadl batches", pool.round))
        noise = torch.Generator(device).manual_seed(derived_seed(self.seed, "bgadl noise", pool.round))
        everything = torch.arange(len(pool))
        batches = image_batches("BGADL", pool, everything, self.generator_iterations, self.generator_batch_size, order, image_shape, device)
        vae.train()
        for _, images in tqdm(batches, total=self.generator_iterations, desc="bgadl generator", disable=not self.progress):
            optimizer.zero_grad()
            squared_error, kl, _ = elbo_terms(vae, images, noise)
            (squared_error + self.beta * kl).mean().backward()
            optimizer.step()
        images = self.generator_iterations * self.generator_batch_size
        self.charge(forward=images, backward=images)

    @torch.no_grad()
    def _generate(self, vae: ConvVAE, pool: ActivePool, picks: Tensor, image_shape: tuple[int, int, int], device: torch.device) -> Tensor:
        """x' = decode(μ + σ·ε) of every pick, Tensor[P, C, H, W] on the CPU."""
        vae.eval()
        noise = torch.Generator(device).manual_seed(derived_seed(self.seed, "bgadl generate", pool.round))
        chunks = []
        for rows, x in zip(picks.split(self.batch_size), inputs_loader(pool, picks, self.batch_size)):
            chunks.append(vae(checked_images("BGADL", x, rows, image_shape).to(device), noise)[0].cpu())
        self.charge(forward=picks.numel())
        generated = torch.cat(chunks)
        if not bool(generated.isfinite().all()):
            raise ValueError(f"BGADL: the generator's training diverged: non-finite images (generator_lr={self.generator_lr}, beta={self.beta})")
        return generated

    def training_set(self, pool: TrainingSet) -> TrainingSet:
        """``pool`` followed by every image generated so far (a :class:`~torch_al.GeneratedItemsPool`),
        or ``pool`` itself before the first generation."""
        if self._inputs is None:
            return pool
        return GeneratedItemsPool(pool, self._inputs, self._sources)

    def state_dict(self) -> dict[str, Tensor]:
        if self._inputs is None:
            return {}
        return {"generated_inputs": self._inputs, "generated_sources": self._sources}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            self._inputs, self._sources = None, torch.empty(0, dtype=torch.int64)
            return
        if set(state) != {"generated_inputs", "generated_sources"}:
            raise ValueError(f"BGADL: state must hold generated_inputs and generated_sources, got {sorted(state)}")
        inputs, sources = state["generated_inputs"], state["generated_sources"]
        if sources.dtype != torch.int64 or sources.dim() != 1 or inputs.dim() != 4 or inputs.shape[0] != sources.numel():
            raise ValueError(f"BGADL: generated_inputs must be Tensor[G, C, H, W] and generated_sources int64 Tensor[G], "
                             f"got {tuple(inputs.shape)} and {sources.dtype} {tuple(sources.shape)}")  # fmt: skip
        self._inputs, self._sources = inputs.cpu(), sources.cpu()
