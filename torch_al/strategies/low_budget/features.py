"""The points a low-budget strategy works on: precomputed features of the whole pool (from
self-supervised training, a frozen backbone, ...) or a model layer's embeddings, and the same
points on every rank so the rule runs once, identically, over ranks."""

from abc import abstractmethod

import torch
from torch import Tensor

from torch_al.checks import check_int
from torch_al.embeddings import check_embedding_layer, embed
from torch_al.nn.capture import Tokens
from torch_al.sampler import inputs_loader
from torch_al.strategies.base import Strategy


class FeatureStrategy(Strategy):
    """A strategy whose rule reads every pool item's point: ``features`` (Tensor[N, D], row i the
    pool's item i) when given, else the embeddings of ``layer`` (default: the input of the
    model's last ``nn.Linear``; with ``tokens``, a token layer pooled as :func:`~torch_al.embeddings.embed`
    does). Subclasses implement :meth:`pick` on those points; needs no
    labeled item, so it serves a cold start. ``seed`` seeds what a rule draws (with the round)."""

    def __init__(self, features: Tensor | None, layer: str | None, batch_size: int, seed: int = 0, tokens: Tokens | None = None) -> None:
        if features is not None and (not isinstance(features, Tensor) or features.dim() != 2 or not features.dtype.is_floating_point):
            raise ValueError(f"{type(self).__name__}: features must be a floating Tensor[N, D], got {type(features).__name__} {getattr(features, 'shape', '')}")
        self.features = features
        check_embedding_layer(type(self).__name__, layer, tokens)
        self.layer = layer
        self.tokens = tokens
        self.batch_size = check_int(batch_size, f"{type(self).__name__}: batch_size", 1)
        self.seed = check_int(seed, f"{type(self).__name__}: seed", 0)

    @abstractmethod
    def pick(self, points: Tensor, model, pool, budget: int) -> tuple[Tensor, Tensor | None]:
        """``budget`` unlabeled indices (and their scores) from the pool's points Tensor[N, D] (``model``:
        what was passed to select, possibly None). A subclass whose :meth:`pool_values` reads more
        than the points takes those values after ``points``."""

    def pool_values(self, model, pool, rows: Tensor | None) -> tuple[Tensor, ...]:
        """What the rule reads of the items ``rows`` (None: every item), each row-aligned: their points."""
        return (self.pool_points(model, pool, rows),)

    def query(self, model, pool, budget):
        return self.pick(*self.pool_values(model, pool, None), model=model, pool=pool, budget=budget)

    def query_over_ranks(self, model, pool, budget, shard):
        """Every rank reads its shard's values (rank 0 the labeled items' too), the rows are gathered
        on every rank, and each runs :meth:`pick` on the same values: the same picks as one process."""
        if self.features is not None and type(self).pool_values is FeatureStrategy.pool_values:
            return self.query(model, pool, budget)[0]
        rows = shard.owned if shard.rank != 0 else torch.cat([pool.labeled_indices, shard.owned])
        local = shard.on_every_rank(lambda: (rows, [value.cpu() for value in self.pool_values(model, pool, rows)]) if rows.numel() else (rows, None))
        parts = [part for part in shard.all_gathered(local) if part[1] is not None]
        values = [torch.empty(len(pool), *value.shape[1:], dtype=value.dtype) for value in parts[0][1]]
        for indices, chunks in parts:
            for value, chunk in zip(values, chunks):
                value[indices] = chunk
        return self.pick(*values, model=model, pool=pool, budget=budget)[0]

    def pool_points(self, model, pool, rows: Tensor | None) -> Tensor:
        """The points of ``rows`` (None: every item) from ``features``, or embedded by ``model``."""
        name = type(self).__name__
        if self.features is not None:
            if self.features.shape[0] != len(pool):
                raise ValueError(f"{name}: features has {self.features.shape[0]} rows but the pool has {len(pool)} items")
            points = self.features if rows is None else self.features[rows]
            bad = (~torch.isfinite(points)).any(1).nonzero()
            if bad.numel():
                row = int(bad[0]) if rows is None else int(rows[int(bad[0])])
                raise ValueError(f"{name}: features row {row} holds NaN or inf")
            return points
        if model is None:
            raise ValueError(f"{name} embeds the pool with a model; got model=None (or pass features=Tensor[N, D])")
        rows = torch.arange(len(pool)) if rows is None else rows
        self.charge(forward=int(rows.numel()))
        return embed(model, inputs_loader(pool, rows, self.batch_size), self.layer, rows, name=name, tokens=self.tokens)
