"""ActiveLearningLoop: train, evaluate, select, ask the oracle, label; checkpointed at every step."""

import json
import logging
import os
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from torch_al.checks import as_indices, check_int
from torch_al.generated_items_pool import TrainingSet
from torch_al.persistence import atomic_write_bytes, load_state, save_state, to_json
from torch_al.pool import ActivePool
from torch_al.provenance import code_version
from torch_al.pseudo_labeled_pool import PseudoLabeledPool, PseudoLabelSet
from torch_al.rounds import answer_round
from torch_al.seeding import derived_seed
from torch_al.strategies import Committee, SelectionCost, Strategy, SubBatch

logger = logging.getLogger("torch_al")

CHECKPOINT_KIND = "torch_al.ActiveLearningLoop"
TrainFn = Callable[[nn.Module, TrainingSet, int], None]
EvaluateFn = Callable[[nn.Module], dict[str, float]]
Oracle = Callable[[Tensor], Tensor | Sequence[int]]


class ActiveLearningLoop:
    """Runs ``rounds`` rounds of active learning and resumes where a previous run stopped.

    One round: train the model on the labeled items, evaluate it, select ``budget`` items, save
    the query (with the strategy's class name, ``pool.pending_strategy``), ask the oracle, record
    its labels. Each metrics record holds ``train_seconds``, ``commit`` (the git commit of the
    torch_al code that made it, ``"unknown"`` outside a checkout) and,
    when that model selected the next query, its cost: ``select_forward`` and ``select_backward``
    (images through a forward / backward pass) and ``select_seconds``, and what else the strategy
    measured as ``select_<name>`` (``SelectionCost.details``: DAL's discriminator accuracy,
    BatchBALD's sub-batches). ``checkpoint_dir/state.pt`` (pool, model weights,
    metrics) is written atomically after training, after selection and after labelling, so a
    killed run resumes from its last step: no label lost or duplicated, a saved query re-issued
    as it was. Before training and before selecting, torch's global RNG is seeded from
    (seed, round), so a resumed run repeats what an uninterrupted one would have done.

    A :class:`~torch_al.strategies.Committee` model (the ensemble strategies) is trained member
    by member: ``train(member, pool, round)`` for e = 0 .. E − 1, each after seeding torch's
    global RNG from (seed, round, member e), so every member draws its own dropout masks (and its
    own data order, if ``train`` draws it from that RNG); ``evaluate`` gets the committee (its
    forward is the members' mean prediction), the checkpoint holds every member's weights, and
    ``train_seconds`` covers all E trainings.

    A strategy that learns beside the model (:class:`~torch_al.strategies.LearningLoss`) has its
    ``state_dict()`` checkpointed with the model's weights and restored on resume; ``train``
    should minimise ``strategy.training_loss`` over the model's and ``strategy.extra_parameters``.

    A strategy that pseudo-labels (CEAL, ``strategy.last_pseudo_labels``) has the next training
    run on the ledger's labels plus its pseudo-labels: ``train`` then gets a
    :class:`PseudoLabeledPool` in place of the pool, once, and the record of the selecting model
    holds ``pseudo_labeled`` (how many) and ``pseudo_threshold``. Between that selection and that
    training they are ``loop.pseudo_labels``, saved in the checkpoint beside the pool, never in its
    ledger, so a resumed run trains on the same ones.

    Whatever ``train`` would get, it gets ``strategy.training_set(that)``: the same, unless the
    strategy adds items of its own (BGADL: a :class:`~torch_al.GeneratedItemsPool` that adds its
    generated images, kept in its ``state_dict()``, so a resumed run trains on the same set);
    then the record holds ``training_items``, the number of items trained on.

    Args:
        pool: the :class:`ActivePool` (may already hold labels).
        strategy: any :class:`Strategy`.
        model: the task model, or a :class:`~torch_al.strategies.Committee` of them; trained in
            place, round after round (fine-tuned, as in the papers).
        train: ``train(model, pool, round)`` trains on ``pool.labeled_indices`` (use an
            :class:`ActiveSampler`); ``pool`` is the :class:`ActivePool`, or a
            :class:`PseudoLabeledPool` over it when the strategy pseudo-labels, or what the
            strategy's ``training_set`` makes of these.
        budget: items selected per round (>= 1).
        rounds: selection rounds; the model is evaluated ``rounds + 1`` times.
        evaluate: ``evaluate(model) -> {"accuracy": ..., ...}``, recorded per round.
        oracle: ``oracle(indices) -> labels``; default the dataset's own labels (simulation).
        initial: items labeled before round 1: a count drawn at random from (seed), or indices.
        checkpoint_dir: where ``state.pt`` and ``metrics.json`` go; None keeps nothing on disk.
        seed: seeds the initial draw and each round's training and selection.
    """

    def __init__(
        self,
        pool: ActivePool,
        strategy: Strategy,
        model: nn.Module,
        train: TrainFn,
        budget: int,
        rounds: int,
        evaluate: EvaluateFn | None = None,
        oracle: Oracle | None = None,
        initial: int | Tensor | Sequence[int] = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        check_int(budget, "budget", 1)
        check_int(rounds, "rounds", 0)
        self.pool, self.strategy, self.model, self.train = pool, strategy, model, train
        self.budget, self.rounds, self.seed, self.progress = budget, rounds, seed, progress
        self.evaluate = evaluate or (lambda model: {})
        self.oracle = oracle or pool.dataset_labels
        self.initial = initial
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.metrics: list[dict] = []
        self.commit = code_version()["commit"]  # each record names the code that made it (a resumed run may have two)
        self.pseudo_labels: PseudoLabelSet | None = None  # from the last selection, for the next training only

    @property
    def state_path(self) -> str | None:
        return None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir, "state.pt")

    def run(self) -> list[dict]:
        """Runs (or resumes) to the last round; returns one metrics dict per evaluation."""
        if self.state_path and os.path.exists(self.state_path):
            self._restore()
        else:
            self._label_initial_set()
        needed = (self.rounds - self.pool.round) * self.budget - self.pool.open_round_answered
        available = int(self.pool.unlabeled_indices.numel())
        if needed > available:
            raise ValueError(f"{self.rounds} rounds × budget {self.budget} need {needed} more labels but only {available} items are unlabeled")
        with tqdm(total=self.rounds + 1, initial=len(self.metrics), desc="rounds", disable=not self.progress) as bar:
            while True:
                round_ = self.pool.round
                if len(self.metrics) == round_:
                    self._train_and_evaluate(round_)
                    bar.update()
                if round_ >= self.rounds:
                    return self.metrics
                self._query(round_ + 1)

    def _label_initial_set(self) -> None:
        if self.pool.labeled_indices.numel() or isinstance(self.initial, int) and self.initial == 0:
            self._checkpoint()
            return
        if isinstance(self.initial, int):
            generator = torch.Generator().manual_seed(derived_seed(self.seed, "initial"))
            candidates = self.pool.unlabeled_indices
            if not 0 < self.initial <= candidates.numel():
                raise ValueError(f"initial must be in [0, {candidates.numel()}], got {self.initial}")
            indices = candidates[torch.randperm(candidates.numel(), generator=generator)[: self.initial]].sort().values
        else:
            indices = as_indices(self.initial, "initial", len(self.pool))
        self.pool.label(indices, self.oracle(indices))
        logger.info("initial set: %d items labeled", indices.numel())
        self._checkpoint()

    def _train_and_evaluate(self, round_: int) -> None:
        start = time.perf_counter()
        labels = self.pool if self.pseudo_labels is None else PseudoLabeledPool(self.pool, self.pseudo_labels)
        training = self.strategy.training_set(labels)
        if isinstance(self.model, Committee):
            for member, model in enumerate(self.model.members):
                torch.manual_seed(derived_seed(self.seed, "train", round_, "member", member))
                self.train(model, training, round_)
        else:
            torch.manual_seed(derived_seed(self.seed, "train", round_))
            self.train(self.model, training, round_)
        seconds = time.perf_counter() - start
        self.pseudo_labels = None  # used once: the next selection makes new ones
        labeled = self.pool.labeled_indices
        record = {"round": round_, "labeled": int(labeled.numel()), **self.evaluate(self.model), "train_seconds": round(seconds, 3), "commit": self.commit}
        if training is not labels:
            record["training_items"] = int(training.labeled_indices.numel())
        self.metrics.append(record)
        logger.info("round %d: %s", round_, {k: v for k, v in record.items() if k != "round"})
        self._checkpoint()

    def _query(self, round_: int) -> None:
        """Asks until round ``round_`` is complete: one query, or sub-batches (a strategy that asks
        within its round), each saved before it is asked and its answers saved before the next."""
        if self.pool.pending_query is not None:
            logger.info("round %d: re-issuing the saved query of %d items", round_, self.pool.pending_query.numel())
        answer_round(self.pool, lambda: self._next_sub_batch(round_), self.oracle, self._checkpoint, type(self.strategy).__name__)

    def _next_sub_batch(self, round_: int) -> SubBatch:
        spent = self.pool.open_round_answered
        torch.manual_seed(derived_seed(self.seed, "select", round_, *([spent] if spent else [])))
        asked = self.strategy.next_sub_batch(self.model, self.pool, self.budget)
        logger.info("round %d: selection cost %s", round_, self.strategy.last_cost)
        self._add_cost(self.strategy.last_cost)
        if asked.final:
            self._keep_pseudo_labels(self.strategy.last_pseudo_labels)
        return asked

    def _keep_pseudo_labels(self, pseudo_labels: PseudoLabelSet | None) -> None:
        self.pseudo_labels = pseudo_labels
        if pseudo_labels is not None:
            self.metrics[-1].update(pseudo_labeled=len(pseudo_labels), pseudo_threshold=pseudo_labels.threshold)

    def _add_cost(self, cost: SelectionCost) -> None:
        """The cost of a selection goes into the record of the model that made it (the last one),
        summed over a round's sub-batches, and checkpointed with the query, so a resumed run keeps it."""
        record = self.metrics[-1]
        record["select_forward"] = record.get("select_forward", 0) + cost.forward
        record["select_backward"] = record.get("select_backward", 0) + cost.backward
        record["select_seconds"] = round(record.get("select_seconds", 0.0) + cost.seconds, 3)
        record.update({f"select_{name}": value for name, value in cost.details.items()})

    def _checkpoint(self) -> None:
        if self.state_path is None:
            return
        state = {f"pool/{key}": value for key, value in self.pool.state_dict().items()}
        state.update({f"model/{key}": value for key, value in self.model.state_dict().items()})
        state.update({f"strategy/{key}": value for key, value in self.strategy.state_dict().items()})
        state["metrics"] = to_json(self.metrics)
        state["loop"] = to_json(self._identity())
        if self.pseudo_labels is not None:  # beside the pool's state, never in its ledger
            pseudo = self.pseudo_labels
            state.update({"pseudo/indices": pseudo.indices, "pseudo/labels": pseudo.labels, "pseudo/threshold": pseudo.threshold})
        save_state(self.state_path, state, CHECKPOINT_KIND)
        atomic_write_bytes(os.path.join(self.checkpoint_dir, "metrics.json"), json.dumps(self.metrics, indent=1).encode())

    def _identity(self) -> dict:
        """What must not change between a run and its resumption (rounds may grow)."""
        identity = {"strategy": type(self.strategy).__name__, "budget": self.budget, "seed": self.seed}
        if isinstance(self.model, Committee):
            identity["members"] = len(self.model.members)
        return identity

    def _restore(self) -> None:
        state = load_state(self.state_path, CHECKPOINT_KIND)
        saved = json.loads(state["loop"])
        if saved != self._identity():
            raise ValueError(f"{self.state_path} was written by another run configuration: {saved}, this run: {self._identity()}")
        metrics = json.loads(state["metrics"])
        pool_state = {key[5:]: value for key, value in state.items() if key.startswith("pool/")}
        model_state = {key[6:]: value for key, value in state.items() if key.startswith("model/")}
        self.pool.load_state_dict(pool_state)
        self.model.load_state_dict(model_state)
        self.strategy.load_state_dict({key[9:]: value for key, value in state.items() if key.startswith("strategy/")})
        if len(metrics) not in (self.pool.round, self.pool.round + 1):
            raise ValueError(f"{self.state_path}: {len(metrics)} evaluations recorded for a pool at round {self.pool.round}")
        self.metrics = metrics
        self.pseudo_labels = None
        if "pseudo/indices" in state:  # saved by a selection whose pseudo-labels the next training needs
            self.pseudo_labels = PseudoLabelSet(state["pseudo/indices"], state["pseudo/labels"], float(state["pseudo/threshold"]))
        logger.info("resumed from %s at round %d (%d labeled)", self.state_path, self.pool.round, self.pool.labeled_indices.numel())
