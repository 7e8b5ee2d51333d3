"""Ensembles and query by committee (Beluch et al., CVPR 2018): every score against its formula in
float64 on fixed members; members built and trained by the loop and by `torch-al run` differ and
are reproducible; a resumed ensemble run equals an uninterrupted one; bad input is refused."""

import json
import math

import pytest
import torch
from al_scenario import make_loop, outcome, run_until_stopped
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.cli import SelectConfig, main
from torch_al.experiment import RunConfig
from torch_al.loop import CHECKPOINT_KIND
from torch_al.persistence import load_state
from torch_al.strategies import (
    BALD,
    STRATEGIES,
    Committee,
    EnsembleBALD,
    EnsembleEntropy,
    EnsembleVariationRatio,
    MaxEntropy,
    VariationRatio,
    VoteEntropy,
    make_strategy,
)

NAMES = ("ensemble-entropy", "ensemble-bald", "ensemble-variation-ratio", "qbc-vote-entropy")


def reference_score(name: str, p: torch.Tensor) -> torch.Tensor:
    """Float64 probabilities [N, E, C] → scores [N], written out from the definitions, item by item."""
    p = p.double()
    members, classes = p.shape[1:]
    entropy = lambda q: -sum(float(v) * math.log(v) for v in q.tolist() if v > 0)  # noqa: E731
    scores = []
    for row in p:
        mean = row.mean(0)
        counts = [sum(int(row[e].argmax()) == c for e in range(members)) for c in range(classes)]
        if name == "ensemble-entropy":
            scores.append(entropy(mean))
        elif name == "ensemble-bald":
            scores.append(entropy(mean) - sum(entropy(row[e]) for e in range(members)) / members)
        elif name == "ensemble-variation-ratio":
            scores.append(1 - max(counts) / members)
        else:
            scores.append(-sum(v / members * math.log(v / members) for v in counts if v))
    return torch.tensor(scores, dtype=torch.float64)


def linear_members(weights: list[tuple[list[list[float]], list[float]]]) -> Committee:
    """A committee of nn.Linear members with the given (weight, bias)."""
    members = []
    for weight, bias in weights:
        member = nn.Linear(len(weight[0]), len(weight))
        with torch.no_grad():
            member.weight.copy_(torch.tensor(weight))
            member.bias.copy_(torch.tensor(bias))
        members.append(member)
    return Committee(members)


FIXED = [  # 3 members, 2 inputs, 3 classes: they agree on some inputs and not on others
    ([[2.0, 0.0], [0.0, 2.0], [-1.0, -1.0]], [0.0, 0.0, 0.5]),
    ([[1.5, 0.5], [-0.5, 2.5], [-2.0, 1.0]], [0.2, -0.1, 0.0]),
    ([[0.0, 3.0], [2.0, -1.0], [1.0, 1.0]], [-0.3, 0.1, 0.2]),
]


def member_probabilities(committee: Committee, x: torch.Tensor) -> torch.Tensor:
    """[N, E, C] in float64, from the members' weights (not their forward)."""
    logits = [x.double() @ m.weight.double().T + m.bias.double() for m in committee.members]
    return torch.stack(logits, 1).softmax(-1)


@pytest.mark.parametrize("name", NAMES)
def test_selection_is_the_top_of_the_formula_over_fixed_members(name):
    x = torch.randn(70, 2) * 2
    pool = ActivePool(TensorDataset(x, torch.zeros(70, dtype=torch.int64)))
    pool.label([0, 5, 9], [0, 0, 0])
    committee = linear_members(FIXED)
    strategy = make_strategy(name, batch_size=16, progress=False)
    query, scores = strategy.select(committee, pool, 12, return_scores=True)
    reference = reference_score(name, member_probabilities(committee, x))
    reference[[0, 5, 9]] = -math.inf
    assert query.tolist() == reference.argsort(descending=True, stable=True)[:12].tolist()  # ties: the lower index
    torch.testing.assert_close(scores.double(), reference[query], atol=1e-5, rtol=1e-5)
    assert strategy.last_cost.forward == 3 * 67 and strategy.last_cost.backward == 0  # E·N̂ forwards


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_the_formulas_in_float64(name):
    p = (torch.randn(40, 4, 5, dtype=torch.float64) * 2).softmax(-1)
    p[0] = p[0, :1]  # all members agree: BALD, variation ratio and vote entropy are 0
    p[1] = torch.tensor([[0.9, 0.1, 0, 0, 0], [0.8, 0.2, 0, 0, 0], [0.1, 0.9, 0, 0, 0], [0.3, 0.7, 0, 0, 0]], dtype=torch.float64)  # 2-2 vote
    p[2] = torch.tensor([[0.5, 0.5, 0, 0, 0]] * 4, dtype=torch.float64)  # argmax ties: the lower class, for every member
    scores = STRATEGIES[name](progress=False).score(p)
    torch.testing.assert_close(scores, reference_score(name, p), atol=1e-12, rtol=1e-12)
    if name != "ensemble-entropy":
        assert abs(float(scores[0])) < 1e-12 and abs(float(scores[2])) < 1e-12
    if name == "qbc-vote-entropy":
        assert float(scores[1]) == pytest.approx(math.log(2))
    if name == "ensemble-variation-ratio":
        assert float(scores[1]) == 0.5


def test_mc_dropout_and_ensembles_share_one_function_per_formula():
    p = torch.randn(30, 6, 4).softmax(-1)
    for mc, ensemble in ((MaxEntropy, EnsembleEntropy), (BALD, EnsembleBALD), (VariationRatio, EnsembleVariationRatio)):
        assert torch.equal(mc(progress=False).score(p), ensemble(progress=False).score(p))


def test_ties_go_to_the_lower_global_index():
    pool = ActivePool(TensorDataset(torch.zeros(8, 3), torch.zeros(8, dtype=torch.int64)))  # every item scored alike
    pool.label([1], [0])
    for name in NAMES:
        assert make_strategy(name, progress=False).select(Committee([nn.Identity(), nn.Identity()]), pool, 3).tolist() == [0, 2, 3]


def test_the_committee_predicts_the_mean_probability_and_restores_modes():
    committee = linear_members(FIXED)
    x = torch.randn(20, 2)
    p = member_probabilities(committee, x)
    torch.testing.assert_close(committee(x).double().softmax(-1), p.mean(1), atol=1e-6, rtol=1e-6)
    assert committee.member_logits(x).shape == (3, 20, 3)
    committee.train()
    committee.members[1].eval()
    pool = ActivePool(TensorDataset(x, torch.zeros(20, dtype=torch.int64)))
    EnsembleBALD(progress=False).select(committee, pool, 4)
    assert [m.training for m in committee.members] == [True, False, True] and committee.training


def test_built_members_differ_and_depend_on_the_seed_alone():
    make = lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))  # noqa: E731
    state = torch.get_rng_state()
    committee = Committee.build(make, members=4, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left as it was
    weights = [m[0].weight for m in committee.members]
    assert len(committee.members) == 4 and all(not torch.equal(a, b) for i, a in enumerate(weights) for b in weights[:i])
    torch.manual_seed(123)  # whatever the global RNG holds
    again = Committee.build(make, members=4, seed=7).state_dict()
    assert all(torch.equal(value, again[key]) for key, value in committee.state_dict().items())
    other = Committee.build(make, members=4, seed=8).state_dict()
    assert not torch.equal(other["members.0.0.weight"], again["members.0.0.weight"])
    assert len(Committee.build(make).members) == 5  # the default E


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="members must be an int >= 2, got 1"):
        Committee.build(lambda: nn.Linear(2, 3), members=1)
    with pytest.raises(ValueError, match="members must hold E >= 2 models .*, got 1"):
        Committee([nn.Linear(2, 3)])
    member = nn.Linear(2, 3)
    with pytest.raises(ValueError, match="members must be E distinct models; member 1"):
        Committee([member, member])
    with pytest.raises(TypeError, match="members must be a sequence of nn.Module"):
        Committee([nn.Linear(2, 3), "model"])
    with pytest.raises(ValueError, match="members must be an int >= 2"):
        RunConfig(strategy=("ensemble-bald",), members=1)
    with pytest.raises(ValueError, match=r"\+rotation is not supported"):
        RunConfig(strategy=("ensemble-bald+rotation",))
    with pytest.raises(SystemExit):
        main(["run", "--strategy", "qbc-vote-entropy", "--members", "1"])
    with pytest.raises(ValueError, match="strategy ensemble-bald scores a committee .* select takes one --model"):
        SelectConfig(state="s.pt", data="d.pt", model="m.pt2", strategy="ensemble-bald")
    pool = ActivePool(TensorDataset(torch.randn(6, 2), torch.zeros(6, dtype=torch.int64)))
    for name in NAMES:
        with pytest.raises(TypeError, match=f"{STRATEGIES[name].__name__}: model must be a torch_al.strategies.Committee .*got Linear"):
            make_strategy(name, progress=False).select(nn.Linear(2, 3), pool, 2)
    mixed = Committee([nn.Linear(2, 3), nn.Linear(2, 4)])
    with pytest.raises(ValueError, match=r"members give different numbers of classes: \[3, 4\]"):
        EnsembleEntropy(progress=False).select(mixed, pool, 2)


class NaNAt(nn.Module):
    """Logits equal to the inputs, NaN for input rows whose first value is ``bad``."""

    def __init__(self, bad: float) -> None:
        super().__init__()
        self.bad = bad

    def forward(self, x):
        return torch.where((x[:, :1] == self.bad), torch.nan, x)


def test_nan_logits_from_a_member_name_it_and_record_nothing():
    x = torch.randn(12, 3)
    x[7, 0] = 42.0
    pool = ActivePool(TensorDataset(x, torch.zeros(12, dtype=torch.int64)))
    pool.label([0], [0])
    before = pool.state_dict()
    committee = Committee([NaNAt(-1e9), NaNAt(42.0), NaNAt(-1e9)])
    for name in NAMES:
        strategy = make_strategy(name, batch_size=5, progress=False)
        with pytest.raises(ValueError, match=rf"{STRATEGIES[name].__name__} member 1: the model returned non-finite logits \(nan\) for pool item 7"):
            strategy.select(committee, pool, 3)
    after = pool.state_dict()
    assert pool.pending_query is None and all(torch.equal(v, after[k]) if torch.is_tensor(v) else v == after[k] for k, v in before.items())


def test_the_lightning_callback_refuses_an_ensemble_strategy():
    lightning = pytest.importorskip("torch_al.integrations.lightning")
    pool = ActivePool(TensorDataset(torch.randn(6, 2), torch.zeros(6, dtype=torch.int64)))
    with pytest.raises(ValueError, match="VoteEntropy scores a Committee of E separately trained models.*use ActiveLearningLoop"):
        lightning.ActiveLearningCallback(pool, VoteEntropy(), 2)


MEMBERS = 3


def ensemble_loop(folder, **options):
    """The loop scenario of al_scenario with a committee of 3 members in place of the one model."""
    loop = make_loop(folder, strategy=EnsembleBALD(progress=False), rounds=2, **options)
    loop.model = Committee.build(lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)), MEMBERS, seed=0)
    return loop


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    loop = ensemble_loop(tmp_path_factory.mktemp("ensemble"))
    initial = {key: value.clone() for key, value in loop.model.state_dict().items()}
    trained_members = []
    train = loop.train

    def recording(model, pool, round_):
        trained_members.append((round_, next(i for i, m in enumerate(loop.model.members) if m is model)))
        train(model, pool, round_)

    loop.train = recording
    metrics = loop.run()
    return outcome(loop, metrics), loop.model.state_dict(), initial, trained_members


def test_the_loop_trains_every_member_each_round_and_selects_with_the_committee(uninterrupted):
    (index, _, rounds, metrics), state, initial, trained_members = uninterrupted
    assert trained_members == [(r, e) for r in range(3) for e in range(MEMBERS)]
    assert [m["labeled"] for m in metrics] == [10, 20, 30] and rounds == [0] * 10 + [1] * 10 + [2] * 10
    unlabeled = [190, 180]
    assert [m["select_forward"] for m in metrics[:2]] == [MEMBERS * n for n in unlabeled] and metrics[0]["select_backward"] == 0
    assert 0 <= metrics[-1]["accuracy"] <= 1
    first = [state[f"members.{e}.0.weight"] for e in range(MEMBERS)]
    assert all(not torch.equal(state[key], initial[key]) for key in state)  # every member trained
    assert all(not torch.allclose(a, b) for i, a in enumerate(first) for b in first[:i])  # and they still differ


def test_an_ensemble_run_is_reproducible_and_checkpoints_every_member(tmp_path, uninterrupted):
    loop = ensemble_loop(tmp_path)
    result = outcome(loop, loop.run())
    assert result == uninterrupted[0]
    assert all(torch.equal(value, uninterrupted[1][key]) for key, value in loop.model.state_dict().items())
    saved = load_state(tmp_path / "state.pt", CHECKPOINT_KIND)
    assert all(torch.equal(saved[f"model/{key}"], value) for key, value in loop.model.state_dict().items())
    assert json.loads(saved["loop"])["members"] == MEMBERS


@pytest.mark.parametrize("stage", ["oracle", "train"])
def test_a_resumed_ensemble_run_equals_an_uninterrupted_one(tmp_path, uninterrupted, stage):
    loop = ensemble_loop(tmp_path)
    run_until_stopped(loop, stage, lambda model, round_: round_ == 2 and model is loop.model.members[1])  # mid-ensemble
    resumed = ensemble_loop(tmp_path)
    assert outcome(resumed, resumed.run()) == uninterrupted[0]
    assert all(torch.equal(value, uninterrupted[1][key]) for key, value in resumed.model.state_dict().items())
    other = make_loop(tmp_path, strategy=EnsembleBALD(progress=False), rounds=2)
    other.model = Committee.build(lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)), MEMBERS + 1)
    with pytest.raises(ValueError, match="another run configuration"):  # E is part of the run's identity
        other.run()


def test_torch_al_run_trains_an_ensemble(tmp_path, capsys):
    argv = ["run", "--dataset", "synthetic", "--members", "3", "--rounds", "2", "--budget", "20", "--initial", "20",
            "--epochs", "2", "--pool-size", "300", "--no-progress"]  # fmt: skip
    runs = []
    for out, strategies in ((tmp_path / "a", ["ensemble-bald", "qbc-vote-entropy"]), (tmp_path / "b", ["ensemble-bald"])):
        assert main([*argv, "--strategy", *strategies, "--out", str(out)]) == 0
        runs.append(json.loads((out / "metrics.json").read_text())["results"])
    for name in ("ensemble-bald", "qbc-vote-entropy"):
        records = runs[0][name]
        assert [r["labeled"] for r in records] == [20, 40, 60]
        assert [r["select_forward"] for r in records[:2]] == [3 * 280, 3 * 260]  # E·N̂
    without_times = [[{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in run["ensemble-bald"]] for run in runs]
    assert without_times[0] == without_times[1]  # reproducible from the seed
    state = load_state(tmp_path / "a" / "ensemble-bald" / "state.pt", CHECKPOINT_KIND)
    first = [state[f"model/members.{e}.1.weight"] for e in range(3)]  # the MLP's first Linear, per member
    assert "model/members.3.1.weight" not in state
    assert all(not torch.allclose(a, b) for i, a in enumerate(first) for b in first[:i])
    assert main([*argv, "--strategy", "ensemble-bald", "qbc-vote-entropy", "--out", str(tmp_path / "a")]) == 0  # finished: nothing to redo
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["results"] == runs[0]
