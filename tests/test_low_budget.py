"""TypiClust, ProbCover, MaxHerding, UHerding and their k-means: against plain references and scikit-activeml 1.0."""

import math

import pytest
import torch
from torch.utils.data import TensorDataset

import torch_al
from torch_al.kmeans import kmeans
from torch_al.seeding import derived_seed
from torch_al.strategies import MaxHerding, ProbCover, TypiClust, UHerding, make_strategy
from torch_al.strategies.low_budget.probcover import distance_to_other_clusters, purity_radius
from torch_al.strategies.low_budget.typiclust import typicality
from torch_al.strategies.low_budget.uherding import calibrated_temperature, expected_calibration_error

pytestmark = pytest.mark.skipif(not torch_al.has_ops(), reason="needs the compiled ops")


def blobs(n: int, centers: int, dims: int, seed: int, spread: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(centers, dims, generator=generator, dtype=torch.float64) * 4
    labels = torch.randint(centers, (n,), generator=generator)
    return means[labels] + spread * torch.randn(n, dims, generator=generator, dtype=torch.float64), labels


def pool_of(points: torch.Tensor, labeled: list[int] = ()) -> torch_al.ActivePool:
    pool = torch_al.ActivePool(TensorDataset(points, torch.zeros(points.shape[0], dtype=torch.int64)))
    if labeled:
        pool.label(list(labeled), torch.zeros(len(labeled), dtype=torch.int64))
    return pool


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


# k-means


def test_kmeans_recovers_separated_blobs_and_matches_scikit_learn():
    cluster = pytest.importorskip("sklearn.cluster")
    points, truth = blobs(600, 5, 3, seed=0, spread=0.2)
    ours = kmeans(points, 5, seed=0)
    theirs = cluster.KMeans(5, n_init=1, random_state=0).fit(points.numpy())
    assert same_partition(ours.labels, truth) and same_partition(ours.labels, torch.from_numpy(theirs.labels_))
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-9)
    centers = torch.stack([points[ours.labels == c].mean(0) for c in range(5)])
    torch.testing.assert_close(ours.centers, centers)


def test_kmeans_is_seeded_and_keeps_k_clusters():
    points = torch.randn(300, 4, generator=torch.Generator().manual_seed(1))
    first, again = kmeans(points, 12, seed=3), kmeans(points, 12, seed=3)
    assert torch.equal(first.labels, again.labels) and torch.equal(first.centers, again.centers)
    assert first.labels.min() >= 0 and first.labels.max() < 12
    # A Lloyd step from its own centers changes nothing: a fixed point (or the tolerance stopped it).
    distances = torch.cdist(points, first.centers).argmin(1)
    assert (distances == first.labels).float().mean() > 0.99


@pytest.mark.parametrize(
    "points, clusters, message",
    [(torch.zeros(5), 2, "points must be a floating Tensor"), (torch.zeros(5, 2), 0, "clusters must be an int >= 1"), (torch.zeros(5, 2), 6, "clusters must be <= the number of points N=5")],
)
def test_kmeans_bad_input(points, clusters, message):
    with pytest.raises(ValueError, match=message):
        kmeans(points, clusters)


# typicality and TypiClust


def test_typicality_is_the_inverse_mean_distance_to_the_k_nearest_others():
    points = torch.randn(80, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    distances = torch.cdist(points, points)
    distances.fill_diagonal_(math.inf)
    want = 1 / distances.sort(1).values[:, :7].mean(1)
    torch.testing.assert_close(typicality(points, 7), want)
    torch.testing.assert_close(typicality(points[:3], 7), 1 / distances[:3, :3].sort(1).values[:, :2].mean(1))
    assert typicality(points[:1], 7).tolist() == [1.0]


def reference_typiclust(points, labeled, budget, clusters, neighbours, min_cluster_size):
    """The rule written out plainly: dense distances, clusters in (small, labeled, -size, id) order."""
    count = int(clusters.max()) + 1
    order = sorted(
        (c for c in range(count) if (clusters == c).any()),
        key=lambda c: (int((clusters == c).sum()) <= min_cluster_size, int((clusters[labeled] == c).sum()), -int((clusters == c).sum()), c),
    )
    available = torch.ones(points.shape[0], dtype=torch.bool)
    available[labeled] = False
    picks, visit = [], 0
    while len(picks) < budget:
        members = [i for i in range(points.shape[0]) if clusters[i] == order[visit % len(order)] and available[i]]
        visit += 1
        if not members:
            continue
        sub = points[members].double()
        distances = torch.cdist(sub, sub)
        distances.fill_diagonal_(math.inf)
        k = min(neighbours, len(members) - 1)
        scores = 1 / distances.sort(1).values[:, :k].mean(1) if k else torch.ones(len(members))
        best = members[int(scores.argmax())]
        picks.append(best)
        available[best] = False
    return picks


@pytest.mark.parametrize("labeled, budget, max_clusters, min_cluster_size", [([], 12, 500, 5), ([0, 5, 77, 150], 10, 500, 0), ([3], 40, 9, 5)])
def test_typiclust_matches_the_plain_rule(labeled, budget, max_clusters, min_cluster_size):
    points, _ = blobs(400, 6, 5, seed=4, spread=1.0)
    pool = pool_of(points, labeled)
    strategy = TypiClust(neighbours=10, max_clusters=max_clusters, min_cluster_size=min_cluster_size, features=points, seed=2)
    picked, scores = strategy.select(None, pool, budget, return_scores=True)
    count = min(len(labeled) + budget, max_clusters, 400)
    clusters = kmeans(points, count, seed=derived_seed(2, "typiclust", 0)).labels
    assert picked.tolist() == reference_typiclust(points, labeled, budget, clusters, 10, min_cluster_size)
    assert scores.shape == (budget,) and bool((scores > 0).all())


def test_typiclust_matches_scikit_activeml_on_identical_clusters(monkeypatch):
    np = pytest.importorskip("numpy")
    typi_clust = pytest.importorskip("skactiveml.pool._typi_clust")
    monkeypatch.setattr(typi_clust, "rand_argmax", lambda values, random_state=None: np.array([np.nanargmax(values)]))
    points, _ = blobs(500, 8, 4, seed=5, spread=1.5)
    labeled = [1, 40, 41, 300]
    budget = 15
    clusters = kmeans(points, len(labeled) + budget, seed=derived_seed(0, "typiclust", 0)).labels.numpy()

    class GivenClusters:  # scikit-activeml clusters with any class offering fit_predict
        def __init__(self, n_clusters, random_state=None):
            pass

        def fit_predict(self, x):
            return clusters

    y = np.full(500, np.nan)
    y[labeled] = 0
    theirs = typi_clust.TypiClust(cluster_algo=GivenClusters, k=20, random_state=0).query(points.numpy(), y, batch_size=budget)
    ours = TypiClust(neighbours=20, min_cluster_size=0, features=points).select(None, pool_of(points, labeled), budget)
    assert ours.tolist() == theirs.tolist()


# MaxHerding


@pytest.mark.parametrize("labeled", [[], [3, 30, 31, 250]])
def test_maxherding_matches_scikit_activeml(monkeypatch, labeled):
    np = pytest.importorskip("numpy")
    max_herding = pytest.importorskip("skactiveml.pool._max_herding")
    monkeypatch.setattr(max_herding, "rand_argmax", lambda values, random_state=None: np.array([np.nanargmax(values)]))
    points, _ = blobs(300, 6, 4, seed=9, spread=1.0)
    y = np.full(300, np.nan)
    y[labeled] = 0
    theirs = max_herding.MaxHerding(metric_dict={"gamma": 1.5}, random_state=0).query(points.numpy(), y, batch_size=10)
    strategy = MaxHerding(gamma=1.5, features=points)
    ours, gains = strategy.select(None, pool_of(points, labeled), 10, return_scores=True)
    assert ours.tolist() == theirs.tolist()
    assert bool((gains[1:] <= gains[:-1] + 1e-12).all())


# ProbCover


def test_distance_to_other_clusters_and_the_exact_purity_radius():
    points, _ = blobs(300, 4, 3, seed=6, spread=1.5)
    labels = kmeans(points, 4, seed=0).labels
    got = distance_to_other_clusters(points, labels)
    distances = torch.cdist(points, points)
    distances[labels[:, None] == labels[None, :]] = math.inf
    torch.testing.assert_close(got, distances.min(1).values)
    radius = purity_radius(got, 0.9)
    purity = lambda r: float((got > r).double().mean())  # noqa: E731
    assert purity(radius) >= 0.9 and purity(radius * (1 + 2e-6)) < 0.9


def test_probcover_radius_and_picks_match_scikit_activeml(monkeypatch):
    np = pytest.importorskip("numpy")
    prob_cover = pytest.importorskip("skactiveml.pool._prob_cover")
    monkeypatch.setattr(prob_cover, "rand_argmax", lambda values, random_state=None: np.array([np.nanargmax(values)]))
    points, _ = blobs(400, 5, 6, seed=7, spread=2.0)
    points = torch.nn.functional.normalize(points, dim=1)
    labeled = [2, 9, 200]
    grid = torch.arange(1, 41) * 0.05
    clusters = kmeans(points, 5, seed=derived_seed(0, "probcover", 0)).labels.numpy()

    class GivenClusters:
        def __init__(self, n_clusters, random_state=None):
            pass

        def fit_predict(self, x):
            return clusters

    y = np.full(400, np.nan)
    y[labeled] = 0
    theirs = prob_cover.ProbCover(deltas=grid.numpy(), n_classes=5, cluster_algo=GivenClusters, random_state=0)
    their_picks = theirs.query(points.numpy(), y, batch_size=12)
    strategy = ProbCover(radii=grid, classes=5, features=points, normalise=False)
    ours = strategy.select(None, pool_of(points, labeled), 12)
    assert strategy.last_cost.details["radius"] == pytest.approx(theirs.delta_max_)
    assert ours.tolist() == their_picks.tolist()


def test_probcover_draws_the_rest_once_everything_is_covered():
    points = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.1], [9.0, 0.0], [9.0, 0.1], [9.1, 0.0]], dtype=torch.float64)
    strategy = ProbCover(radius=0.5, features=points, normalise=False, seed=4)
    picked, gains = strategy.select(None, pool_of(points), 5, return_scores=True)
    assert picked[:3].tolist() == [4, 0, 2] and gains[:3].tolist() == [3.0, 2.0, 2.0]
    assert strategy.last_cost.details["covering_picks"] == 3 and gains[3:].tolist() == [0.0, 0.0]
    again = ProbCover(radius=0.5, features=points, normalise=False, seed=4).select(None, pool_of(points), 5)
    assert torch.equal(picked, again) and len(set(picked.tolist())) == 5


def test_cold_start_and_a_model_layer_equal_precomputed_features():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).double()
    inputs, _ = blobs(250, 4, 5, seed=8)
    with torch.no_grad():
        embeddings = model[1](model[0](inputs)).float()  # embed captures float32
    pool = pool_of(inputs)
    for name, options in (("typiclust", {}), ("probcover", {"classes": 4}), ("maxherding", {}), ("uherding", {})):
        from_model = make_strategy(name).select(model, pool, 10)
        from_features = make_strategy(name, features=embeddings, **options).select(model if name == "uherding" else None, pool, 10)
        assert torch.equal(from_model, from_features), name


@pytest.mark.parametrize(
    "build, model, message",
    [
        (lambda x: ProbCover(features=x), None, "the purity rule needs the number of classes"),
        (lambda x: TypiClust(features=x[:10]), None, "features has 10 rows but the pool has 50 items"),
        (lambda x: TypiClust(), None, "embeds the pool with a model; got model=None"),
        (lambda x: TypiClust(features=torch.where(torch.arange(50)[:, None] == 7, math.nan, x)), None, "features row 7 holds NaN or inf"),
        (lambda x: UHerding(features=x), None, "UHerding weighs points by the model's uncertainty; got model=None"),
    ],
)
def test_bad_setups_are_named(build, model, message):
    points = torch.randn(50, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        build(points).select(model, pool_of(points), 5)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ProbCover(radius=-1.0), "ProbCover: radius"),
        (lambda: ProbCover(purity=0.0), "ProbCover: purity"),
        (lambda: ProbCover(radii=[0.5, 0.2]), "radii must be a non-empty increasing grid"),
        (lambda: TypiClust(neighbours=0), "TypiClust: neighbours must be an int >= 1"),
        (lambda: MaxHerding(gamma=0.0), "MaxHerding: gamma"),
        (lambda: UHerding(temperature=0.0), "UHerding: temperature"),
        (lambda: UHerding(gamma=-1.0), "UHerding: gamma"),
        (lambda: UHerding(validation=(torch.zeros(4, 2), torch.zeros(3))), "validation must be"),
        (lambda: TypiClust(features=torch.zeros(5)), r"features must be a floating Tensor\[N, D\]"),
    ],
)
def test_bad_options_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# UHerding


def uherding_reference(points, logits, labeled, budget, temperature, gamma=None):
    """The paper's greedy written out: the dense kernel, U from the tempered margin, σ adapted."""
    points = torch.nn.functional.normalize(points.double(), dim=1)
    n = points.shape[0]
    unlabeled = [i for i in range(n) if i not in labeled]
    x, seen = points[unlabeled], points[labeled]
    if gamma is None:
        pairs = torch.pdist(seen) if len(labeled) >= 2 else torch.pdist(x)
        pairs = pairs[pairs > 0]
        sigma = float(pairs.min()) if len(labeled) >= 2 else float(pairs.median())
        gamma = 1 / sigma**2
    probabilities = (logits[unlabeled].double() / temperature).softmax(1).sort(1, descending=True).values
    weights = 1 - (probabilities[:, 0] - probabilities[:, 1])
    kernel = torch.exp(-gamma * torch.cdist(x, x).square())
    cover = torch.exp(-gamma * torch.cdist(x, seen).square()).amax(1) if labeled else torch.zeros(len(unlabeled), dtype=torch.float64)
    picks = []
    for _ in range(budget):
        gains = (weights[:, None] * (kernel - cover[:, None]).clamp(min=0)).sum(0)
        gains[picks] = -1
        pick = int(gains.argmax())
        picks.append(pick)
        cover = torch.maximum(cover, kernel[:, pick])
    return [unlabeled[p] for p in picks], gamma


class GivenLogits(torch.nn.Module):
    """A model whose logits for input row i are logits[i] (the input's first column holds i) and
    whose last-layer embedding is the rest of the row."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.head = torch.nn.Linear(3, logits.shape[1]).double()

    def forward(self, x):
        self.head(x[:, 1:])
        return self.logits[x[:, 0].long()]


@pytest.mark.parametrize("labeled, temperature", [([], 1.0), ([5, 17, 40, 41, 150], 0.5), ([3], 2.0)])
def test_uherding_matches_the_dense_greedy(labeled, temperature):
    points, _ = blobs(200, 5, 3, seed=12, spread=1.0)
    logits = torch.randn(200, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    inputs = torch.cat([torch.arange(200, dtype=torch.float64)[:, None], points], 1)
    strategy = UHerding(temperature=temperature, features=points)
    ours, gains = strategy.select(GivenLogits(logits), pool_of(inputs, labeled), 12, return_scores=True)
    want, gamma = uherding_reference(points, logits, labeled, 12, temperature)
    assert ours.tolist() == want
    assert strategy.last_cost.details["gamma"] == pytest.approx(gamma, rel=1e-9)
    assert bool((gains[1:] <= gains[:-1] + 1e-12).all())
    # The model's last-layer embedding (the head's input) gives the same picks as the features.
    assert UHerding(temperature=temperature).select(GivenLogits(logits), pool_of(inputs, labeled), 12).tolist() == want


def test_uherding_without_uncertainty_is_maxherding():
    points, _ = blobs(150, 4, 3, seed=13)
    inputs = torch.cat([torch.arange(150, dtype=torch.float64)[:, None], points], 1)
    confident = torch.zeros(150, 3, dtype=torch.float64)
    confident[:, 0] = 1000.0  # every margin 1: every uncertainty 0, so every weight becomes 1
    ours = UHerding(gamma=2.0, features=points).select(GivenLogits(confident), pool_of(inputs, [1, 2]), 8)
    assert ours.tolist() == MaxHerding(gamma=2.0, features=points).select(None, pool_of(inputs, [1, 2]), 8).tolist()


def test_expected_calibration_error_and_the_calibrated_temperature():
    generator = torch.Generator().manual_seed(2)
    probabilities = torch.rand(500, 3, generator=generator, dtype=torch.float64).softmax(1)
    labels = torch.randint(3, (500,), generator=generator)
    confidence, predicted = probabilities.max(1)
    expected = 0.0
    for b in range(15):
        left, right = b / 15, (b + 1) / 15
        members = (confidence >= left) & ((confidence < right) if b < 14 else (confidence <= right))
        if members.any():
            expected += float(members.double().mean()) * abs(float((predicted[members] == labels[members]).double().mean()) - float(confidence[members].mean()))
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected, abs=1e-12)
    # Logits of a model that is right 70% of the time but sure of itself: calibration softens them (τ > 1).
    truth = torch.randint(3, (2000,), generator=generator)
    guess = torch.where(torch.rand(2000, generator=generator) < 0.7, truth, (truth + 1) % 3)
    logits = torch.nn.functional.one_hot(guess, 3).double() * 8
    temperature = calibrated_temperature(logits, truth)
    assert temperature > 1
    tempered = expected_calibration_error((logits / temperature).softmax(1), truth)
    assert tempered < 0.02 < expected_calibration_error(logits.softmax(1), truth)


def test_uherding_calibrates_on_the_validation_set():
    points, _ = blobs(100, 3, 3, seed=14)
    logits = torch.randn(100, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 6
    inputs = torch.cat([torch.arange(100, dtype=torch.float64)[:, None], points], 1)
    validation = (inputs[:60], torch.randint(3, (60,), generator=torch.Generator().manual_seed(5)))
    strategy = UHerding(validation=validation, features=points)
    strategy.select(GivenLogits(logits), pool_of(inputs, [0, 1]), 5)
    assert strategy.last_cost.details["temperature"] == pytest.approx(calibrated_temperature(logits[:60], validation[1]))
    want, _ = uherding_reference(points, logits, [0, 1], 5, strategy.last_cost.details["temperature"])
    assert UHerding(validation=validation, features=points).select(GivenLogits(logits), pool_of(inputs, [0, 1]), 5).tolist() == want
