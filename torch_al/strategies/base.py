"""The strategy interface: ``strategy.select(model, pool, budget) -> LongTensor`` of global indices.

Every selection method (random, uncertainty, core-set, and later MC dropout, PCC/PFK/EBA) is a
:class:`Strategy` subclass that implements :meth:`Strategy.query`; the base class validates the
budget before and the answer after, so every method gives the same guarantees and errors.
"""

import logging
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from torch_al.arbiter import highest_first
from torch_al.checks import LogitsCheck, check_budget, output_logits
from torch_al.devices import model_device
from torch_al.generated_items_pool import TrainingSet
from torch_al.pool import ActivePool
from torch_al.pseudo_labeled_pool import PseudoLabelSet
from torch_al.sampler import inputs_loader

if TYPE_CHECKING:
    from torch_al.distributed import Shard

logger = logging.getLogger("torch_al")


@dataclass
class SelectionCost:
    """What one selection cost: images sent through a forward pass, images sent through a
    backward pass (to the input or to parameters), and wall time. The papers compare methods by
    passes (PFK: 2(M + N̂), MC dropout: T·N̂); seconds depend on the machine."""

    forward: int = 0
    backward: int = 0
    seconds: float = 0.0
    details: dict[str, float] = field(default_factory=dict)  # what else the strategy measured (DAL: its discriminators' accuracy)


class SubBatch(NamedTuple):
    """What a strategy asks next: ``indices`` (int64, global), their ``scores`` (or None), and
    whether labelling them completes the round (``final``)."""

    indices: Tensor
    scores: Tensor | None
    final: bool


class Strategy(ABC):
    """Chooses which unlabeled items of a pool to label next.

    After each :meth:`select`, ``last_cost`` holds its :class:`SelectionCost`, and
    ``last_pseudo_labels`` the :class:`PseudoLabelSet` it proposes for the next round's training
    (CEAL), or None (every other strategy, and a budget of 0).
    """

    last_cost: SelectionCost | None = None
    last_pseudo_labels: PseudoLabelSet | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _follow_renamed_hooks(cls)

    @overload
    def select(self, model: nn.Module | None, pool: ActivePool, budget: int, *, return_scores: Literal[False] = False) -> Tensor: ...

    @overload
    def select(self, model: nn.Module | None, pool: ActivePool, budget: int, *, return_scores: Literal[True]) -> tuple[Tensor, Tensor | None]: ...

    def select(self, model, pool, budget, *, return_scores=False):
        """Picks ``budget`` distinct unlabeled items; the pool is not modified.

        Args:
            model: the task model (in any mode; it is put back in its mode afterwards), or None for
                strategies that need none (random).
            pool: the :class:`ActivePool`.
            budget: how many items, ``0 <= budget <=`` the number of unlabeled items.
            return_scores: also return the scores (higher means more informative) or None.

        Returns:
            int64 Tensor[budget] of global indices, most informative first (CPU); with
            ``return_scores``, ``(indices, scores)`` with scores float Tensor[budget] or None.

        Raises:
            TypeError, ValueError: a budget that is not an int, negative, or larger than the
                number of unlabeled items.
        """
        indices, scores = self._selected(pool, budget, lambda budget: self.query(model, pool, budget))
        return (indices, scores) if return_scores else indices

    def next_sub_batch(self, model: nn.Module | None, pool: ActivePool, budget: int) -> SubBatch:
        """What to ask next in round ``pool.round + 1``: the whole :meth:`select`, final, unless
        the strategy asks within its round (:class:`~torch_al.strategies.within_round.AsksWithinRound`).
        :class:`~torch_al.ActiveLearningLoop` and ``torch-al select`` ask through this."""
        indices, scores = self.select(model, pool, budget, return_scores=True)
        return SubBatch(indices, scores, True)

    def select_over_ranks(self, model: nn.Module | None, pool: ActivePool, budget: int, shard: "Shard") -> Tensor:
        """This rank's part of :func:`torch_al.distributed.distributed_select`: as :meth:`select`,
        with the pool's unlabeled items sharded over the ranks (``shard``); every rank returns the
        same global indices. ``last_cost`` counts this rank's passes."""
        return self._selected(pool, budget, lambda budget: (self.query_over_ranks(model, pool, budget, shard), None))[0]

    def _selected(self, pool: ActivePool, budget: int, ranked) -> tuple[Tensor, Tensor | None]:
        budget = check_budget(budget, int(pool.unlabeled_indices.numel()))
        self.last_cost = SelectionCost()
        self.last_pseudo_labels = None  # never a previous round's: a strategy that makes them sets them in query
        start = time.perf_counter()
        if budget == 0:
            indices, scores = torch.empty(0, dtype=torch.int64), None
        else:
            indices, scores = ranked(budget)
            indices = indices.to("cpu", torch.int64)
            self._check_answer(pool, indices, budget)
        self.last_cost.seconds = time.perf_counter() - start
        logger.debug("%s selected %d items at round %d", type(self).__name__, budget, pool.round)
        return indices, scores

    @abstractmethod
    def query(self, model: nn.Module | None, pool: ActivePool, budget: int) -> tuple[Tensor, Tensor | None]:
        """Implementations: ``budget`` (>= 1) distinct unlabeled global indices, most informative
        first, and their scores (or None). They record their passes with :meth:`charge`."""

    def query_over_ranks(self, model: nn.Module | None, pool: ActivePool, budget: int, shard: "Shard") -> Tensor:
        """The form of :meth:`query` over ranks: ``budget`` (>= 1) global indices, the same on every
        rank, from this rank's ``shard`` of the unlabeled items and the collectives it offers
        (:class:`torch_al.distributed.Shard`). Every built-in strategy has one, beside its rule."""
        raise TypeError(
            f"distributed_select: {type(self).__name__}{f' rule {self.rule!r}' if hasattr(self, 'rule') else ''} has no distributed form: every built-in strategy has one, and an "
            "ItemScoreStrategy that keeps its query (its items' scores merge exactly); give yours a query_over_ranks "
            "from torch_al.distributed's pieces (Shard.top, distributed_topk, RankArbiter, ...)"
        )

    def training_loss(self, model: nn.Module, inputs: Tensor, targets: Tensor, epoch: int, epochs: int) -> Tensor:
        """The loss one training batch minimises, at ``epoch`` of a round's ``epochs``: the mean
        cross entropy, unless the strategy learns something beside the model (:class:`LearningLoss`).
        A training loop that calls this and optimises :meth:`extra_parameters` too trains for
        every strategy."""
        return F.cross_entropy(output_logits(model(inputs)), targets)

    def training_set(self, pool: TrainingSet) -> TrainingSet:
        """What the next training reads, given what it would read otherwise (the pool, or the
        pool with CEAL's pseudo-labels): that, unless the strategy adds training items of its
        own (:class:`BGADL`'s generated ones, through a :class:`~torch_al.GeneratedItemsPool`).
        Pool-like: ``labeled_indices``, ``round``, ``len`` and ``view[i] -> (inputs, label)``.
        :class:`~torch_al.ActiveLearningLoop` and ``torch-al run`` train on it."""
        return pool

    def extra_parameters(self, model: nn.Module, inputs: Tensor) -> list[nn.Parameter]:
        """Parameters to optimise beside the model's (none, unless the strategy learns); ``inputs``:
        one batch, for a strategy that sizes its own network from the model's layers."""
        return []

    def state_dict(self) -> dict[str, Tensor]:
        """What the strategy learned across rounds (none, unless it learns); the loop checkpoints it."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)[:5]}")

    def charge(self, forward: int = 0, backward: int = 0) -> None:
        """Adds passes (in images) to ``last_cost``."""
        if self.last_cost is None:
            self.last_cost = SelectionCost()
        self.last_cost.forward += forward
        self.last_cost.backward += backward

    def note(self, **details: float) -> None:
        """Records figures of this selection in ``last_cost.details`` (the loop's metrics record
        them as ``select_<name>``)."""
        if self.last_cost is None:
            self.last_cost = SelectionCost()
        self.last_cost.details.update(details)

    def _check_answer(self, pool: ActivePool, indices: Tensor, budget: int) -> None:
        name = type(self).__name__
        if indices.shape != (budget,):
            raise RuntimeError(f"{name} returned {tuple(indices.shape)} indices for a budget of {budget}")
        if indices.unique().numel() != budget:
            raise RuntimeError(f"{name} returned repeated indices")
        if indices.min() < 0 or indices.max() >= len(pool) or pool.labeled_mask[indices].any():
            raise RuntimeError(f"{name} returned indices that are out of range or already labeled")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith(("_", "last_")))
        return f"{type(self).__name__}({fields})"


# The hooks were named rank and rank_over_ranks while "rank" also meant a process rank in the
# same functions. A subclass written for the old names still works, with a warning, and
# the old names still answer (each class's alias calls that class's hook, so super().rank too).
_RENAMED_HOOKS = {"query": "rank", "query_over_ranks": "rank_over_ranks"}


def _follow_renamed_hooks(cls: type) -> None:
    for new, old in _RENAMED_HOOKS.items():
        if old in cls.__dict__ and new not in cls.__dict__:
            warnings.warn(f"{cls.__name__}.{old}: the Strategy hook {old} is renamed {new}; define {new}", DeprecationWarning, stacklevel=3)
            setattr(cls, new, cls.__dict__[old])
        elif new in cls.__dict__ and old not in cls.__dict__:
            setattr(cls, old, _old_name_of(cls.__dict__[new], old, new))


def _old_name_of(hook, old: str, new: str):
    def renamed(self, *args, **kwargs):
        warnings.warn(f"Strategy.{old} is renamed Strategy.{new}", DeprecationWarning, stacklevel=2)
        return hook(self, *args, **kwargs)

    renamed.__name__, renamed.__doc__ = old, f"Deprecated name of :meth:`{new}`."
    return renamed


_follow_renamed_hooks(Strategy)


@torch.no_grad()
def predict_probabilities(model: nn.Module, loader: DataLoader, progress: bool = True, check: LogitsCheck | None = None) -> Tensor:
    """Softmax of the model's logits over a loader of input batches → float32 Tensor[N, C] on the
    model's device. Eval mode (dropout off, batch-norm running statistics); the mode is restored.
    ``check`` validates each batch's logits (default: named after this function, by loader row)."""
    check = check if check is not None else LogitsCheck("predict_probabilities", item="loader row")
    device = model_device(model)
    was_training = model.training
    model.eval()
    chunks, start = [], 0
    try:
        for x in tqdm(loader, desc="scoring", disable=not progress):
            chunks.append(check(model(x.to(device)), start, x.shape[0]).float().softmax(1))
            start += x.shape[0]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


class ItemScoreStrategy(Strategy):
    """A strategy whose query is the ``budget`` unlabeled items of highest :meth:`item_scores`,
    ties to the lower global index. An item's score depends on the item alone, so shards of the
    pool scored apart merge into the same query (:func:`torch_al.distributed.distributed_select`)."""

    def query(self, model, pool, budget):
        candidates = pool.unlabeled_indices
        picks, scores = highest_first(self.item_scores(model, pool, candidates), candidates, budget)
        return picks, scores.cpu()

    def query_over_ranks(self, model, pool, budget, shard):
        """Each rank scores its shard, one merge of the ranks' best (exact wherever an item's
        score does not depend on which items share its batch), unless the subclass ranks by a
        rule of its own."""
        if type(self).query is not ItemScoreStrategy.query:
            return super().query_over_ranks(model, pool, budget, shard)
        return shard.top(lambda rows: self.item_scores(model, pool, rows), budget)

    @abstractmethod
    def item_scores(self, model: nn.Module | None, pool: ActivePool, rows: Tensor) -> Tensor:
        """Tensor[n] scores of the pool items ``rows``, higher is more informative."""


class ScoreStrategy(ItemScoreStrategy):
    """Scores every unlabeled item from the model's predicted probabilities and keeps the top
    ``budget``. Ties go to the lower global index.

    Args:
        batch_size: scoring batch size.
        progress: show a progress bar while scoring.
    """

    def __init__(self, batch_size: int = 256, progress: bool = True) -> None:
        self.batch_size = batch_size
        self.progress = progress

    def scores(self, model: nn.Module, loader: DataLoader, check: LogitsCheck) -> Tensor:
        """Tensor[N] scores of the loader's items, their logits validated by ``check``; stochastic
        methods (MC dropout) override this to score batch by batch."""
        probabilities = predict_probabilities(model, loader, self.progress, check)
        self.charge(forward=probabilities.shape[0])
        return self.score(probabilities)

    @abstractmethod
    def score(self, probabilities: Tensor) -> Tensor:
        """Tensor[N, C] probabilities → Tensor[N] scores, higher is more informative."""

    def item_scores(self, model: nn.Module | None, pool: ActivePool, rows: Tensor) -> Tensor:
        """Tensor[n] scores of the pool items ``rows`` (checked: one per item, no NaN)."""
        if model is None:
            raise ValueError(f"{type(self).__name__} scores with a model; got model=None")
        scores = self.scores(model, inputs_loader(pool, rows, self.batch_size), LogitsCheck(type(self).__name__, rows))
        if scores.shape != rows.shape or scores.isnan().any():
            raise ValueError(f"{type(self).__name__}: the model gave {tuple(scores.shape)} scores (NaN?) for {rows.numel()} items")
        return scores
