"""Rounds asked in sub-batches: the pool's open round, its saved state, the replay that resumes a
round in a fresh process, and a loop interrupted between any two sub-batches."""

import json

import pytest
import torch
from al_scenario import BUDGET, INITIAL, ROUNDS, Stop, direct, make_loop, outcome, without_passes
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.cli import main
from torch_al.strategies import DIRECT, GALAXY, AsksWithinRound


def small_pool(n: int = 12) -> ActivePool:
    return ActivePool(TensorDataset(torch.randn(n, 3, generator=torch.Generator().manual_seed(n)), torch.arange(n) % 3))


def test_sub_batches_stay_in_the_open_round_until_the_final_one_is_answered(tmp_path):
    pool = small_pool()
    pool.propose([3, 1], final=False)
    assert pool.pending_final is False
    pool.label([3, 1], [0, 1])
    assert pool.round == 0 and [b.tolist() for b in pool.open_round] == [[3, 1]] and pool.pending_query is None
    pool.propose([5], final=False)
    pool.label([5], [2])
    pool.propose([7, 8], strategy="direct")
    pool.save(tmp_path / "pool.pt")
    restored = small_pool().load(tmp_path / "pool.pt")
    assert [b.tolist() for b in restored.open_round] == [[3, 1], [5]] and restored.pending_final is True
    pool.label([7, 8], [1, 2])
    assert pool.round == 1 and pool.open_round == [] and pool.ledger.round.tolist() == [1] * 5


def test_the_pool_at_round_start_forgets_the_open_rounds_answers_only():
    pool = small_pool()
    pool.label([0, 2], [0, 2])  # before the round
    pool.propose([3, 1], final=False)
    pool.label([3, 1], [0, 1])
    pool.propose([5], final=False)
    opened = pool.at_round_start()
    assert opened.labeled_indices.tolist() == [0, 2] and opened.open_round == [] and opened.pending_query is None
    assert opened.round == pool.round == 0 and opened.labels_of([0, 2]).tolist() == [0, 2]
    assert pool.labeled_indices.tolist() == [0, 1, 2, 3] and pool.pending_query.tolist() == [5]  # the pool itself unchanged
    opened.propose([7])
    assert pool.pending_query.tolist() == [5]


def test_a_version_2_state_loads_with_a_final_query_and_no_open_round():
    pool = small_pool()
    pool.propose([2, 4])
    state = pool.state_dict()
    state["schema_version"] = 2
    for key in ("open_round_indices", "open_round_sizes"):
        del state[key]
    old = small_pool()
    old.load_state_dict(state)
    assert old.pending_final is True and old.open_round == [] and old.pending_query.tolist() == [2, 4]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(open_round_sizes=torch.tensor([3])), "must be positive and sum to the 2 open-round indices"),
        (lambda s: s.update(open_round_indices=torch.tensor([1, 9])), "distinct items labeled in round 1"),
        (lambda s: s.update(pending_indices=torch.tensor([1, 6])), "repeats items of the open round"),
        (lambda s: s.update(meta=s["meta"].replace('"pending_final":false', '"pending_final":"no"')), "pending_final must be true or false, got 'no'"),
    ],
)
def test_an_inconsistent_open_round_is_refused_and_nothing_changes(change, message):
    pool = small_pool()
    pool.propose([1, 3], final=False)
    pool.label([1, 3], [1, 0])
    pool.propose([6, 2], final=False)
    state = pool.state_dict()
    change(state)
    fresh = small_pool()
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(state)
    assert fresh.labeled_indices.numel() == 0 and fresh.open_round == []


def answering(pool, strategy, budget, labels, model):
    asked = strategy.next_sub_batch(model, pool, budget)
    pool.propose(asked.indices, final=asked.final)
    pool.label(asked.indices, labels[asked.indices])
    return asked


@pytest.mark.parametrize("make", [lambda: GALAXY(seed=4, progress=False), lambda: DIRECT(annotators=2, seed=4, progress=False)], ids=["galaxy", "direct"])
def test_a_fresh_process_replays_the_open_round_and_asks_what_the_first_would_have(make):
    x, labels = torch.randn(60, 4, generator=torch.Generator().manual_seed(0)), torch.arange(60) % 4
    model = nn.Identity()
    pool, twin = ActivePool(TensorDataset(x, labels)), ActivePool(TensorDataset(x, labels))
    live, compared = make(), 0
    while not answering(pool, live, 20, labels, model).final:
        twin.load_state_dict(pool.state_dict())
        replayed = make().next_sub_batch(model, twin, 20)  # a new strategy object, as in a new process: it replays the open round
        continued = live.next_sub_batch(model, pool, 20)
        assert torch.equal(replayed.indices, continued.indices) and replayed.final == continued.final
        live = make()  # the next answering call replays too, from this pool
        compared += 1
    assert compared >= 3 and pool.round == 1


def test_a_replay_with_another_model_is_refused_naming_the_sub_batch():
    x, labels = torch.randn(40, 3, generator=torch.Generator().manual_seed(1)), torch.arange(40) % 3
    pool = ActivePool(TensorDataset(x, labels))
    pool.label(torch.arange(9), labels[:9])  # labeled items on both sides: bisection, not the seeded draw
    for _ in range(3):
        answering(pool, GALAXY(seed=0, progress=False), 10, labels, nn.Identity())
    reversed_model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        reversed_model.weight.copy_(-torch.eye(3))  # the identity's opposite: other class lines
    with pytest.raises(RuntimeError, match=r"replaying round 1, sub-batch 0 asks \[\d+\] where the pool answered .* the model, seed or strategy changed"):
        GALAXY(seed=0, progress=False).next_sub_batch(reversed_model, pool, 10)


class OverAsking(AsksWithinRound):
    def asks(self, model, pool, budget, labels):
        yield labels.unlabeled[:budget]
        yield labels.unlabeled[:1]


class StoppingEarly(AsksWithinRound):
    def asks(self, model, pool, budget, labels):
        yield labels.unlabeled[:1]


def test_a_strategy_that_overspends_or_stops_early_is_an_error():
    pool = small_pool()
    asked = OverAsking().next_sub_batch(None, pool, 4)
    assert asked.final and asked.indices.numel() == 4
    pool.propose(asked.indices[:2], final=False)
    pool.label(asked.indices[:2], [0, 1])
    with pytest.raises(RuntimeError, match="replaying round 1, sub-batch 0"):
        OverAsking().next_sub_batch(None, pool, 4)
    fresh = small_pool()
    first = StoppingEarly().next_sub_batch(None, fresh, 3)
    fresh.propose(first.indices, final=first.final)
    fresh.label(first.indices, [0])
    with pytest.raises(RuntimeError, match="StoppingEarly ended its round after 1 of 3 labels"):
        StoppingEarly().next_sub_batch(None, fresh, 3)


def direct_loop(folder):
    return make_loop(folder, strategy=direct())


@pytest.fixture(scope="module")
def uninterrupted_direct(tmp_path_factory):
    loop = direct_loop(tmp_path_factory.mktemp("direct"))
    return outcome(loop, loop.run())


def test_the_loop_asks_a_direct_round_in_sub_batches(tmp_path):
    loop = direct_loop(tmp_path)
    calls = []
    oracle = loop.oracle
    loop.oracle = lambda indices: calls.append(indices.numel()) or oracle(indices)
    loop.run()
    assert calls[0] == INITIAL and sum(calls[1:]) == ROUNDS * BUDGET and len(calls) > 2 * ROUNDS  # several sub-batches a round
    assert loop.pool.ledger.round.tolist() == [0] * INITIAL + [r for r in range(1, ROUNDS + 1) for _ in range(BUDGET)]
    assert all(record["select_forward"] == 200 for record in loop.metrics[:-1])  # one pass over the pool a round


@pytest.mark.parametrize("crash_at", [1, 2, 5, 9, 14])
def test_a_loop_stopped_at_any_answer_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted_direct, crash_at):
    expected = uninterrupted_direct
    loop, calls = direct_loop(tmp_path), []
    oracle = loop.oracle

    def stopping(indices):
        calls.append(1)
        if len(calls) == crash_at:
            raise Stop
        return oracle(indices)

    loop.oracle = stopping
    with pytest.raises(Stop):
        loop.run()
    resumed = direct_loop(tmp_path)
    result = outcome(resumed, resumed.run())
    assert result[:3] == expected[:3] and without_passes(result[3]) == without_passes(expected[3])


def test_the_command_line_asks_a_round_one_sub_batch_at_a_time(tmp_path, capsys):
    x, labels = torch.randn(50, 3, generator=torch.Generator().manual_seed(5)), torch.arange(50) % 3
    data, model, state = str(tmp_path / "inputs.pt"), str(tmp_path / "model.pt2"), str(tmp_path / "pool.pt")
    torch.save(x, data)
    torch.manual_seed(0)
    network = nn.Linear(3, 3)
    torch.export.save(torch.export.export(network, (x[:2],), dynamic_shapes={"input": {0: torch.export.Dim("batch")}}), model)
    select = ["select", "--state", state, "--data", data, "--model", model, "--strategy", "direct", "--budget", "12"]
    asked, rounds = [], []
    while True:
        assert main(select) == 0
        printed = json.loads(capsys.readouterr().out)
        asked.append(printed["query"])
        answers = tmp_path / "answers.json"
        answers.write_text(json.dumps({str(i): int(labels[i]) for i in printed["query"]}))
        assert main(["status", "--state", state]) == 0
        rounds.append("asked in sub-batches" in capsys.readouterr().out)
        assert main(["label", "--state", state, "--data", data, "--labels", str(answers)]) == 0
        capsys.readouterr()
        if printed["final"]:
            break
    assert sum(map(len, asked)) == 12 and len(asked) > 2 and all(rounds[:-1])
    # The same round driven in one process asks the same sub-batches.
    same = ActivePool(TensorDataset(x, labels))
    strategy, expected = DIRECT(seed=0, progress=False), []
    while True:
        step = answering(same, strategy, 12, labels, network)
        expected.append(step.indices.tolist())
        if step.final:
            break
    assert asked == expected
