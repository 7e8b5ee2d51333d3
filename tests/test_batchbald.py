"""BatchBALD (Kirsch et al., NeurIPS 2019) against a brute-force enumeration of label configurations, in float64."""

import itertools
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import BALD, STRATEGIES, BatchBALD, batchbald_select, make_strategy
from torch_al.strategies.bayesian.batchbald import sub_batch_starts


def configurations(probabilities: torch.Tensor, batch: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every label configuration of ``batch``: (joint p(ŷ) Tensor[C^n], per-pass Π_i p_t(ŷ_i) Tensor[C^n, T])."""
    p = probabilities.double()
    per_pass = torch.stack([
        math.prod((p[i, :, y] for i, y in zip(batch, labels)), start=torch.ones(p.shape[1], dtype=torch.float64))
        for labels in itertools.product(range(p.shape[2]), repeat=len(batch))
    ])
    return per_pass.mean(1), per_pass


def mutual_information(probabilities: torch.Tensor, batch: list[int]) -> float:
    """I(y_batch; θ) = H(y_batch) − Σ_i E_θ H(y_i|θ), the joint entropy summed over all C^n configurations."""
    p = probabilities.double()
    joint, _ = configurations(p, batch)
    joint = joint[joint > 0]
    conditional = sum(-(p[i] * p[i].clamp_min(1e-300).log()).sum(-1).mean() for i in batch)
    return float(-(joint * joint.log()).sum() - conditional)


def brute_force_greedy(probabilities: torch.Tensor, budget: int) -> tuple[list[int], list[float]]:
    picks, scores = [], []
    for _ in range(budget):
        values = {j: mutual_information(probabilities, picks + [j]) for j in range(probabilities.shape[0]) if j not in picks}
        best = max(values, key=lambda j: (values[j], -j))  # ties to the lower index
        picks.append(best)
        scores.append(values[best])
    return picks, scores


def dirichlet(items: int, passes: int, classes: int, concentration: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    gammas = torch._standard_gamma(torch.full((items, passes, classes), concentration, dtype=torch.float64), generator=generator)
    return gammas / gammas.sum(-1, keepdim=True)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("concentration", [0.3, 2.0])
def test_the_greedy_equals_a_brute_force_enumeration(seed, concentration):
    probabilities = dirichlet(6, 4, 3, concentration, seed)
    indices, scores = batchbald_select(probabilities, 3)
    picks, reference = brute_force_greedy(probabilities, 3)
    assert indices.tolist() == picks
    torch.testing.assert_close(scores, torch.tensor(reference, dtype=torch.float64), atol=1e-12, rtol=1e-12)


def test_exact_zeros_ties_and_float32_input():
    probabilities = dirichlet(6, 4, 3, 0.5, 7)
    probabilities[1] = torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])  # configurations of probability 0
    probabilities[4] = probabilities[2]  # a duplicate: tied with item 2 until one of them is picked
    indices, scores = batchbald_select(probabilities, 4)
    picks, reference = brute_force_greedy(probabilities, 4)
    assert indices.tolist() == picks
    torch.testing.assert_close(scores, torch.tensor(reference, dtype=torch.float64), atol=1e-12, rtol=1e-12)
    single = batchbald_select(probabilities.float(), 4)
    assert single[0].tolist() == picks and single[1].dtype == torch.float64


def test_a_batch_of_one_is_balds_pick_and_score():
    probabilities = dirichlet(50, 8, 5, 0.7, 3).float()
    bald = BALD(progress=False).score(probabilities)
    indices, scores = batchbald_select(probabilities, 1)
    assert indices.tolist() == [int(bald.argmax())]
    torch.testing.assert_close(scores.float(), bald[indices], atol=1e-6, rtol=1e-6)


def sampling_tolerance(probabilities: torch.Tensor, picks: list[int], candidate: int, samples: int) -> float:
    """5 standard errors of the sampled joint entropy H(y_picks, y_candidate) from ``samples``
    configurations of ``picks`` drawn from their joint: the variance of one term,
    −log p(ŷ) + H(p(y_candidate | ŷ)), computed over all configurations."""
    joint, per_pass = configurations(probabilities, picks)
    conditional = per_pass @ probabilities[candidate].double() / per_pass.shape[1] / joint[:, None]  # [C^n, C]
    terms = -joint.log() - (conditional * conditional.clamp_min(1e-300).log()).sum(1)
    mean = (joint * terms).sum()
    return 5 * math.sqrt(float((joint * (terms - mean) ** 2).sum()) / samples)


def test_the_sampled_estimator_approaches_the_exact_value_and_is_reproducible():
    probabilities = dirichlet(6, 4, 3, 0.8, 11)
    exact_indices, _ = batchbald_select(probabilities, 4)
    samples = 20000
    # max_configurations = 3: exact for the second pick (3 configurations), sampled from the third.
    indices, scores = batchbald_select(probabilities, 4, max_configurations=3, samples=samples, generator=torch.Generator().manual_seed(5))
    assert indices.tolist() == exact_indices.tolist()
    picks = indices.tolist()
    for step in range(2, 4):
        exact = mutual_information(probabilities, picks[: step + 1])
        assert abs(float(scores[step]) - exact) < sampling_tolerance(probabilities, picks[:step], picks[step], samples)
    assert abs(float(scores[1]) - mutual_information(probabilities, picks[:2])) < 1e-12
    again = batchbald_select(probabilities, 4, max_configurations=3, samples=samples, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again[0], indices) and torch.equal(again[1], scores)
    other = batchbald_select(probabilities, 4, max_configurations=3, samples=samples, generator=torch.Generator().manual_seed(6))[1]
    assert torch.equal(other[:2], scores[:2]) and not torch.equal(other[2:], scores[2:])


def test_a_long_batch_stays_finite_where_a_plain_product_of_probabilities_underflows():
    probabilities = dirichlet(340, 7, 10, 20.0, 2)
    # 7 does not divide 15 samples; the batch's labels carry > 745 nats, so p(ŷ) < exp(−745) underflows to 0.
    indices, scores = batchbald_select(probabilities, 335, max_configurations=100, samples=15, generator=torch.Generator().manual_seed(0))
    assert torch.special.entr(probabilities[indices]).sum(-1).mean(1).sum() > 745
    assert indices.unique().numel() == 335 and scores.isfinite().all()


def test_the_shortlist_restricts_the_greedy_to_the_top_bald_items():
    probabilities = dirichlet(12, 4, 3, 0.5, 4)
    bald = BALD(progress=False).score(probabilities)
    top = torch.sort(bald, descending=True, stable=True).indices[:5].sort().values
    indices, scores = batchbald_select(probabilities, 3, shortlist=5)
    picks, reference = brute_force_greedy(probabilities[top], 3)
    assert indices.tolist() == top[picks].tolist()
    torch.testing.assert_close(scores, torch.tensor(reference, dtype=torch.float64), atol=1e-12, rtol=1e-12)
    assert torch.equal(batchbald_select(probabilities, 3, shortlist=12)[0], batchbald_select(probabilities, 3)[0])


class Recorder(nn.Module):
    """A small dropout model that records every forward's output."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        self.outputs: list[torch.Tensor] = []

    def forward(self, x):
        out = self.net(x)
        self.outputs.append(out.detach().clone())
        return out


def _pool(items: int = 10, labeled: tuple[int, ...] = (0, 4, 8)) -> ActivePool:
    generator = torch.Generator().manual_seed(0)
    pool = ActivePool(TensorDataset(torch.randn(items, 4, generator=generator) * 2, torch.zeros(items, dtype=torch.int64)))
    pool.label(list(labeled), [0] * len(labeled))
    return pool


@pytest.mark.parametrize("prefix_once", [True, False])
def test_the_strategy_is_the_brute_force_greedy_over_the_passes_the_model_ran(prefix_once):
    pool, model, passes = _pool(), Recorder(), 4
    strategy = make_strategy("batchbald", passes=passes, chunk=passes, batch_size=16, progress=False, prefix_once=prefix_once, seed=3)
    indices, scores = strategy.select(model, pool, 3, return_scores=True)
    candidates = pool.unlabeled_indices
    logits = model.outputs[-1].unflatten(0, (passes, candidates.numel())).transpose(0, 1)  # one forward: pass-major rows
    picks, reference = brute_force_greedy(logits.softmax(-1), 3)
    assert indices.tolist() == candidates[picks].tolist()
    torch.testing.assert_close(scores, torch.tensor(reference, dtype=torch.float64), atol=1e-6, rtol=1e-6)
    assert strategy.last_cost.forward == passes * 7 + (8 if prefix_once else 0) and strategy.last_cost.backward == 0
    assert model.training


def test_the_strategy_with_a_budget_of_one_is_bald_and_is_seeded_per_round():
    pool = _pool(items=40)
    torch.manual_seed(1)
    bald = BALD(passes=6, batch_size=16, progress=False).select(Recorder(), pool, 1, return_scores=True)
    torch.manual_seed(1)
    ours = BatchBALD(passes=6, batch_size=16, progress=False).select(Recorder(), pool, 1, return_scores=True)
    assert torch.equal(ours[0], bald[0])
    torch.testing.assert_close(ours[1].float(), bald[1], atol=1e-6, rtol=1e-6)

    strategy = BatchBALD(passes=6, max_configurations=3, samples=64, batch_size=16, progress=False)
    model = Recorder()
    runs = []
    for _ in range(2):
        torch.manual_seed(2)
        runs.append(strategy.select(model, pool, 6, return_scores=True))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_bad_input_is_a_clear_error_and_records_nothing():
    assert STRATEGIES["batchbald"] is BatchBALD
    for passes in (1, 0, 2.0):
        with pytest.raises(ValueError, match="BatchBALD: passes must be an int >= 2"):
            BatchBALD(passes=passes)
    with pytest.raises(ValueError, match="samples must be an int >= 1"):
        BatchBALD(samples=0)

    class NaNLogits(Recorder):
        def forward(self, x):
            out = super().forward(x)
            return torch.where(x[:, :1].repeat(out.shape[0] // x.shape[0], 3) > 1, torch.nan, out)

    pool = _pool(items=12)
    before = (pool.labeled_indices.clone(), pool.round)
    strategy = BatchBALD(passes=3, batch_size=5, progress=False, prefix_once=False)
    with pytest.raises(ValueError, match=r"non-finite logits \(nan\) for pool item"):
        strategy.select(NaNLogits(), pool, 2)
    with pytest.raises(ValueError, match="budget 10 is larger than the 9 unlabeled items"):
        strategy.select(Recorder(), pool, 10)
    with pytest.raises(ValueError, match="shortlist 2 is smaller than the budget 3"):
        BatchBALD(passes=3, shortlist=2, progress=False).select(Recorder(), pool, 3)
    assert torch.equal(pool.labeled_indices, before[0]) and pool.round == before[1]


@pytest.mark.parametrize(
    "probabilities, budget, options, message",
    [
        (torch.rand(5, 4), 1, {}, r"Tensor\[N, T, C\], got shape \(5, 4\)"),
        (torch.rand(5, 1, 3), 1, {}, "T >= 2 passes"),
        (torch.rand(5, 4, 3, dtype=torch.float64).index_fill_(0, torch.tensor([2]), torch.nan), 1, {}, "finite and non-negative"),
        (torch.rand(5, 4, 3), 6, {}, "budget 6 is larger than the 5 items"),
        (torch.rand(5, 4, 3), 1, {"max_configurations": 0}, "max_configurations must be an int >= 1"),
        (torch.rand(5, 4, 3), 3, {"shortlist": 2}, "shortlist 2 is smaller than the budget 3"),
    ],
)
def test_batchbald_select_rejects_bad_input(probabilities, budget, options, message):
    with pytest.raises(ValueError, match=message):
        batchbald_select(probabilities, budget, **options)


def test_restart_closes_a_sub_batch_at_its_share_of_log_t_and_the_next_starts_afresh():
    probabilities = dirichlet(12, 4, 3, 0.5, seed=7)
    ceiling = 0.5 * math.log(4)
    picks, scores = batchbald_select(probabilities, 9, max_configurations=10_000, restart_at=0.5)
    # The reference: the plain greedy over the items not yet picked, cut after the pick that reaches the ceiling.
    expected_picks, expected_scores, available = [], [], list(range(12))
    while len(expected_picks) < 9:
        plain, plain_scores = batchbald_select(probabilities[available], min(9 - len(expected_picks), len(available)), max_configurations=10_000)
        reached = (plain_scores >= ceiling).nonzero()
        size = int(reached[0]) + 1 if reached.numel() else plain.numel()
        expected_picks += [available[i] for i in plain[:size].tolist()]
        expected_scores += plain_scores[:size].tolist()
        available = [i for i in available if i not in expected_picks]
    assert picks.tolist() == expected_picks
    torch.testing.assert_close(scores, torch.tensor(expected_scores, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    starts = sub_batch_starts(scores, 4, 0.5)
    assert len(starts) > 2 and starts == [0] + [n + 1 for n in range(8) if scores[n] >= ceiling]
    assert sub_batch_starts(scores, 4, None) == [0] and sub_batch_starts(scores[:0], 4, 0.5) == []
    plain = batchbald_select(probabilities, 9, max_configurations=10_000)
    assert float(plain[1][-1]) <= math.log(4) + 1e-9  # one batch: its information is capped at log T
    with pytest.raises(ValueError, match="restart_at must be a finite float > 0 and <= 1, got 1.5"):
        batchbald_select(probabilities, 2, restart_at=1.5)


def test_the_strategy_warns_when_the_budget_outruns_log_t_and_notes_its_sub_batches(caplog):
    generator = torch.Generator().manual_seed(0)
    x = 8 * torch.randn(60, 6, generator=generator)  # confident passes that disagree: BALD near its maximum
    pool = ActivePool(TensorDataset(x, torch.zeros(60, dtype=torch.int64)))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Dropout(0.7), nn.Linear(64, 4))
    strategy = BatchBALD(passes=4, progress=False)
    with caplog.at_level("WARNING", logger="torch_al"):
        _, scores = strategy.select(model, pool, 20, return_scores=True)
    details = strategy.last_cost.details
    assert details["sub_batches"] == len(sub_batch_starts(scores, 4, 0.9)) > 1
    assert details["sub_batch_picks"] == round(20 / details["sub_batches"], 2)
    assert any("outrun the ceiling log T = 1.39 nats of T = 4 passes" in record.getMessage() for record in caplog.records)
    single = BatchBALD(passes=4, progress=False, restart_at=None)
    single.select(model, pool, 20)
    assert single.last_cost.details["sub_batches"] == 1
