"""TypiClust (Hacohen, Dekel & Weinshall, "Active Learning on a Budget: Opposite Strategies Suit
High and Low Budgets", ICML 2022): the most typical item of each of the largest clusters that
hold no labeled item."""

import torch
from torch import Tensor

from torch_al.checks import check_int
from torch_al.kmeans import kmeans
from torch_al.nn.capture import Tokens
from torch_al.ops.nearest_neighbours import nearest_neighbours
from torch_al.seeding import derived_seed
from torch_al.strategies.low_budget.features import FeatureStrategy


def typicality(points: Tensor, neighbours: int) -> Tensor:
    """Each row's inverse mean Euclidean distance to its ``min(neighbours, n - 1)`` nearest other
    rows (the paper's Typicality(x)); 1 for a lone row, inf for a row with that many duplicates."""
    n = points.shape[0]
    k = min(neighbours, n - 1)
    if k == 0:
        return points.new_ones(n)
    own = torch.arange(n, device=points.device)
    squared, _ = nearest_neighbours(points, points, k, query_index=own)
    return squared.clamp_min(0).sqrt().mean(1).reciprocal()


class TypiClust(FeatureStrategy):
    """k-means into K = min(|labeled| + budget, ``max_clusters``, N) clusters of the pool's points
    (:func:`torch_al.kmeans.kmeans`, seeded by (seed, round)); the clusters are visited by fewest
    labeled members, then largest size, then lowest id (clusters of at most ``min_cluster_size``
    items last), cycling when the budget exceeds them; each visit picks the unlabeled member of
    highest :func:`typicality` among the cluster's unlabeled members, ties to the lower index.

    As the authors' code: at most 500 clusters, clusters of <= 5 items set aside, the cycle over
    clusters. As the paper, not that code: typicality from Euclidean distances (the code averages
    squared ones) with K = 20 neighbours, or all other members in a smaller cluster.

    Args:
        neighbours: K of the typicality.
        max_clusters: the most clusters k-means makes.
        min_cluster_size: clusters of this many items or fewer are visited after all others.
        features: precomputed points Tensor[N, D] (row i: pool item i); else the model's ``layer``.
        layer: embedding layer name (default: the input of the last ``nn.Linear``).
        tokens: with ``layer``, pool its (B, T, C) tokens: ``"mean"`` or ``"first"`` (:class:`FeatureStrategy`).
        batch_size: embedding batch size.
        seed: k-means's seed (with the round).
    """

    def __init__(
        self,
        neighbours: int = 20,
        max_clusters: int = 500,
        min_cluster_size: int = 5,
        features: Tensor | None = None,
        layer: str | None = None,
        batch_size: int = 256,
        seed: int = 0,
        tokens: Tokens | None = None,
    ) -> None:
        super().__init__(features, layer, batch_size, seed, tokens)
        self.neighbours = check_int(neighbours, "TypiClust: neighbours", 1)
        self.max_clusters = check_int(max_clusters, "TypiClust: max_clusters", 1)
        self.min_cluster_size = check_int(min_cluster_size, "TypiClust: min_cluster_size", 0)

    def pick(self, points, model, pool, budget):
        labeled = pool.labeled_mask.to(points.device)
        count = min(int(labeled.sum()) + budget, self.max_clusters, points.shape[0])
        labels = kmeans(points, count, seed=derived_seed(self.seed, "typiclust", pool.round)).labels
        available = ~labeled
        picks, scores = [], []
        order = self.visiting_order(labels, labeled, count)
        visit = 0
        while len(picks) < budget:
            members = ((labels == order[visit % len(order)]) & available).nonzero().flatten()
            visit += 1
            if members.numel() == 0:
                continue
            typical = typicality(points[members], self.neighbours)
            best = int(typical.argmax())  # the first of equals: members are in increasing index
            picks.append(int(members[best]))
            scores.append(float(typical[best]))
            available[members[best]] = False
        return torch.tensor(picks, dtype=torch.int64), torch.tensor(scores, dtype=torch.float64)

    def visiting_order(self, labels: Tensor, labeled: Tensor, count: int) -> list[int]:
        sizes = torch.bincount(labels, minlength=count).cpu()
        holding_labels = torch.bincount(labels[labeled], minlength=count).cpu()
        small = sizes <= self.min_cluster_size
        clusters = [c for c in range(count) if sizes[c] > 0]
        return sorted(clusters, key=lambda c: (bool(small[c]), int(holding_labels[c]), -int(sizes[c]), c))
