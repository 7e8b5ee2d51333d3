"""BADGE: Ash, Zhang, Krishnamurthy, Langford & Agarwal, "Deep Batch Active Learning by Diverse,
Uncertain Gradient Lower Bounds", ICLR 2020. k-means++ seeding over the gradient embeddings of
the last layer's weights with the predicted label, which are large for uncertain items and point
in different directions for different kinds of items."""

import torch
from torch import Tensor, nn

from torch_al.checks import check_int
from torch_al.devices import model_device
from torch_al.distributed.greedy import distributed_kmeanspp_factored
from torch_al.embeddings import embed_with_logits
from torch_al.ops.kmeanspp_factored import kmeanspp_factored
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.base import Strategy


def gradient_embedding_factors(logits: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
    """The two factors of BADGE's gradient embedding g_i = a_i ⊗ b_i, the gradient of the
    cross-entropy loss with the argmax label ŷ_i with respect to the last linear layer's weight
    (C × D): a_i = p_i − onehot(ŷ_i) (Tensor[N, C], p = softmax of the logits, ties in the argmax
    to the lower class) and b_i = h_i, the layer's input (Tensor[N, D]). The bias's gradient (a_i)
    is left out, as in the paper and its released code. Both float32."""
    probabilities = logits.float().softmax(1)
    predicted = nn.functional.one_hot(probabilities.argmax(1), probabilities.shape[1]).to(probabilities.dtype)
    return probabilities - predicted, features.float()


class BADGE(Strategy):
    """k-means++ seeding over last-layer gradient embeddings (D² sampling), from one forward pass.

    Each unlabeled item's embedding is g_i = (p_i − onehot(ŷ_i)) ⊗ h_i (see
    :func:`gradient_embedding_factors`); the ``budget`` items are the k-means++ seeds over them,
    chosen by the ``kmeanspp_factored`` op from the two factors, so the N̂ × C·D embeddings are
    never formed. The first seed is the largest embedding (as in the authors' code), each next one
    is drawn with probability proportional to its squared distance to the nearest seed so far, the
    draws coming from a generator seeded by (seed, round). Cost per round: N̂ forwards (N̂ + the
    labeled items with ``labeled_centers``), no backward pass.

    Args:
        labeled_centers: start the seeding from the labeled items' embeddings as centers, so the
            picks also stay away from what is labeled (not in the paper, which seeds over the
            unlabeled pool alone: default False).
        batch_size: forward batch size.
        seed: base seed of the draws.
    """

    def __init__(self, labeled_centers: bool = False, batch_size: int = 256, seed: int = 0) -> None:
        if not isinstance(labeled_centers, bool):
            raise TypeError(f"BADGE: labeled_centers must be a bool, got {labeled_centers!r}")
        self.labeled_centers = labeled_centers
        self.batch_size = check_int(batch_size, "BADGE: batch_size", 1)
        self.seed = seed

    def query(self, model, pool, budget):
        candidates = pool.unlabeled_indices
        rows = torch.cat([candidates, pool.labeled_indices]) if self.labeled_centers else candidates
        a, b = self.factors(model, pool, rows)
        initial = torch.arange(candidates.numel(), rows.numel(), device=a.device) if self.labeled_centers else None
        picked, pick_sq = kmeanspp_factored(a, b, budget, initial, generator=self.generator(pool))
        return candidates[picked.cpu()], pick_sq.float().cpu()

    def query_over_ranks(self, model, pool, budget, shard):
        """Every rank forms its shard's gradient-embedding factors (and, with ``labeled_centers``,
        the labeled items'), then :func:`~torch_al.distributed.distributed_kmeanspp_factored`
        draws: the same picks up to float64 rounding at a draw boundary; the contiguous layout
        only (the draw walks the pool in index order)."""
        labeled = pool.labeled_indices if self.labeled_centers else shard.owned[:0]

        def factors() -> tuple[tuple[Tensor, Tensor] | None, tuple[Tensor, Tensor] | None]:
            centers, mine = (self.factors(model, pool, rows) if rows.numel() else None for rows in (labeled, shard.owned))
            return centers, mine

        centers, mine = shard.on_every_rank(factors)
        a, b = (shard.held_or_empty(part, 1, model_device(model)) for part in (mine or (None, None)))
        return distributed_kmeanspp_factored(
            a, b, budget, centers, global_indices=shard.owned.to(a.device), generator=self.generator(pool), group=shard.group
        ).cpu()

    def factors(self, model: nn.Module | None, pool, rows: Tensor) -> tuple[Tensor, Tensor]:
        """The gradient-embedding factors (a[n, C], b[n, D]) of the pool items ``rows``, one
        forward pass each."""
        if model is None:
            raise ValueError("BADGE embeds the pool with a model; got model=None")
        features, logits = embed_with_logits(model, inputs_loader(pool, rows, self.batch_size), rows, "BADGE")
        self.charge(forward=rows.numel())
        return gradient_embedding_factors(logits, features)

    def generator(self, pool) -> torch.Generator:
        """The generator of this round's draws, seeded by (seed, round)."""
        return torch.Generator().manual_seed(derived_seed(self.seed, "badge", pool.round))
