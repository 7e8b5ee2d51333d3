"""ActivePool: a dataset with stable global indices and an append-only ledger of paid-for labels."""

import copy
import logging
import os
import time
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from torch_al.checks import as_indices, as_labels, check_class_names, dataset_fingerprint
from torch_al.persistence import load_state, save_state, to_json
from torch_al.pool_state import SCHEMA_VERSION, Ledger, Pending, parse_classes, parse_pool_state

logger = logging.getLogger("torch_al")

STATE_KIND = "torch_al.ActivePool"
ItemKey = int | str


def agreed_classes(recorded: tuple[str, ...] | None, given: tuple[str, ...], labels: Tensor) -> tuple[str, ...]:
    """``given`` class names, checked against the names ``recorded`` before (None: none were) and
    the ``labels`` a ledger holds."""
    if recorded is not None and given != recorded:
        raise ValueError(f"the class names {list(given)} are not the {list(recorded)} recorded for this pool (label k is classes[k]; another order would swap labels)")
    top = int(labels.max()) if labels.numel() else -1
    if top >= len(given):
        raise ValueError(f"the ledger already holds label {top}, but {len(given)} class names cover labels 0..{len(given) - 1}")
    return given


class ActivePool(Dataset):
    """Wraps a map-style dataset (left unmodified) for active learning.

    Every item keeps its dataset index as its **global index**: queries, labels and samplers use
    it, never a position that shifts as the pool shrinks. Labels live in an append-only ledger;
    the labeled and unlabeled views are derived from it. A query that was issued but not yet
    labeled is kept (``pending_query``, with the name of the strategy that chose it,
    ``pending_strategy``) and saved, so a restart re-issues the same batch.

    ``pool[i]`` is ``(inputs_i, label_i)`` with the ledger's label, so
    ``DataLoader(pool, sampler=ActiveSampler(pool))`` trains on paid-for labels only.

    Args:
        dataset: any map-style dataset: items ``(x, y, ...)``, dicts, or bare inputs.
        input_key: where the inputs are in a tuple or dict item (ignored for bare items).
        target_key: where the dataset's own label is (for simulations), or None when it has none.
        classes: the class names, label ``k`` being ``classes[k]`` (see :meth:`set_classes`), or
            None while they are not known.
    """

    def __init__(self, dataset, input_key: ItemKey = 0, target_key: ItemKey | None = 1, classes: Sequence[str] | None = None) -> None:
        self.dataset = dataset
        self.input_key = input_key
        self.target_key = target_key
        self.fingerprint = dataset_fingerprint(dataset)
        self._reset(Ledger(*(torch.empty(0, dtype=torch.int64),) * 3, torch.empty(0, dtype=torch.float64)), 0, None)
        self._classes: tuple[str, ...] | None = None
        if classes is not None:
            self.set_classes(classes)

    def _reset(self, ledger: Ledger, round_: int, pending: Pending | None, open_round: list[Tensor] | None = None) -> None:
        size = len(self.dataset)
        self._rows = [ledger.index.tolist(), ledger.label.tolist(), ledger.round.tolist(), ledger.time.tolist()]
        self._is_labeled = torch.zeros(size, dtype=torch.bool)
        self._label = torch.zeros(size, dtype=torch.int64)
        self._is_labeled[ledger.index] = True
        # A relabel appends a row: the last row of an index holds its current label.
        last_row = torch.full((size,), -1, dtype=torch.int64).scatter_reduce_(0, ledger.index, torch.arange(len(ledger.index)), "amax")
        self._label[self._is_labeled] = ledger.label[last_row[self._is_labeled]]
        self.round = round_
        self._pending = pending
        self._open_round = list(open_round or [])

    # ---- views -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if not self._is_labeled[index]:
            raise KeyError(f"item {index} is not labeled yet; only labeled items can be read from the pool")
        return self.inputs_of(self.dataset[index]), int(self._label[index])

    def inputs_of(self, item):
        """The inputs part of a dataset item."""
        return item[self.input_key] if isinstance(item, (tuple, list, dict)) else item

    @property
    def labeled_indices(self) -> Tensor:
        """int64 Tensor[L], ascending."""
        return self._is_labeled.nonzero().flatten()

    @property
    def unlabeled_indices(self) -> Tensor:
        """int64 Tensor[U], ascending (the pending query's items are still unlabeled)."""
        return (~self._is_labeled).nonzero().flatten()

    @property
    def labeled_mask(self) -> Tensor:
        """bool Tensor[N] (a copy)."""
        return self._is_labeled.clone()

    def is_labeled(self, index: int) -> bool:
        """Whether the ledger holds a label for one item (no copy: for datasets that serve training)."""
        return bool(self._is_labeled[index])

    def labels_of(self, indices) -> Tensor:
        """The ledger's current labels of labeled items, int64 Tensor[K]."""
        indices = as_indices(indices, "indices", len(self))
        missing = indices[~self._is_labeled[indices]]
        if missing.numel():
            raise KeyError(f"items {missing[:5].tolist()} are not labeled")
        return self._label[indices]

    def dataset_labels(self, indices) -> Tensor:
        """The dataset's own labels (a simulated oracle), int64 Tensor[K]."""
        if self.target_key is None:
            raise ValueError("the dataset's items carry no labels (target_key=None): give the loop an oracle")
        indices = as_indices(indices, "indices", len(self))
        return torch.tensor([int(self.dataset[i][self.target_key]) for i in indices.tolist()], dtype=torch.int64)

    @property
    def ledger(self) -> Ledger:
        index, label, round_, stamp = self._rows
        as_long = lambda values: torch.tensor(values, dtype=torch.int64)  # noqa: E731
        return Ledger(as_long(index), as_long(label), as_long(round_), torch.tensor(stamp, dtype=torch.float64))

    @property
    def pending_query(self) -> Tensor | None:
        """Indices issued by :meth:`propose` and not yet all labeled, in the order issued."""
        return None if self._pending is None else self._pending.indices.clone()

    @property
    def pending_scores(self) -> Tensor | None:
        return None if self._pending is None or self._pending.scores is None else self._pending.scores.clone()

    @property
    def pending_strategy(self) -> str | None:
        """The name of the strategy that chose the pending query, as given to :meth:`propose`; None
        when no query is pending, when none was given, or for a state saved before it was recorded."""
        return None if self._pending is None else self._pending.strategy

    @property
    def pending_final(self) -> bool | None:
        """Whether labelling the pending query completes its round (None when none is pending);
        False for a sub-batch of a strategy that asks while it selects (more follow)."""
        return None if self._pending is None else self._pending.final

    @property
    def open_round(self) -> list[Tensor]:
        """The sub-batches of round ``round + 1`` answered so far, in the order asked (each
        proposed with ``final=False`` and labeled); empty unless a round answered in sub-batches
        is in progress."""
        return [batch.clone() for batch in self._open_round]

    @property
    def open_round_answered(self) -> int:
        """How many items the open round's answered sub-batches hold (0 when none is open)."""
        return sum(batch.numel() for batch in self._open_round)

    def at_round_start(self) -> "ActivePool":
        """A copy of the pool as it stood when the open round began: the answers to its
        sub-batches unknown, nothing pending, the same round. A strategy whose round is asked in
        sub-batches reads it where a choice must not see the round's own answers (so that a replay,
        made after they came, chooses the same)."""
        opened = copy.copy(self)
        ledger = self.ledger
        asked = torch.cat(self._open_round) if self._open_round else torch.empty(0, dtype=torch.int64)
        kept = ~(torch.isin(ledger.index, asked) & (ledger.round == self.round + 1))
        opened._reset(Ledger(*(column[kept] for column in ledger)), self.round, None)
        return opened

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The class names (label ``k`` is ``classes[k]``), saved with the state; None until set."""
        return self._classes

    # ---- changes -----------------------------------------------------------------------------
    def set_classes(self, classes: Sequence[str]) -> None:
        """Names the classes once: people label by name (the labeling page, Label Studio), the
        ledger keeps ``k``. Giving the same names again is a no-op; other names (another order
        included, which would swap labels silently) are an error. Once named, labels outside
        ``[0, len(classes))`` are refused."""
        self._classes = agreed_classes(self._classes, check_class_names(classes), self._label[self._is_labeled])

    def propose(self, indices, scores: Tensor | None = None, strategy: str | None = None, final: bool = True) -> None:
        """Records a query for round ``round + 1`` before anyone sees it (save the pool next).

        Proposing the pending query again is a no-op (its recorded strategy stays); proposing
        another one while it is pending is an error (label it, or :meth:`discard_query`).

        Args:
            indices: the query's global indices, distinct and unlabeled, in the order issued.
            scores: one score per index, or None.
            strategy: the name of the strategy that chose the query (saved with it, read back as
                :attr:`pending_strategy`), or None.
            final: whether labelling it completes round ``round + 1``; False for a sub-batch of a
                round answered in parts: once labeled it joins :attr:`open_round` and the next
                query is again for round ``round + 1``.
        """
        if not isinstance(final, bool):
            raise TypeError(f"final must be a bool, got {type(final).__name__}")
        if strategy is not None and (not isinstance(strategy, str) or not strategy):
            raise TypeError(f"strategy must be a non-empty str (the strategy's name) or None, got {strategy!r}")
        indices = as_indices(indices, "query indices", len(self))
        if indices.numel() == 0:
            raise ValueError("a query needs at least one index")
        if self._pending is not None:
            if torch.equal(self._pending.indices, indices):
                return
            raise RuntimeError(
                f"a query of {self._pending.indices.numel()} items for round {self._pending.round} is pending: "
                "label it, or call discard_query() before proposing another"
            )
        taken = indices[self._is_labeled[indices]]
        if taken.numel():
            raise ValueError(f"query indices {taken[:5].tolist()} are already labeled")
        if scores is not None:
            scores = scores.detach().to("cpu", torch.float64)
            if scores.shape != indices.shape:
                raise ValueError(f"scores must have shape {tuple(indices.shape)} (one per index), got {tuple(scores.shape)}")
        self._pending = Pending(indices, scores, self.round + 1, strategy, final)
        logger.info("round %d: query of %d items issued%s", self.round + 1, indices.numel(), f" by {strategy}" if strategy else "")

    def discard_query(self) -> None:
        """Forgets the pending query (its labeled part stays labeled, the ledger is unchanged); the
        pool stays at its round, so the next :meth:`propose` is again for round ``round + 1``
        (sub-batches already answered stay in :attr:`open_round`)."""
        self._pending = None

    def label(self, indices, labels, relabel: bool = False) -> None:
        """Records annotations; all-or-nothing (on any error nothing is recorded).

        Labelling an item again with its current label is a no-op; with a different label it is an
        error unless ``relabel=True``, which appends a new ledger row (the old one stays). Labels of
        the pending query's items, and corrections of the sub-batches its round answered already,
        count for that round (``round + 1``); once all of the query's items are labeled the round
        completes and ``round`` advances (a sub-batch, ``final=False``, joins :attr:`open_round`
        instead).

        Args:
            indices: global indices (int Tensor, list or array), distinct, in ``[0, len(pool))``.
            labels: integer class labels, one per index.
        """
        indices = as_indices(indices, "indices", len(self))
        labels = as_labels(labels, indices.numel())
        if self._classes is not None and labels.numel() and int(labels.max()) >= len(self._classes):
            raise ValueError(f"label {int(labels.max())} is not a class of this pool: its {len(self._classes)} classes {list(self._classes)} are labels 0..{len(self._classes) - 1}")
        known = self._is_labeled[indices]
        changed = known & (self._label[indices] != labels)
        if changed.any() and not relabel:
            first = int(indices[changed][0])
            raise ValueError(
                f"item {first} is already labeled {int(self._label[first])}, not {int(labels[changed][0])} "
                f"({int(changed.sum())} conflicting items); pass relabel=True to record a correction"
            )
        record = ~known | changed
        # The open round's items (the pending query, the sub-batches answered) count for it, corrections included.
        in_open_round = torch.zeros(len(self), dtype=torch.bool)
        for batch in self._open_round + ([self._pending.indices] if self._pending is not None else []):
            in_open_round[batch] = True
        rounds = torch.where(in_open_round[indices], self.round + 1, self.round)
        now = time.time()
        for column, values in zip(self._rows, (indices[record], labels[record], rounds[record])):
            column.extend(values.tolist())
        self._rows[3].extend([now] * int(record.sum()))
        self._is_labeled[indices] = True
        self._label[indices] = labels
        if self._pending is not None and self._is_labeled[self._pending.indices].all():
            self._answered(self._pending)

    def _answered(self, query: Pending) -> None:
        self._pending = None
        if not query.final:
            self._open_round.append(query.indices)
            logger.info("round %d: sub-batch %d answered (%d items so far)", query.round, len(self._open_round), sum(map(len, self._open_round)))
            return
        self.round, self._open_round = query.round, []
        logger.info("round %d complete: %d items labeled", self.round, int(self._is_labeled.sum()))

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain data (int64/float64 tensors, ints, a JSON string): safe for ``weights_only`` loads."""
        ledger = self.ledger
        pending, scores, pending_round, strategy, final = self._pending or (torch.empty(0, dtype=torch.int64), None, -1, None, True)
        meta = {
            "fingerprint": self.fingerprint,
            "round": self.round,
            "pending_round": pending_round,
            "has_scores": scores is not None,
            "pending_strategy": strategy,
            "pending_final": final,
            "classes": list(self._classes) if self._classes is not None else None,
        }
        empty = torch.empty(0, dtype=torch.int64)
        return {
            "schema_version": SCHEMA_VERSION,
            "meta": to_json(meta),
            "ledger_index": ledger.index,
            "ledger_label": ledger.label,
            "ledger_round": ledger.round,
            "ledger_time": ledger.time,
            "pending_indices": pending.clone(),
            "pending_scores": scores.clone() if scores is not None else torch.empty(0, dtype=torch.float64),
            "open_round_indices": torch.cat(self._open_round) if self._open_round else empty,
            "open_round_sizes": torch.tensor([len(batch) for batch in self._open_round], dtype=torch.int64) if self._open_round else empty.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores a state after checking all of it; on any error the pool is left unchanged. Class
        names given to the pool and recorded in the state must be the same; either alone is kept."""
        parsed, recorded = parse_pool_state(state, self.fingerprint), parse_classes(state)
        # The names this pool was given stay when the state has none, and must agree when it has.
        classes = recorded if self._classes is None else agreed_classes(recorded, self._classes, parsed[0].label)
        self._reset(*parsed)
        self._classes = classes

    def save(self, path: str | os.PathLike) -> None:
        """Writes the state atomically: a crash mid-save leaves the previous file intact."""
        save_state(path, self.state_dict(), STATE_KIND)

    def load(self, path: str | os.PathLike) -> "ActivePool":
        """Loads a state saved by :meth:`save` (checksum, schema version and dataset are checked)."""
        self.load_state_dict(load_state(path, STATE_KIND))
        return self

    def __repr__(self) -> str:
        pending = f", pending={self._pending.indices.numel()}" if self._pending is not None else ""
        return f"ActivePool(size={len(self)}, labeled={int(self._is_labeled.sum())}, round={self.round}{pending})"
