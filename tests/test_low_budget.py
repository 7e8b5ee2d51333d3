"""TypiClust, ProbCover and their k-means: against plain references and scikit-activeml 1.0."""

import math

import pytest
import torch
from torch.utils.data import TensorDataset

import torch_al
from torch_al.kmeans import kmeans
from torch_al.seeding import derived_seed
from torch_al.strategies import MaxHerding, ProbCover, TypiClust, make_strategy
from torch_al.strategies.low_budget.probcover import distance_to_other_clusters, purity_radius
from torch_al.strategies.low_budget.typiclust import typicality

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
    for name, options in (("typiclust", {}), ("probcover", {"classes": 4}), ("maxherding", {})):
        from_model = make_strategy(name).select(model, pool, 10)
        from_features = make_strategy(name, features=embeddings, **options).select(None, pool, 10)
        assert torch.equal(from_model, from_features), name


@pytest.mark.parametrize(
    "build, model, message",
    [
        (lambda x: ProbCover(features=x), None, "the purity rule needs the number of classes"),
        (lambda x: TypiClust(features=x[:10]), None, "features has 10 rows but the pool has 50 items"),
        (lambda x: TypiClust(), None, "embeds the pool with a model; got model=None"),
        (lambda x: TypiClust(features=torch.where(torch.arange(50)[:, None] == 7, math.nan, x)), None, "features row 7 holds NaN or inf"),
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
        (lambda: TypiClust(features=torch.zeros(5)), r"features must be a floating Tensor\[N, D\]"),
    ],
)
def test_bad_options_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
