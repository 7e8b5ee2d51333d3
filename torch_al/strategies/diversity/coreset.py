"""Core-set selection (Sener & Savarese, ICLR 2018): k-center greedy on the model's embeddings."""

import torch
from torch import Tensor

from torch_al.devices import model_device
from torch_al.distributed.greedy import distributed_kcenter_greedy
from torch_al.embeddings import check_embedding_layer, embed
from torch_al.nn.capture import Tokens
from torch_al.ops.kcenter_greedy import kcenter_greedy
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.base import Strategy


class CoreSet(Strategy):
    """Greedy k-center on embeddings of the whole pool (labeled ∪ unlabeled), starting from the
    labeled set as centers: each pick is the unlabeled item farthest from every center so far.
    Runs on the ``kcenter_greedy`` op, on the model's device. With nothing labeled yet, the
    first pick is drawn from (seed, round).

    Args:
        layer: embedding layer name; default the input of the last ``nn.Linear``.
        metric: ``"euclidean"`` or ``"cosine"``.
        batch_size: embedding batch size.
        seed: for the first pick when nothing is labeled.
        tokens: with a named ``layer``, read its output as (B, T, C) tokens pooled to (B, C):
            ``"mean"`` over the tokens or ``"first"`` (the class token); None flattens it.
    """

    def __init__(self, layer: str | None = None, metric: str = "euclidean", batch_size: int = 256, seed: int = 0, tokens: Tokens | None = None) -> None:
        check_embedding_layer("CoreSet", layer, tokens)
        self.layer = layer
        self.tokens = tokens
        self.metric = metric
        self.batch_size = batch_size
        self.seed = seed

    def query(self, model, pool, budget):
        self._check_model(model)
        everything = torch.arange(len(pool))
        embeddings = embed(model, inputs_loader(pool, everything, self.batch_size), self.layer, everything, tokens=self.tokens)
        self.charge(forward=len(pool))
        labeled = pool.labeled_mask.to(embeddings.device)
        picked, _ = kcenter_greedy(embeddings, budget, labeled, first=self.first_pick(pool), metric=self.metric)
        return picked.cpu(), None

    def query_over_ranks(self, model, pool, budget, shard):
        """Every rank embeds the labeled items (the initial centers) and its shard of the
        unlabeled ones, then :func:`~torch_al.distributed.distributed_kcenter_greedy` picks
        (exact wherever an item's embedding does not depend on its batch)."""
        labeled = pool.labeled_mask.nonzero().flatten()

        def embeddings() -> tuple[Tensor | None, Tensor | None]:
            self._check_model(model)
            rows = [embed(model, inputs_loader(pool, part, self.batch_size), self.layer, part, tokens=self.tokens) if part.numel() else None for part in (labeled, shard.owned)]
            self.charge(forward=labeled.numel() + shard.owned.numel())
            return rows[0], rows[1]

        centers, x = shard.on_every_rank(embeddings)
        x = shard.held_or_empty(x, 1, model_device(model))
        return distributed_kcenter_greedy(
            x, budget, centers, global_indices=shard.owned.to(x.device), first=self.first_pick(pool), metric=self.metric, group=shard.group
        )[0]

    @staticmethod
    def _check_model(model) -> None:
        if model is None:
            raise ValueError("CoreSet embeds the pool with a model; got model=None")

    def first_pick(self, pool) -> int | None:
        """The first center when nothing is labeled (drawn from (seed, round)); None otherwise."""
        if pool.labeled_mask.any():
            return None
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "coreset", pool.round))
        return int(torch.randint(len(pool), (1,), generator=generator))
