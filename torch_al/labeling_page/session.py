"""What the labeling page does with the pool, apart from HTTP: the state of the query being
labeled, one answer at a time recorded and saved, undo, and the next sub-batch of a round asked in
parts. The state file is read before every change and written atomically after it, so a crash, a
reload of the page or a second page loses and duplicates nothing."""

import os
import threading
from collections.abc import Callable

import torch

from torch_al.item_views import ItemView, Render, view_item
from torch_al.pool import ActivePool
from torch_al.strategies.base import SubBatch

NextSubBatch = Callable[[ActivePool], SubBatch]


class AnswerRefused(ValueError):
    """An answer the ledger does not take; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LabelingSession:
    """Serves one pool's pending query to people, one answer at a time.

    Args:
        pool: the pool (its dataset gives the items); its state is read from ``state_path``.
        state_path: the pool's state file, read before and written after every answer.
        render: how to show an item (:func:`torch_al.item_views.view_item`).
        next_sub_batch: for a strategy that asks within its round (GALAXY, DIRECT): called with
            the pool when a sub-batch is answered and its round goes on; what it returns is
            proposed and saved, and shown next. None: the page says to run ``torch-al select``.
        strategy: the name recorded with such a sub-batch.
    """

    def __init__(self, pool: ActivePool, state_path: str | os.PathLike, render: Render | None = None, next_sub_batch: NextSubBatch | None = None, strategy: str | None = None) -> None:
        if pool.classes is None:
            raise ValueError("the pool's classes have no names: set them (ActivePool.set_classes, or --classes) so people label by name")
        self.pool, self.state_path, self.render = pool, os.fspath(state_path), render
        self.next_sub_batch, self.strategy = next_sub_batch, strategy
        self._lock = threading.Lock()
        self._given: list[tuple[int, int]] = []  # answers given through this session, for undo
        self._reopened: int | None = None
        self._query: list[int] = []  # the query on screen (kept once answered, so its last answer can be undone)
        self._shown: list[int] = []  # the query and the reopened item
        self._views: dict[int, ItemView] = {}
        self._reload()

    def _reload(self) -> None:
        """Reads the state file (written by this page, or by select / label beside it)."""
        if os.path.exists(self.state_path):
            self.pool.load(self.state_path)  # keeps the pool's class names; other recorded names are an error
        self._show_query()

    def _show_query(self) -> None:
        if self.pool.pending_query is not None:
            self._query = self.pool.pending_query.tolist()
        reopened = [self._reopened] if self._reopened is not None and self._reopened not in self._query else []
        if self._query + reopened != self._shown:
            self._shown, self._views = self._query + reopened, {}

    # ---- reading -----------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """What the page shows: the items, their labels so far, the progress and what comes next."""
        with self._lock:
            self._reload()
            self._ask_next_sub_batch()  # also after a restart, or when choosing it failed before
            return self._snapshot()

    def _snapshot(self) -> dict:
        pool = self.pool
        shown = torch.tensor(self._shown, dtype=torch.int64)
        known = pool.labeled_mask[shown]
        labels = torch.full_like(shown, -1)
        labels[known] = pool.labels_of(shown[known])  # one ledger read for all the items, not one each
        items = []
        for index, label in zip(self._shown, labels.tolist()):
            label = None if label < 0 else label
            view = self._view(index)
            items.append({"index": index, "label": label, "kind": view.kind, "text": view.content if view.kind == "text" else None})
        answered = int(known.sum())
        return {
            "round": pool.round + 1 if pool.pending_query is not None or pool.open_round else pool.round,
            "classes": list(pool.classes),
            "items": items,
            "answered": answered,
            "total": len(self._shown),
            "status": self._status(),
            "strategy": pool.pending_strategy,
            "open_round_answered": pool.open_round_answered,
            "reopened": self._reopened,
            "can_undo": bool(self._given),
        }

    def _status(self) -> str:
        if self.pool.pending_query is not None:
            return "labeling"
        if self.pool.open_round:
            return "waiting for the next sub-batch: run torch-al select (or start annotate with --model and --strategy), then reload"
        if self._shown:
            return f"round {self.pool.round} is complete: train on the new labels, then select the next query"
        return "no pending query: run torch-al select first, then reload"

    def view(self, index: int) -> ItemView:
        """An item of the query on screen (no other item is served)."""
        with self._lock:
            if index not in self._shown:
                raise AnswerRefused(f"item {index} is not in the query being labeled", status=404)
            return self._view(index)

    def _view(self, index: int) -> ItemView:
        if index not in self._views:
            self._views[index] = view_item(self.pool.inputs_of(self.pool.dataset[index]), self.render)
        return self._views[index]

    # ---- changes -----------------------------------------------------------------------------
    def answer(self, index, label) -> dict:
        """Records ``label`` (a class number) for item ``index`` of the pending query and saves.
        The same answer again is a no-op; another label for an answered item is refused unless
        that item was reopened by :meth:`undo` (then the ledger appends the correction)."""
        with self._lock:
            self._reload()
            index, label = self._checked(index, label)
            held = int(self.pool.labels_of([index])[0]) if self.pool.is_labeled(index) else None
            correction = index == self._reopened
            if held is None or (held != label and correction):
                self.pool.label([index], [label], relabel=correction)
                self.pool.save(self.state_path)
                self._given.append((index, label))
            elif held != label:
                raise AnswerRefused(f"item {index} is already labeled {self.pool.classes[held]!r}; undo reopens the last answer for a correction", status=409)
            if correction:
                self._reopened = None
                self._show_query()
            self._ask_next_sub_batch()
            return self._snapshot()

    def _checked(self, index, label) -> tuple[int, int]:
        for name, value in (("index", index), ("label", label)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise AnswerRefused(f"{name} must be an integer, got {value!r}")
        if not 0 <= label < len(self.pool.classes):
            raise AnswerRefused(f"label {label} is not a class: the classes are 0..{len(self.pool.classes) - 1} ({', '.join(self.pool.classes)})")
        pending = self.pool.pending_query
        if index != self._reopened and (pending is None or index not in pending.tolist()):
            raise AnswerRefused(f"item {index} is not in the pending query" + ("" if pending is not None else " (no query is pending)"), status=409)
        return index, label

    def undo(self) -> dict:
        """Reopens the last answer given here: its item is shown again for a new choice, which
        the ledger appends as a correction (the first answer stays on record)."""
        with self._lock:
            self._reload()
            if not self._given:
                raise AnswerRefused("nothing to undo: no answer was given on this page yet", status=409)
            self._reopened, _ = self._given.pop()
            self._show_query()
            return self._snapshot()

    def _ask_next_sub_batch(self) -> None:
        pool = self.pool
        if pool.pending_query is not None or not pool.open_round or self.next_sub_batch is None:
            return
        asked = self.next_sub_batch(pool)
        pool.propose(asked.indices, asked.scores, strategy=self.strategy, final=asked.final)
        pool.save(self.state_path)
        self._show_query()
