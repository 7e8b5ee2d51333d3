"""Our strategies against the packages that implement the same methods, on identical inputs:
batchbald-redux (BatchBALD), baal (BALD, entropy, margin, least confidence), fpsample (farthest
point sampling: core-set's k-center greedy). The packages are test extras, never runtime
dependencies. Beside them: BADGE's k-means++ on the inputs behind scikit-activeml's BADGE bug
reports, and CEAL with δ₀ = 0, which must be entropy sampling bit for bit."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import torch_al
from torch_al import ActivePool
from torch_al.strategies import BADGE, BALD, CEAL, Entropy, LeastConfidence, Margin, MaxEntropy, batchbald_select


def dirichlet(items: int, passes: int, classes: int, seed: int, concentration: float = 0.7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    gammas = torch._standard_gamma(torch.full((items, passes, classes), concentration, dtype=torch.float64), generator=generator)
    return gammas / gammas.sum(-1, keepdim=True)


@pytest.mark.parametrize("seed", range(3))
def test_batchbald_equals_batchbald_redux_in_the_exact_regime(seed):
    redux = pytest.importorskip("batchbald_redux.batchbald")
    probabilities = dirichlet(40, 8, 3, seed)
    theirs = redux.get_batchbald_batch(probabilities.log(), 5, num_samples=100_000, dtype=torch.float64)
    picks, scores = batchbald_select(probabilities, 5, max_configurations=100_000)
    assert picks.tolist() == theirs.indices
    torch.testing.assert_close(scores, torch.tensor(theirs.scores, dtype=torch.float64), rtol=1e-9, atol=1e-11)


def _baal(heuristic: str, probabilities: torch.Tensor) -> np.ndarray:
    heuristics = pytest.importorskip("baal.active.heuristics")
    return np.asarray(getattr(heuristics, heuristic)().get_uncertainties(probabilities.transpose(1, 2).numpy()))  # baal: [N, C, T]


def test_mc_dropout_scores_equal_baal_s_heuristics_on_one_probability_tensor():
    probabilities = dirichlet(200, 16, 10, seed=1)
    torch.testing.assert_close(BALD(progress=False).score(probabilities), torch.from_numpy(_baal("BALD", probabilities)), rtol=1e-10, atol=1e-12)
    # baal's Entropy of MC passes is the entropy of their mean: our max-entropy.
    torch.testing.assert_close(MaxEntropy(progress=False).score(probabilities), torch.from_numpy(_baal("Entropy", probabilities)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ours, theirs", [(Entropy, "Entropy"), (Margin, "Margin"), (LeastConfidence, "Certainty")])
def test_single_pass_scores_rank_as_baal_s_heuristics(ours, theirs):
    probabilities = dirichlet(300, 1, 7, seed=2)[:, 0]
    scores = ours(progress=False).score(probabilities)
    reference = torch.from_numpy(_baal(theirs, probabilities.unsqueeze(1)))
    # baal sorts entropy high-first and margin / certainty low-first; ours are all high-first.
    expected_order = torch.argsort(reference if theirs == "Entropy" else -reference, descending=True, stable=True)
    assert torch.equal(torch.argsort(scores, descending=True, stable=True), expected_order)
    if theirs == "Entropy":
        torch.testing.assert_close(scores, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dim", [2, 3, 8])
def test_kcenter_greedy_picks_what_fpsample_picks_on_low_dimensional_points(dim):
    fpsample = pytest.importorskip("fpsample")
    points = torch.randn(3000, dim, generator=torch.Generator().manual_seed(dim), dtype=torch.float64)
    theirs = fpsample.fps_sampling(points.numpy(), 60, start_idx=0)
    ours, _ = torch_al.kcenter_greedy(points, 60, None, first=0)
    assert ours.tolist() == theirs.tolist()


def _badge_pool(embeddings: torch.Tensor, labeled=()) -> tuple[ActivePool, nn.Module]:
    """A pool whose items are their own last-layer inputs, and a linear head."""
    pool = ActivePool(TensorDataset(embeddings, torch.zeros(embeddings.shape[0], dtype=torch.int64)))
    if labeled:
        pool.label(list(labeled), [0] * len(labeled))
    torch.manual_seed(0)
    return pool, nn.Sequential(nn.Identity(), nn.Linear(embeddings.shape[1], 4))


@pytest.mark.parametrize("labeled_centers", [False, True])
@pytest.mark.parametrize("case", ["all zero", "repeated rows", "some repeated"])
def test_badge_never_repeats_a_pick_nor_picks_a_phantom_centre(case, labeled_centers):
    # The inputs behind scikit-activeml's BADGE reports: embeddings that are all zero (every D² is 0),
    # one row repeated (D² 0 once its twin is a centre), and labeled items as centres.
    generator = torch.Generator().manual_seed(3)
    embeddings = {
        "all zero": torch.zeros(30, 5),
        "repeated rows": torch.randn(1, 5, generator=generator).expand(30, 5).clone(),
        "some repeated": torch.randn(6, 5, generator=generator).repeat(5, 1),
    }[case]
    pool, model = _badge_pool(embeddings, labeled=(0, 7))
    picks = BADGE(labeled_centers=labeled_centers, seed=1).select(model, pool, 20)
    assert picks.unique().numel() == 20 and not pool.labeled_mask[picks].any()
    if case == "some repeated" and not labeled_centers:
        # Six distinct embeddings: six picks have D² > 0, then the lowest-index items left, in order.
        distinct = {tuple(embeddings[i].tolist()) for i in picks[:6].tolist()}
        assert len(distinct) == 6
        rest = [i for i in range(30) if i not in picks[:6].tolist() and i not in (0, 7)]
        assert picks[6:].tolist() == rest[:14]


def test_kmeanspp_with_every_distance_zero_takes_the_lowest_rows_not_yet_centres():
    a, b = torch.zeros(10, 3, dtype=torch.float64), torch.ones(10, 4, dtype=torch.float64)
    initial = torch.zeros(10, dtype=torch.bool)
    initial[[1, 4]] = True
    picks, pick_sq = torch_al.kmeanspp_factored(a, b, 5, initial, generator=torch.Generator().manual_seed(0))
    assert picks.tolist() == [0, 2, 3, 5, 6] and pick_sq.eq(0).all()


def test_ceal_with_a_zero_threshold_is_entropy_sampling_bit_for_bit():
    x = torch.randn(400, 6, generator=torch.Generator().manual_seed(4))
    pool = ActivePool(TensorDataset(x, torch.zeros(400, dtype=torch.int64)))
    pool.label(list(range(0, 400, 9)), [0] * len(range(0, 400, 9)))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 5))
    ceal = CEAL(criterion="entropy", delta0=0.0, decay=0.0, progress=False)
    ours, ours_scores = ceal.select(model, pool, 40, return_scores=True)
    entropy, entropy_scores = Entropy(progress=False).select(model, pool, 40, return_scores=True)
    assert torch.equal(ours, entropy) and torch.equal(ours_scores, entropy_scores)
    assert len(ceal.last_pseudo_labels) == 0  # no entropy is below 0
