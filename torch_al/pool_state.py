"""The ActivePool state format (schema version 3) and every check made before a state is used.

Version 2 added ``pending_strategy`` to the ``meta`` entry (the name of the strategy that chose the
pending query, or null); a version-1 state, which has no such field, loads with None. Version 3
added rounds answered in sub-batches: ``pending_final`` in ``meta`` (whether labelling the pending
query completes its round) and ``open_round_indices`` / ``open_round_sizes`` (the sub-batches of
the round in progress answered so far); an older state loads with a final query and no sub-batch. ``classes`` in ``meta`` (a list of
class names, or null; absent in states written before it existed, read as null) needs no new
version: a torch_al that does not know it ignores it.
"""

import json
from typing import NamedTuple

import torch
from torch import Tensor

from torch_al.checks import check_class_names

SCHEMA_VERSION = 3


class Ledger(NamedTuple):
    """One row per recorded annotation, oldest first (Tensor[R] each)."""

    index: Tensor  # int64 global index
    label: Tensor  # int64 class label
    round: Tensor  # int64 round the label was paid for (0: the initial set)
    time: Tensor  # float64 seconds since the epoch


def _tensor(state: dict, key: str, dtype: torch.dtype) -> Tensor:
    value = state.get(key)
    if not isinstance(value, Tensor) or value.dim() != 1 or value.dtype != dtype:
        got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"pool state: {key!r} must be a 1-D {dtype} tensor, got {got}")
    return value.clone()


def _meta(state: dict) -> dict:
    version = state.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"pool state: missing or invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise ValueError(f"pool state has schema version {version}, written by a newer torch_al; this one reads up to {SCHEMA_VERSION}")
    try:
        return json.loads(state["meta"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"pool state: unreadable 'meta' entry ({error})") from error


class Pending(NamedTuple):
    """A query issued and not yet all labeled."""

    indices: Tensor  # int64 global indices, in the order issued
    scores: Tensor | None  # float64, one per index
    round: int  # the round it is for: the pool's round + 1
    strategy: str | None  # the name of the strategy that chose it
    final: bool  # whether labelling it completes its round (False: a sub-batch, more follow)


def parse_pool_state(state: dict, fingerprint: dict) -> tuple[Ledger, int, Pending | None, list[Tensor]]:
    """Validates a state dict against the dataset's fingerprint → (ledger, round, pending query,
    the open round's answered sub-batches).

    Raises:
        ValueError: another dataset, a newer schema, or an inconsistent ledger or query.
    """
    meta = _meta(state)
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(
            f"this pool state belongs to another dataset: state {meta.get('fingerprint')}, "
            f"dataset {fingerprint} (size and hash of sampled items must match)"
        )
    size = fingerprint["size"]
    ledger = Ledger(*(_tensor(state, f"ledger_{k}", torch.int64) for k in ("index", "label", "round")), _tensor(state, "ledger_time", torch.float64))
    if len({column.numel() for column in ledger}) != 1:
        raise ValueError(f"pool state: ledger columns differ in length: {[column.numel() for column in ledger]}")
    round_ = meta.get("round")
    if not isinstance(round_, int) or round_ < 0:
        raise ValueError(f"pool state: invalid round {round_!r}")
    outside = ledger.index[(ledger.index < 0) | (ledger.index >= size)]
    if outside.numel():
        raise ValueError(f"pool state: ledger indices {outside[:5].tolist()} are outside [0, {size})")
    pending = _pending(state, meta, size, round_)
    # Rows of round + 1: labels of the pending query, or of a discarded one (they stay in the ledger).
    future = ledger.round[(ledger.round < 0) | (ledger.round > round_ + 1)]
    if future.numel():
        raise ValueError(f"pool state: ledger rows of rounds {future[:5].tolist()} but the pool is at round {round_}")
    labeled = torch.zeros(size, dtype=torch.bool)
    labeled[ledger.index] = True
    if pending is not None and labeled[pending.indices].all():
        raise ValueError("pool state: the pending query is fully labeled but its round was not completed")
    return ledger, round_, pending, _open_round(state, ledger, round_, pending)


def parse_classes(state: dict) -> tuple[str, ...] | None:
    """The class names recorded in a state, or None."""
    classes = _meta(state).get("classes")
    try:
        return None if classes is None else check_class_names(classes)
    except (TypeError, ValueError) as error:
        raise ValueError(f"pool state: invalid classes entry ({error})") from error


def _pending_strategy(state: dict, meta: dict) -> str | None:
    if "pending_strategy" not in meta:
        if state["schema_version"] >= 2:
            raise ValueError("pool state: 'meta' has no 'pending_strategy' entry (schema versions 2 and later write one)")
        return None  # version 1 did not record it
    strategy = meta["pending_strategy"]
    if strategy is not None and (not isinstance(strategy, str) or not strategy):
        raise ValueError(f"pool state: pending_strategy must be a non-empty string or null, got {strategy!r}")
    return strategy


def _pending(state: dict, meta: dict, size: int, round_: int) -> Pending | None:
    indices = _tensor(state, "pending_indices", torch.int64)
    scores = _tensor(state, "pending_scores", torch.float64)
    strategy = _pending_strategy(state, meta)
    if meta.get("pending_round", -1) == -1:
        if indices.numel():
            raise ValueError("pool state: pending indices without a pending round")
        if strategy is not None:
            raise ValueError(f"pool state: a pending strategy ({strategy!r}) without a pending query")
        return None
    if meta["pending_round"] != round_ + 1:
        raise ValueError(f"pool state: pending query for round {meta['pending_round']} but the pool is at round {round_}")
    if indices.numel() and (indices.min() < 0 or indices.max() >= size or indices.unique().numel() != indices.numel()):
        raise ValueError(f"pool state: pending indices must be distinct and in [0, {size})")
    if meta.get("has_scores") and scores.shape != indices.shape:
        raise ValueError(f"pool state: {scores.numel()} pending scores for {indices.numel()} indices")
    final = meta.get("pending_final", True) if state["schema_version"] < 3 else meta.get("pending_final")
    if not isinstance(final, bool):
        raise ValueError(f"pool state: pending_final must be true or false, got {final!r}")
    return Pending(indices, scores if meta.get("has_scores") else None, round_ + 1, strategy, final)


def _open_round(state: dict, ledger: Ledger, round_: int, pending: Pending | None) -> list[Tensor]:
    """The sub-batches of round ``round_ + 1`` answered so far: each labeled in that round."""
    if state["schema_version"] < 3:
        return []
    indices = _tensor(state, "open_round_indices", torch.int64)
    sizes = _tensor(state, "open_round_sizes", torch.int64)
    if (sizes < 1).any() or int(sizes.sum()) != indices.numel():
        raise ValueError(f"pool state: open_round_sizes {sizes.tolist()[:5]} must be positive and sum to the {indices.numel()} open-round indices")
    answered = ledger.index[ledger.round == round_ + 1]
    if indices.unique().numel() != indices.numel() or not torch.isin(indices, answered).all():
        raise ValueError(f"pool state: the open round's sub-batches must be distinct items labeled in round {round_ + 1}")
    if pending is not None and torch.isin(pending.indices, indices).any():
        raise ValueError("pool state: the pending query repeats items of the open round's answered sub-batches")
    return list(indices.split(sizes.tolist()))
