"""Selection by matching the pool to a labeled validation set: the weakly-supervised Algorithm 1 of
Gudovskiy et al. (CVPR 2020), shared by PCC, PFK and EBA (``fisher_kernel.py``)."""

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al.checks import LogitsCheck, check_int, check_validation_set
from torch_al.devices import model_device
from torch_al.distributed.ranked import distributed_select_unique
from torch_al.nn.capture import Tokens, capture_layout, check_tokens
from torch_al.ops.select_unique import select_unique
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.base import Strategy
from torch_al.strategies.distribution_matching.pseudo_labels import MONTE_CARLO_KINDS, monte_carlo_pseudo_labels

Estimator = Literal["true", "argmax", "validation_match", "trace_cov", "mutual_info"]
ESTIMATORS = ("true", "argmax", "validation_match", *MONTE_CARLO_KINDS)
COMBINES = ("product", "fisher", "sum")


class ValidationMatch:
    """PFK's ``validation_match`` label search: each pool item takes the true label of its most
    similar validation item under R_z (ties to the lower row), from its normalised feature scales.
    A :meth:`DistributionMatching.describe` may call it batch by batch between the forward and the
    backward, so the search costs no pass of its own."""

    def __init__(self, validation_z: list[Tensor], validation_labels: Tensor, precision: str) -> None:
        self.validation_z, self.validation_labels, self.precision = validation_z, validation_labels, precision

    def __call__(self, scales: list[Tensor]) -> Tensor:
        from torch_al.ops.pfk_topk import pfk_topk

        return self.validation_labels[pfk_topk(scales, self.validation_z, k=1, precision=self.precision)[1][:, 0]]


Labels = Tensor | Literal["argmax"] | ValidationMatch


@dataclass
class Described:
    """Normalised descriptors of some items, as lists of scales (Tensor[n, C_j] each).

    Attributes:
        features: the z (or EBA's d) scales, or None when not asked for.
        gradients: the g (or EBA's attention a) scales, or None.
        labels: int64 Tensor[n], the labels the gradients were taken with, or the argmax
            predictions when only features were computed.
    """

    features: list[Tensor] | None
    gradients: list[Tensor] | None
    labels: Tensor


@dataclass
class Query:
    """The query side of a matching selection: the centers' descriptor scales (z, and g when the
    kernel uses gradients), and every validation item's features (for ``validation_match``)."""

    z: list[Tensor]
    g: list[Tensor] | None
    validation_z: list[Tensor]


def first_center(seed: int, round_: int, rows: int) -> int:
    """The random first center of the k-center reduction (the authors' code draws it at random)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, "centers", round_))
    return int(torch.randint(rows, (1,), generator=generator))


class DistributionMatching(Strategy):
    """Algorithm 1 of PFK, weakly supervised, on the ``kcenter_greedy`` and ``select_unique`` ops:

    1. run the model on the validation set V and keep the rows it misclassifies (only right or
       wrong is needed); when it misclassifies none, all of V is matched;
    2. describe those rows; when there are more than the budget P, reduce them to P centers by
       k-center greedy on their concatenated normalised descriptors (farthest = least similar;
       the first center is drawn from (seed, round));
    3. describe the unlabeled pool with pseudo-labels from the estimator;
    4. keep each center's top-``k`` pool points under the kernel and fill P distinct points rank
       by rank (``select_unique``).

    Subclasses say how items are described (:meth:`describe`).

    Args:
        validation: (inputs Tensor[M, ...], labels int64 Tensor[M]), distributed like the test data.
        layers: descriptor layers (names from ``model.named_modules()``); default the model's
            ``descriptor_layers`` attribute (``LeNet``: ``act1, act2, act3``, the authors' L = 80).
        estimator: pool pseudo-labels for the gradients: ``"true"`` (the oracle's labels; an
            ablation, the method's upper bound), ``"argmax"`` (ŷ; validation gradients use ŷ too,
            as in the authors' code), ``"validation_match"`` (the true label of the most similar
            validation point under R_z, over all of V), or the Monte-Carlo estimators
            ``"trace_cov"`` / ``"mutual_info"`` (the class maximising tr(C_zg) or I(z; g) over
            ``samples`` perturbed copies, ``pseudo_labels.py``); the last three take validation
            gradients with the true labels.
        combine: the kernel: ``"product"`` R_z ∘ R_g (paper eq. 12), ``"fisher"`` Σ_j R_z^j ∘ R_g^j
            (eq. 11 over layers) or ``"sum"`` R_z + R_g (the authors' code).
        k: candidates kept per center; the authors use 32.
        batch_size: descriptor batch size.
        seed: seeds the first center of the k-center reduction and the Monte-Carlo perturbations.
        progress: progress bars.
        samples: K >= 2, perturbed copies per pool item of the Monte-Carlo estimators.
        precision: ``"exact"`` or ``"fast"`` (on CUDA, a bfloat16 screen then exact re-scoring
            of the kept candidates; see :func:`torch_al.pfk_topk`), for every matching op call.
        tokens: how the descriptor layers' outputs are read: None (default: the model's
            ``descriptor_tokens`` attribute, else channels second, (B, C, *spatial), pooled over
            space), ``"mean"`` (transformer token sequences (B, T, C), pooled over the tokens) or
            ``"first"`` (their first token, a ViT's class token).
    """

    uses_gradients = True

    def __init__(
        self,
        validation: tuple[Tensor, Tensor] | None = None,
        layers: Sequence[str] | None = None,
        estimator: Estimator = "validation_match",
        combine: str = "product",
        k: int = 32,
        batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
        samples: int = 16,
        precision: str = "exact",
        tokens: Tokens | None = None,
    ) -> None:
        name = type(self).__name__
        if validation is None:
            raise ValueError(f"{name} matches the pool to a labeled validation set: pass validation=(inputs, labels)")
        self._validation = check_validation_set(name, validation)
        if estimator not in ESTIMATORS:
            raise ValueError(f"{name}: estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if combine not in COMBINES:
            raise ValueError(f"{name}: combine must be one of {COMBINES}, got {combine!r}")
        check_int(k, f"{name}: k", 1)
        check_int(samples, f"{name}: samples (K, perturbed copies per pool item)", 2)
        if precision not in ("exact", "fast"):
            raise ValueError(f"{name}: precision must be 'exact' or 'fast', got {precision!r}")
        self.layers = None if layers is None else tuple(layers)
        self.estimator = estimator
        self.combine = combine
        self.k = k
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress
        self.samples = samples
        self.precision = precision
        check_tokens(tokens)
        self.tokens = tokens

    @abstractmethod
    def describe(
        self, model: nn.Module, layers: Sequence[str], loader: DataLoader, labels: Labels, features: bool, gradients: bool, check: LogitsCheck | None = None
    ) -> Described:
        """Normalised descriptors of the loader's items, their logits validated by ``check``;
        records its passes with ``charge``. ``labels`` (of the gradients): ``"argmax"``, a Tensor,
        or a :class:`ValidationMatch` to call with the items' normalised feature scales."""

    def query(self, model, pool, budget):
        query = self.query_descriptors(model, pool, budget)
        candidates = pool.unlabeled_indices
        pool_z, pool_g = self.pool_descriptors(model, pool, candidates, query)
        positions = select_unique(query.z, pool_z, budget, query.g, pool_g, k=self.k, combine=self.combine, precision=self.precision)
        return candidates[positions.cpu()], None

    def query_over_ranks(self, model, pool, budget, shard):
        """Every rank describes the validation set (the query side is the same everywhere) and its
        shard of the pool, then :func:`~torch_al.distributed.distributed_select_unique` (exact
        wherever an item's descriptors do not depend on its batch, except with the Monte-Carlo
        estimators ``trace_cov`` / ``mutual_info``, whose perturbations are each rank's own draws)."""

        def describe() -> tuple[Query, list[Tensor], list[Tensor] | None]:
            query = self.query_descriptors(model, pool, budget)
            return query, *self.pool_descriptors(model, pool, shard.owned, query)

        query, pool_z, pool_g = shard.on_every_rank(describe)
        return distributed_select_unique(
            query.z, pool_z, budget, query.g, pool_g, k=self.k, combine=self.combine, global_indices=shard.owned.to(pool_z[0].device),
            precision=self.precision, group=shard.group,
        ).cpu()

    def query_descriptors(self, model: nn.Module | None, pool: ActivePool, budget: int) -> Query:
        """The query side of Algorithm 1: the misclassified validation items' descriptors, reduced
        to at most ``budget`` centers."""
        if model is None:
            raise ValueError(f"{type(self).__name__} describes data with a model; got model=None")
        layers = self._layers(model)
        device = model_device(model)
        name = type(self).__name__
        validation_x, validation_y = self._validation
        validation = self.describe(model, layers, self._loader(validation_x), "argmax", features=True, gradients=False, check=LogitsCheck(name, item="validation item"))
        missed = (validation.labels.cpu() != validation_y).nonzero().flatten()
        if missed.numel() == 0:
            missed = torch.arange(validation_y.numel())
        query_z = [scale[missed.to(device)] for scale in validation.features]
        query_g = None
        if self.uses_gradients:
            labels = "argmax" if self.estimator == "argmax" else validation_y[missed]
            missed_check = LogitsCheck(name, missed, "validation item")
            query_g = self.describe(model, layers, self._loader(validation_x[missed]), labels, features=False, gradients=True, check=missed_check).gradients
        centers = self._centers(query_z + (query_g or []), budget, pool.round).to(device)
        return Query(
            z=[scale[centers] for scale in query_z],
            g=None if query_g is None else [scale[centers] for scale in query_g],
            validation_z=validation.features,
        )

    def pool_descriptors(self, model: nn.Module, pool: ActivePool, candidates: Tensor, query: Query) -> tuple[list[Tensor], list[Tensor] | None]:
        """Descriptors (features, and gradients when the kernel uses them) of the pool items
        ``candidates``; each item's are its own, whatever else is described with it (the
        Monte-Carlo estimators excepted: their perturbations are drawn in loader order)."""
        if not candidates.numel():  # an empty shard: the query's widths, no rows
            empty = lambda scales: None if scales is None else [scale[:0] for scale in scales]  # noqa: E731
            return empty(query.z), empty(query.g)
        layers = self._layers(model)
        loader = inputs_loader(pool, candidates, self.batch_size)
        check = LogitsCheck(type(self).__name__, candidates)
        if self.uses_gradients and self.estimator == "validation_match":
            labels = ValidationMatch(query.validation_z, self._validation[1].to(model_device(model)), self.precision)
        else:
            labels = self._pool_labels(model, layers, loader, pool, candidates, check)
        described = self.describe(model, layers, loader, labels, features=True, gradients=self.uses_gradients, check=check)
        return described.features, described.gradients

    def _pool_labels(self, model: nn.Module, layers: Sequence[str], loader: DataLoader, pool: ActivePool, candidates: Tensor, check: LogitsCheck) -> Labels:
        """The labels of the candidates' gradients: the oracle's, the argmax, or the Monte-Carlo
        estimator's class (perturbations drawn from (seed, round))."""
        if self.estimator == "true":
            return pool.dataset_labels(candidates)
        if self.estimator not in MONTE_CARLO_KINDS or not self.uses_gradients:
            return "argmax"
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "perturb", pool.round))
        estimated = monte_carlo_pseudo_labels(model, layers, loader, self.samples, generator, self.estimator, check=check, **capture_layout(self.tokens, model))
        self.charge(forward=estimated.forward, backward=estimated.backward)
        return estimated.labels

    def _layers(self, model: nn.Module) -> tuple[str, ...]:
        layers = self.layers or getattr(model, "descriptor_layers", None)
        if not layers:
            raise ValueError(f"{type(self).__name__}: name the descriptor layers (layers=...) or give the model a descriptor_layers attribute")
        return tuple(layers)

    def _loader(self, inputs: Tensor) -> DataLoader:
        return DataLoader(TensorDataset(inputs), batch_size=self.batch_size)

    def _centers(self, scales: list[Tensor], budget: int, round_: int) -> Tensor:
        """Row indices of at most ``budget`` centers among the query rows."""
        from torch_al.ops.kcenter_greedy import kcenter_greedy

        rows = scales[0].shape[0]
        if rows <= budget:
            return torch.arange(rows)
        picked, _ = kcenter_greedy(torch.cat(scales, dim=1), budget, first=first_center(self.seed, round_, rows))
        return picked

