"""CEAL: the query and the pseudo-labels against float64 formulas, round after round; the
pseudo-labels reach training (PseudoLabeledPool, the loop, torch-al run) and never the ledger; a
resumed run equals an uninterrupted one."""

import json
import math

import pytest
import torch
from al_scenario import BUDGET, INITIAL, ROUNDS, make_loop, outcome, run_until_stopped
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool, ActiveSampler, PseudoLabeledPool, PseudoLabelSet
from torch_al.cli import main
from torch_al.experiment import RunConfig
from torch_al.loop import CHECKPOINT_KIND
from torch_al.persistence import load_state
from torch_al.strategies import CEAL, ceal_pseudo_labels, make_strategy

CRITERIA = ("entropy", "margin", "least_confidence")


def float64_scores(criterion: str, p: torch.Tensor) -> torch.Tensor:
    """Higher is more uncertain; the textbook formulas on float64 probabilities."""
    top = p.sort(1, descending=True).values
    if criterion == "entropy":
        return entropy(p)
    return top[:, 1] - top[:, 0] if criterion == "margin" else 1 - top[:, 0]


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-300).log()).sum(1)


def reference_pseudo_labels(p: torch.Tensor, candidates: torch.Tensor, query: torch.Tensor, threshold: float):
    """{i unlabeled, i not in the query, H(p_i) < δ} with argmax labels, item by item."""
    indices, labels = [], []
    for row, index in enumerate(candidates.tolist()):
        if index not in query.tolist() and entropy(p[row : row + 1]).item() < threshold:
            indices.append(index)
            labels.append(int(p[row].argmax()))
    return indices, labels


def confident_logits(n: int = 80, classes: int = 3, seed: int = 0) -> torch.Tensor:
    """Logits whose top-class margins spread from unsure (2) to very sure (10): entropies ~0.5 .. 0.001."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator) * 0.5
    top = torch.randint(0, classes, (n,), generator=generator)
    logits[torch.arange(n), top] += 2 + 8 * torch.rand(n, generator=generator)
    return logits


def logits_pool(logits: torch.Tensor) -> ActivePool:
    """Items whose inputs are their logits, so nn.Identity() is a model with known outputs."""
    return ActivePool(TensorDataset(logits, torch.zeros(len(logits), dtype=torch.int64)))


@pytest.mark.parametrize("criterion", CRITERIA)
def test_the_query_is_the_top_p_of_the_criterion_on_a_small_model(criterion):
    x = torch.randn(90, 5)
    pool = ActivePool(TensorDataset(x, torch.zeros(90, dtype=torch.int64)))
    pool.label([0, 4, 9], [0, 1, 2])
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4))
    strategy = CEAL(criterion=criterion, batch_size=16, progress=False)
    query, scores = strategy.select(model, pool, 12, return_scores=True)
    with torch.no_grad():
        reference = float64_scores(criterion, model(x).double().softmax(1))
    reference[[0, 4, 9]] = -math.inf
    assert query.tolist() == reference.argsort(descending=True, stable=True)[:12].tolist()
    torch.testing.assert_close(scores.double(), reference[query], atol=1e-6, rtol=1e-5)
    assert strategy.last_cost.forward == 87 and strategy.last_cost.backward == 0  # one pass: N̂ forwards


@pytest.mark.parametrize("criterion", CRITERIA)
def test_ties_go_to_the_lower_global_index(criterion):
    pool = logits_pool(torch.zeros(8, 3))  # every item equally uncertain
    pool.label([1], [0])
    assert CEAL(criterion=criterion, progress=False).select(nn.Identity(), pool, 3).tolist() == [0, 2, 3]


def test_pseudo_labels_follow_the_formula_as_the_threshold_decays():
    logits = confident_logits()
    pool = logits_pool(logits)
    pool.label(list(range(5)), [0] * 5)
    strategy = CEAL(delta0=0.05, decay=0.01, batch_size=16, progress=False)
    p = logits.double().softmax(1)
    sizes = []
    for t in range(7):  # δ_t = 0.05, 0.04, ..., 0.0, -0.01: the last two sets are empty
        threshold = 0.05 - 0.01 * t
        candidates = pool.unlabeled_indices
        assert (entropy(p[candidates]) - threshold).abs().min() > 1e-5  # no float32/float64 borderline case
        query = strategy.select(nn.Identity(), pool, 5)
        pseudo = strategy.last_pseudo_labels
        indices, labels = reference_pseudo_labels(p[candidates], candidates, query, threshold)
        assert pseudo.indices.tolist() == indices and pseudo.labels.tolist() == labels
        assert pseudo.threshold == pytest.approx(threshold) == strategy.threshold(t)
        assert pseudo.indices.dtype == pseudo.labels.dtype == torch.int64
        sizes.append(len(pseudo))
        pool.propose(query)
        pool.label(query, [0] * 5)  # round t + 1 completes: the next selection uses δ_{t+1}
    assert sizes[0] > sizes[3] > sizes[4] > 0 == sizes[5] == sizes[6], sizes  # the set shrinks as δ_t decays
    assert strategy.select(nn.Identity(), pool, 0).numel() == 0 and strategy.last_pseudo_labels is None  # no pass, no pseudo-labels


def test_ceal_pseudo_labels_is_the_formula():
    generator = torch.Generator().manual_seed(3)
    p = (torch.randn(50, 4, generator=generator) * 4).softmax(1)
    p[7] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # H = 0 exactly (0 log 0 = 0)
    p[8] = torch.tensor([0.5, 0.5, 0.0, 0.0])  # an argmax tie: the lower class
    candidates = torch.arange(100, 150) * 2  # global indices, not positions: row 7 is item 214
    query = candidates[[0, 11, 20]]
    for threshold in (0.0, 1e-3, 0.1, 0.7, 1.5, -1.0):
        pseudo = ceal_pseudo_labels(p, candidates, query, threshold)
        indices, labels = reference_pseudo_labels(p.double(), candidates, query, threshold)
        assert (pseudo.indices.tolist(), pseudo.labels.tolist()) == (indices, labels)
        assert pseudo.threshold == threshold
    assert ceal_pseudo_labels(p, candidates, query, 0.0).indices.numel() == 0  # H >= 0: nothing is below 0
    assert 214 in ceal_pseudo_labels(p, candidates, query, 1e-3).indices.tolist()
    pseudo = ceal_pseudo_labels(p, candidates, query, 0.7)
    assert pseudo.labels[pseudo.indices == 216].tolist() == [0]  # ln 2 < 0.7; the argmax tie goes to class 0
    assert not torch.isin(query, ceal_pseudo_labels(p, candidates, query, 10.0).indices).any()  # the query is never pseudo-labeled


def test_pseudo_labels_never_reach_the_ledger_or_a_saved_pool(tmp_path):
    logits = confident_logits()
    pool = logits_pool(logits)
    pool.label([0, 1, 2], [1, 1, 1])
    state = pool.state_dict()
    strategy = CEAL(delta0=0.2, progress=False)
    query = strategy.select(nn.Identity(), pool, 4)
    view = PseudoLabeledPool(pool, strategy.last_pseudo_labels)
    (_, served), *_ = list(DataLoader(view, sampler=ActiveSampler(view), batch_size=1000))  # one batch: everything
    assert len(strategy.last_pseudo_labels) > 10 and served.numel() == 3 + len(strategy.last_pseudo_labels)
    assert pool.labeled_indices.tolist() == [0, 1, 2]
    for key, value in pool.state_dict().items():  # the ledger and everything else as before
        assert torch.equal(value, state[key]) if torch.is_tensor(value) else value == state[key], key
    some = int(strategy.last_pseudo_labels.indices[0])
    with pytest.raises(KeyError, match=f"item {some} is not labeled yet"):
        pool[some]  # the pool itself serves the ledger only
    pool.propose(query)
    pool.save(tmp_path / "pool.pt")
    restored = logits_pool(logits).load(tmp_path / "pool.pt")
    assert restored.labeled_indices.tolist() == [0, 1, 2] and torch.equal(restored.pending_query, query)
    assert sorted(pool.state_dict()) == sorted(state)  # no new entry carries them


def test_the_training_view_serves_both_and_the_ledger_wins():
    pool = logits_pool(torch.randn(10, 3))
    pool.label([0, 1], [2, 0])
    view = PseudoLabeledPool(pool, PseudoLabelSet(torch.tensor([1, 5, 7]), torch.tensor([1, 2, 1]), 0.1))
    assert view.labeled_indices.tolist() == [0, 1, 5, 7] and view.pseudo_indices.tolist() == [5, 7]
    assert [view[i][1] for i in (0, 1, 5, 7)] == [2, 0, 2, 1]  # item 1: the ledger's 0, not the pseudo 1
    assert torch.equal(view[5][0], pool.dataset[5][0]) and len(view) == 10 and view.round == 0
    with pytest.raises(KeyError, match="item 3 is not labeled yet"):
        view[3]
    (inputs, labels), *_ = list(DataLoader(view, sampler=ActiveSampler(view, seed=1), batch_size=10))
    order = [int((pool.dataset.tensors[0] == row).all(1).nonzero()) for row in inputs]  # which item each row is
    assert sorted(order) == [0, 1, 5, 7] and labels.tolist() == [view[i][1] for i in order]
    assert len(ActiveSampler(view)) == 4
    pool.label([5], [0])  # labeled after the pseudo-labels were made: the ledger wins, read live
    assert view[5][1] == 0 and view.pseudo_indices.tolist() == [7] and view.labeled_indices.tolist() == [0, 1, 5, 7]
    plain = PseudoLabeledPool(pool)  # no pseudo-labels: exactly the pool's labels
    assert plain.labeled_indices.tolist() == pool.labeled_indices.tolist() == [0, 1, 5] and plain[5][1] == pool[5][1] == 0
    with pytest.raises(IndexError, match=r"pseudo-label indices out of range: \[10\]"):
        PseudoLabeledPool(pool, PseudoLabelSet(torch.tensor([10]), torch.tensor([0]), 0.1))
    with pytest.raises(ValueError, match="2 indices but 1 labels"):
        PseudoLabelSet(torch.tensor([1, 2]), torch.tensor([0]), 0.1)


def ceal(**options) -> CEAL:
    return CEAL(**{"delta0": 0.3, "decay": 0.05, "progress": False, **options})


def test_the_loop_trains_on_the_pseudo_labels(tmp_path):
    loop = make_loop(tmp_path, strategy=ceal())
    seen, inner = [], loop.train

    def counting(model, pool, round_):  # what the train function sees, before it trains
        pseudo = pool.pseudo_indices.tolist() if isinstance(pool, PseudoLabeledPool) else []
        seen.append((type(pool).__name__, sorted(ActiveSampler(pool)), loop.pool.labeled_indices.tolist(), pseudo))
        inner(model, pool, round_)

    loop.train = counting
    metrics = loop.run()
    assert seen[0][0] == "ActivePool" and len(seen[0][1]) == INITIAL
    for round_ in range(1, ROUNDS + 1):
        kind, trained_on, ledger, pseudo = seen[round_]
        assert kind == "PseudoLabeledPool" and len(ledger) == INITIAL + round_ * BUDGET
        assert len(pseudo) == metrics[round_ - 1]["pseudo_labeled"] > 0  # made by the model that selected
        assert trained_on == sorted(ledger + pseudo) and not set(ledger) & set(pseudo)
        assert metrics[round_ - 1]["pseudo_threshold"] == pytest.approx(0.3 - 0.05 * (round_ - 1))
    assert loop.pool.labeled_indices.numel() == INITIAL + ROUNDS * BUDGET  # the ledger holds paid labels only
    assert "pseudo_labeled" not in metrics[-1] and loop.pseudo_labels is None  # used once, then dropped
    assert "pseudo/indices" not in load_state(tmp_path / "state.pt", CHECKPOINT_KIND)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    loop = make_loop(tmp_path_factory.mktemp("ceal"), strategy=ceal())
    return outcome(loop, loop.run())


@pytest.mark.parametrize("stage", ["oracle", "train"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, uninterrupted, stage):
    loop = make_loop(tmp_path, strategy=ceal())
    run_until_stopped(loop, stage)  # the pseudo-labels of round 2 are saved either way
    saved = load_state(tmp_path / "state.pt", CHECKPOINT_KIND)
    pseudo = saved["pseudo/indices"]
    assert pseudo.numel() > 0 and not torch.isin(pseudo, saved["pool/ledger_index"]).any()  # beside the ledger, not in it
    resumed = make_loop(tmp_path, strategy=ceal())
    assert outcome(resumed, resumed.run()) == uninterrupted


def test_bad_arguments_name_the_argument_and_the_value():
    cases = [
        (dict(criterion="bald"), ValueError, r"criterion must be one of \('entropy', 'margin', 'least_confidence'\), got 'bald'"),
        (dict(criterion="least-confidence"), ValueError, "got 'least-confidence'"),
        (dict(criterion=["entropy"]), ValueError, r"got \['entropy'\]"),
        (dict(delta0=-0.1), ValueError, r"delta0 must be a finite float >= 0, got -0.1"),
        (dict(decay=-1e-4), ValueError, r"decay must be a finite float >= 0, got -0.0001"),
        (dict(delta0=float("nan")), ValueError, "delta0 must be a finite float >= 0, got nan"),
        (dict(delta0="0.005"), TypeError, r"delta0 must be a float, got '0.005' \(str\)"),
        (dict(decay=True), TypeError, r"decay must be a float, got True \(bool\)"),
        (dict(decay=None), TypeError, r"decay must be a float, got None \(NoneType\)"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            CEAL(**options)
    with pytest.raises(ValueError, match="criterion must be one of"):
        make_strategy("ceal", criterion="nope")
    with pytest.raises(ValueError, match="delta0 and decay must be >= 0, got -1.0, 0.00033"):
        RunConfig(strategy=("ceal",), delta0=-1.0)
    assert isinstance(make_strategy("ceal", delta0=0, progress=False), CEAL)  # an int is a float here
    p = torch.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"candidates must be a Tensor\[3\] \(one per row\)"):
        ceal_pseudo_labels(p, torch.arange(2), torch.arange(1), 0.1)
    with pytest.raises(ValueError, match=r"probabilities must be a floating Tensor\[N, C\]"):
        ceal_pseudo_labels(p[0], torch.arange(2), torch.arange(1), 0.1)
    with pytest.raises(TypeError, match=r"threshold must be a float, got '1' \(str\)"):
        ceal_pseudo_labels(p, torch.arange(3), torch.arange(1), "1")
    with pytest.raises(ValueError, match="threshold must be a finite float, got nan"):
        ceal_pseudo_labels(p, torch.arange(3), torch.arange(1), math.nan)
    with pytest.raises(ValueError, match="CEAL scores with a model; got model=None"):
        CEAL().select(None, logits_pool(torch.zeros(4, 2)), 1)


def test_torch_al_run_trains_ceal_on_pseudo_labels(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--dataset", "synthetic", "--strategy", "random", "ceal", "--rounds", "2", "--budget", "20",
            "--initial", "20", "--epochs", "3", "--pool-size", "600", "--delta0", "0.5", "--decay", "0.1",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert [r["labeled"] for r in results["ceal"]] == [20, 40, 60]  # the ledger: paid labels only
    assert [r["pseudo_threshold"] for r in results["ceal"][:2]] == pytest.approx([0.5, 0.4])
    assert results["ceal"][1]["pseudo_labeled"] > 0 and "pseudo_labeled" not in results["random"][0]
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["strategy", "round", "labeled", "accuracy"] and "pseudo_labeled" in header
