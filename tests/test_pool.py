"""ActivePool: the label ledger, the pending query, and the state file (round trip, corruption,
wrong dataset, interrupted saves)."""

import json
import os

import pytest
import torch
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.persistence import StateFileError, save_state, to_json
from torch_al.pool import STATE_KIND
from torch_al.pool_state import SCHEMA_VERSION


def make_pool(n=20, seed=0) -> ActivePool:
    generator = torch.Generator().manual_seed(seed)
    return ActivePool(TensorDataset(torch.randn(n, 3, generator=generator), torch.arange(n) % 4))


def snapshot(pool: ActivePool):
    ledger = pool.ledger
    pending = None if pool.pending_query is None else pool.pending_query.tolist()
    return (ledger.index.tolist(), ledger.label.tolist(), ledger.round.tolist(), pool.round, pending)


def test_labels_use_global_indices_and_views_follow_the_ledger():
    pool = make_pool()
    pool.label(torch.tensor([7, 2]), torch.tensor([1, 3]))
    pool.label([11], [0])
    assert pool.labeled_indices.tolist() == [2, 7, 11]
    assert pool.unlabeled_indices.numel() == 17 and 7 not in pool.unlabeled_indices.tolist()
    assert pool.labels_of([11, 7]).tolist() == [0, 1]
    assert pool[7][1] == 1 and torch.equal(pool[7][0], pool.dataset[7][0])
    assert pool.ledger.index.tolist() == [7, 2, 11] and pool.ledger.round.tolist() == [0, 0, 0]
    with pytest.raises(KeyError, match="item 3 is not labeled"):
        pool[3]


def test_dict_and_bare_items():
    rows = [{"image": torch.full((2,), float(i)), "label": i % 2} for i in range(6)]
    pool = ActivePool(rows, input_key="image", target_key="label")
    assert pool.dataset_labels([1, 2]).tolist() == [1, 0]
    pool.label([4], [1])
    assert pool[4][0].tolist() == [4.0, 4.0]
    bare = ActivePool(torch.randn(5, 2), target_key=None)
    with pytest.raises(ValueError, match="carry no labels"):
        bare.dataset_labels([0])


@pytest.mark.parametrize(
    "indices, labels, error, message",
    [
        ([3, 25], [0, 1], IndexError, r"out of range: \[25\] not in \[0, 20\)"),
        ([-1], [0], IndexError, r"out of range: \[-1\]"),
        ([4, 4], [0, 0], ValueError, r"repeats: \[4\]"),
        ([1.0], [0], TypeError, "integer indices"),
        (torch.tensor([True]), [0], TypeError, "integer indices"),
        ([1, 2], [0.5, 1], TypeError, "labels must be ints, got float 0.5"),
        ([1], torch.tensor([1.0]), TypeError, "integer class labels"),
        ([1], [True], TypeError, "labels must be ints, got bool"),
        ([1], "a", TypeError, "sequence or tensor of ints"),
        ([1, 2], [0], ValueError, r"expected 2 labels"),
        ([0, 5], [1, 2], ValueError, "item 5 is already labeled 3, not 2"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_recorded(indices, labels, error, message):
    pool = make_pool()
    pool.label([5, 6], [3, 3])
    before = snapshot(pool)
    with pytest.raises(error, match=message):
        pool.label(indices, labels)
    assert snapshot(pool) == before


def test_relabel_is_explicit_and_same_label_is_a_no_op():
    pool = make_pool()
    pool.label([5], [3])
    pool.label([5], [3])
    assert pool.ledger.index.tolist() == [5]
    pool.label([5], [1], relabel=True)
    assert pool.ledger.label.tolist() == [3, 1] and pool.labels_of([5]).tolist() == [1]


def test_pending_query_completes_its_round():
    pool = make_pool()
    pool.propose(torch.tensor([9, 1, 4]), torch.tensor([0.9, 0.5, 0.1]))
    pool.propose(torch.tensor([9, 1, 4]))  # the same query again: a no-op
    with pytest.raises(RuntimeError, match="pending"):
        pool.propose([2])
    pool.label([9, 1], [1, 1])
    assert pool.round == 0 and pool.pending_query.tolist() == [9, 1, 4]
    pool.label([4], [0])
    assert pool.round == 1 and pool.pending_query is None
    assert pool.ledger.round.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match=r"already labeled"):
        pool.propose([4, 5])
    with pytest.raises(ValueError, match="at least one"):
        pool.propose([])


def test_state_round_trip_is_plain_data(tmp_path):
    pool = make_pool()
    pool.label([3, 8], [1, 2])
    pool.propose([0, 19], torch.tensor([0.25, 0.5]))
    pool.label([0], [0])
    path = tmp_path / "pool.pt"
    pool.save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["schema_version"] == SCHEMA_VERSION == 3 and raw["format"] == "torch_al.ActivePool"
    restored = make_pool().load(path)
    assert snapshot(restored) == snapshot(pool)
    assert restored.pending_scores.tolist() == [0.25, 0.5]
    assert torch.equal(restored.ledger.time, pool.ledger.time)
    other = make_pool()
    other.load_state_dict(pool.state_dict())
    assert snapshot(other) == snapshot(pool)


def test_state_of_another_dataset_is_refused(tmp_path):
    pool = make_pool()
    pool.label([1], [1])
    pool.save(tmp_path / "pool.pt")
    for other in (make_pool(seed=1), make_pool(n=21)):
        with pytest.raises(ValueError, match="belongs to another dataset"):
            other.load(tmp_path / "pool.pt")
        assert other.labeled_indices.numel() == 0


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_state_gives_a_clear_error_and_changes_nothing(tmp_path, damage):
    good = make_pool()
    good.label([2], [2])
    good.save(tmp_path / "good.pt")
    bad = tmp_path / "bad.pt"
    data = (tmp_path / "good.pt").read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        position = data.index(b"\x02\x00\x00\x00\x00\x00\x00\x00")  # the ledger label 2 (int64)
        data = data[:position] + b"\x03" + data[position + 1 :]
    else:
        data = b""
    bad.write_bytes(data)
    pool = make_pool().load(tmp_path / "good.pt")
    with pytest.raises(StateFileError, match="corrupt"):
        pool.load(bad)
    assert pool.labels_of([2]).tolist() == [2] and pool.labeled_indices.tolist() == [2]


def test_newer_schema_and_inconsistent_states_are_refused():
    pool = make_pool()
    state = pool.state_dict()
    with pytest.raises(ValueError, match="newer torch_al"):
        pool.load_state_dict({**state, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(ValueError, match=r"outside \[0, 20\)"):
        ledger = {"ledger_index": torch.tensor([20]), "ledger_label": torch.tensor([0]), "ledger_round": torch.tensor([0]), "ledger_time": torch.tensor([0.0], dtype=torch.float64)}
        pool.load_state_dict({**state, **ledger})
    with pytest.raises(ValueError, match="must be a 1-D torch.int64 tensor"):
        pool.load_state_dict({**state, "ledger_label": torch.tensor([0.0])})


def test_the_pending_strategy_is_recorded_saved_and_cleared():
    pool = make_pool()
    pool.propose([9, 1, 4], strategy="entropy")
    assert pool.pending_strategy == "entropy"
    pool.propose([9, 1, 4], strategy="random")  # the same query again: a no-op, the first record stays
    assert pool.pending_strategy == "entropy"
    restored = make_pool()
    restored.load_state_dict(pool.state_dict())
    assert restored.pending_strategy == "entropy" and restored.pending_query.tolist() == [9, 1, 4]
    assert json.loads(pool.state_dict()["meta"])["pending_strategy"] == "entropy"
    pool.label([9, 1, 4], [0, 1, 0])  # the round completes: nothing pending, no strategy
    assert pool.pending_strategy is None and json.loads(pool.state_dict()["meta"])["pending_strategy"] is None
    pool.propose([2])  # no name given
    assert pool.pending_strategy is None
    with pytest.raises(TypeError, match="strategy must be a non-empty str"):
        make_pool().propose([2], strategy=object())
    with pytest.raises(TypeError, match="strategy must be a non-empty str"):
        make_pool().propose([2], strategy="")


def version_1_state(pool: ActivePool, ledger, round_: int, pending: list[int], pending_round: int) -> dict:
    """A state laid out as schema version 1 wrote it: no pending_strategy in meta."""
    index, label, rounds = (torch.tensor(column, dtype=torch.int64) for column in ledger)
    meta = {"fingerprint": pool.fingerprint, "round": round_, "pending_round": pending_round, "has_scores": False}
    return {
        "schema_version": 1,
        "meta": to_json(meta),
        "ledger_index": index,
        "ledger_label": label,
        "ledger_round": rounds,
        "ledger_time": torch.full((len(index),), 1.7e9, dtype=torch.float64),
        "pending_indices": torch.tensor(pending, dtype=torch.int64),
        "pending_scores": torch.empty(0, dtype=torch.float64),
    }


def test_a_version_1_state_loads_without_a_pending_strategy(tmp_path):
    old = version_1_state(make_pool(), ([3, 8, 5], [1, 2, 0], [0, 0, 1]), 0, [5, 6, 7], 1)
    save_state(tmp_path / "old.pt", old, STATE_KIND)  # checksummed and tagged as the old version saved it
    pool = make_pool().load(tmp_path / "old.pt")
    assert pool.pending_strategy is None and pool.pending_query.tolist() == [5, 6, 7] and pool.pending_scores is None
    assert snapshot(pool) == ([3, 8, 5], [1, 2, 0], [0, 0, 1], 0, [5, 6, 7])
    pool.label([6, 7], [3, 3])  # the old query completes as before
    assert pool.round == 1 and pool.pending_query is None
    pool.save(tmp_path / "old.pt")  # saved again: as the current version, with the field
    raw = torch.load(tmp_path / "old.pt", weights_only=True)
    assert raw["schema_version"] == SCHEMA_VERSION and json.loads(raw["meta"])["pending_strategy"] is None
    idle = make_pool()
    idle.load_state_dict(version_1_state(idle, ([3], [1], [0]), 0, [], -1))
    assert idle.pending_query is None and idle.pending_strategy is None and idle.labeled_indices.tolist() == [3]


def test_a_version_2_state_must_hold_a_consistent_pending_strategy():
    pool = make_pool()
    pool.propose([4], strategy="margin")
    state = pool.state_dict()
    meta = json.loads(state["meta"])
    without = {key: value for key, value in meta.items() if key != "pending_strategy"}
    with pytest.raises(ValueError, match="no 'pending_strategy' entry"):
        make_pool().load_state_dict({**state, "meta": to_json(without)})
    with pytest.raises(ValueError, match="pending_strategy must be a non-empty string or null, got 3"):
        make_pool().load_state_dict({**state, "meta": to_json({**meta, "pending_strategy": 3})})
    idle = make_pool().state_dict()
    idle_meta = json.loads(idle["meta"])
    with pytest.raises(ValueError, match="a pending strategy .'margin'. without a pending query"):
        make_pool().load_state_dict({**idle, "meta": to_json({**idle_meta, "pending_strategy": "margin"})})


def test_discarding_a_partly_labeled_query_keeps_its_labels_and_the_ledger(tmp_path):
    pool = make_pool()
    pool.label([0], [0])
    pool.propose([9, 1, 4], strategy="entropy")
    pool.label([1, 4], [1, 0])  # two of the three answered
    before = pool.ledger
    pool.discard_query()
    assert pool.pending_query is None and pool.pending_strategy is None and pool.round == 0
    assert all(torch.equal(a, b) for a, b in zip(pool.ledger, before))
    assert pool.labeled_indices.tolist() == [0, 1, 4] and pool.labels_of([1, 4]).tolist() == [1, 0]
    pool.save(tmp_path / "pool.pt")  # the rows of round 1 without a pending query still load
    restored = make_pool().load(tmp_path / "pool.pt")
    assert all(torch.equal(a, b) for a, b in zip(restored.ledger, before))
    assert restored.round == 0 and restored.pending_query is None
    restored.propose([9, 2], strategy="random")  # the next query is again for round 1
    restored.label([9, 2], [1, 2])
    assert restored.round == 1 and restored.ledger.round.tolist() == [0, 1, 1, 1, 1]


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    pool = make_pool()
    pool.label([1], [1])
    path = tmp_path / "pool.pt"
    pool.save(path)
    before = path.read_bytes()
    pool.label([2], [2])

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        pool.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["pool.pt"]


def test_class_names_are_set_once_saved_and_bound_the_labels(tmp_path):
    pool = make_pool()
    assert pool.classes is None
    pool.label([1], [3])
    with pytest.raises(ValueError, match="already holds label 3, but 3 class names"):
        pool.set_classes(["a", "b", "c"])
    pool.set_classes(["a", "b", "c", "d"])
    pool.set_classes(("a", "b", "c", "d"))  # the same names again: a no-op
    with pytest.raises(ValueError, match=r"the class names \['b', 'a', 'c', 'd'\] are not the \['a', 'b', 'c', 'd'\] recorded"):
        pool.set_classes(["b", "a", "c", "d"])
    with pytest.raises(ValueError, match="label 4 is not a class of this pool"):
        pool.label([2], [4])
    pool.save(tmp_path / "pool.pt")
    assert make_pool().load(tmp_path / "pool.pt").classes == ("a", "b", "c", "d")
    for bad, error in (("abcd", TypeError), (["a"], ValueError), (["a", "a"], ValueError), (["a", ""], TypeError), (["a", 2], TypeError)):
        with pytest.raises(error):
            make_pool().set_classes(bad)


def test_a_state_without_class_names_loads_with_none_and_bad_names_are_refused(tmp_path):
    pool = make_pool()
    state = pool.state_dict()
    meta = json.loads(state["meta"])
    del meta["classes"]
    state["meta"] = to_json(meta)
    pool.load_state_dict(state)
    assert pool.classes is None
    meta["classes"] = ["only one"]
    state["meta"] = to_json(meta)
    with pytest.raises(ValueError, match="pool state: invalid classes entry"):
        pool.load_state_dict(state)


def test_a_correction_inside_a_round_asked_in_parts_counts_for_that_round():
    pool = make_pool()
    pool.label([0], [1])
    pool.propose([3, 4], final=False)
    pool.label([3, 4], [2, 2])  # the sub-batch answered: the round stays open
    pool.propose([9], final=True)
    pool.label([3, 0], [1, 3], relabel=True)  # a correction of the open round's item, and of an older one
    assert pool.ledger.round.tolist() == [0, 1, 1, 1, 0]
    opened = pool.at_round_start()
    assert not opened.is_labeled(3) and opened.labels_of([0]).tolist() == [3]


def test_loading_keeps_the_pools_class_names_and_refuses_other_recorded_ones(tmp_path):
    unnamed = make_pool()
    unnamed.label([1], [3])
    unnamed.save(tmp_path / "unnamed.pt")
    named = ActivePool(unnamed.dataset, classes=["a", "b", "c", "d"]).load(tmp_path / "unnamed.pt")
    assert named.classes == ("a", "b", "c", "d") and named.labels_of([1]).tolist() == [3]  # a state without names keeps the pool's
    with pytest.raises(ValueError, match=r"already holds label 3, but 3 class names"):
        ActivePool(unnamed.dataset, classes=["a", "b", "c"]).load(tmp_path / "unnamed.pt")
    named.save(tmp_path / "named.pt")
    assert make_pool().load(tmp_path / "named.pt").classes == ("a", "b", "c", "d")
    other = ActivePool(unnamed.dataset, classes=["d", "c", "b", "a"])
    with pytest.raises(ValueError, match=r"the class names \['d', 'c', 'b', 'a'\] are not the \['a', 'b', 'c', 'd'\] recorded"):
        other.load(tmp_path / "named.pt")
    assert other.classes == ("d", "c", "b", "a") and other.ledger.index.numel() == 0  # left unchanged
