"""M2-VAAL: Losalka, Singhanian & Sun, "Active Learning using Deep Generative Models" (student
project slides), on Kingma, Rezende, Mohamed & Welling, "Semi-supervised learning with deep
generative models", NIPS 2014.

VAAL with its β-VAE replaced by the semi-supervised M2 model, whose classifier q(y | x) is part of
the latent code [z, y'] the discriminator reads; and the slides' two rules that drop the
discriminator and select by distances in that latent space instead.
"""

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from torch_al.arbiter import ONE_PROCESS, Arbiter, Pick
from torch_al.checks import check_int, check_real
from torch_al.pool import ActivePool
from torch_al.strategies.generative.networks import M2VAE, LatentDiscriminator, gaussian_kl
from torch_al.strategies.generative.vaal import VAAL, fooling_loss, separation_loss

RULES = ("discriminator", "anchor-distance", "confidence-distance")
KINGMA_ALPHA = 0.1  # Kingma et al.'s α = 0.1·N, N the number of items (labeled and unlabeled)


class M2Loss(NamedTuple):
    """The terms of M2's objective on a labeled and an unlabeled batch (0-d Tensors), with
    −ELBO(x, y) = ‖x̂ − x‖² + β·KL(q(z | x, y) ‖ N(0, I)) per item (x̂ decoded from
    z = μ + σ·ε): ``labeled`` = mean_L −ELBO(x, y); ``classification`` = mean_L −log q(y | x);
    ``unlabeled`` = mean_U [Σ_y q(y | x)·(−ELBO(x, y)) − H(q(y | x))]; ``adversarial`` =
    −mean_L log D(c) − mean_U log D(c) on the latent codes c = [μ(x, y'), y'] (0 without a
    discriminator); ``total = labeled + α·classification + unlabeled + λ·adversarial``."""

    labeled: Tensor
    classification: Tensor
    unlabeled: Tensor
    adversarial: Tensor
    total: Tensor


def negative_elbo(model: M2VAE, x: Tensor, features: Tensor, y: Tensor, noise: Tensor, beta: float) -> Tensor:
    """−ELBO(x, y) per item, Tensor[B], up to constants: images Tensor[B, C, H, W], their encoder
    features Tensor[B, F], y Tensor[B, K], ε Tensor[B, latent_dim]."""
    mean, log_variance = model.posterior(features, y)
    reconstruction = model.decode(mean + noise * (0.5 * log_variance).exp(), y)
    return (reconstruction - x).pow(2).flatten(1).sum(1) + beta * gaussian_kl(mean, log_variance)


def m2_loss(
    model: M2VAE,
    discriminator: LatentDiscriminator | None,
    labeled: Tensor,
    labels: Tensor,
    unlabeled: Tensor,
    beta: float = 1.0,
    classifier_weight: float = 1.0,
    adversary_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> M2Loss:
    """M2's objective (see :class:`M2Loss`) on images Tensor[B_L, C, H, W] with int64 labels
    Tensor[B_L] and images Tensor[B_U, C, H, W]. ε is one draw Tensor[B_L + K·B_U, latent_dim]
    from ``generator``: the first B_L rows for the labeled items, then B_U rows per class k =
    0 … K−1 for the unlabeled items decoded with y = k."""
    classes, count = model.classes, unlabeled.shape[0]
    noise = torch.randn(labeled.shape[0] + classes * count, model.latent_dim, generator=generator, device=labeled.device, dtype=labeled.dtype)
    labeled_features, unlabeled_features = model.encoder(labeled), model.encoder(unlabeled)
    one_hot = F.one_hot(labels, classes).to(labeled.dtype)
    labeled_elbo = negative_elbo(model, labeled, labeled_features, one_hot, noise[: labeled.shape[0]], beta)
    every_class = torch.eye(classes, dtype=unlabeled.dtype, device=unlabeled.device).repeat_interleave(count, 0)
    repeated = unlabeled.repeat(classes, 1, 1, 1), unlabeled_features.repeat(classes, 1)
    unlabeled_elbo = negative_elbo(model, *repeated, every_class, noise[labeled.shape[0] :], beta).view(classes, count).T
    labeled_logits, log_q = model.classify(labeled), model.classify(unlabeled).log_softmax(1)
    q = log_q.exp()
    unlabeled_term = ((q * unlabeled_elbo).sum(1) + (q * log_q).sum(1)).mean()  # + Σ q log q = − H(q)
    classification = F.cross_entropy(labeled_logits, labels)
    if discriminator is None:
        adversarial = labeled_elbo.new_zeros(())
    else:
        labeled_codes = model.code(labeled_features, labeled_logits.softmax(1))
        adversarial = fooling_loss(discriminator(labeled_codes), discriminator(model.code(unlabeled_features, q)))
    labeled_term = labeled_elbo.mean()
    total = labeled_term + classifier_weight * classification + unlabeled_term + adversary_weight * adversarial
    return M2Loss(labeled_term, classification, unlabeled_term, adversarial, total)


def m2_discriminator_loss(model: M2VAE, discriminator: LatentDiscriminator, labeled: Tensor, unlabeled: Tensor) -> Tensor:
    """−mean log D(c_L) − mean log(1 − D(c_U)) on the latent codes :meth:`M2VAE.latent` (no
    gradient reaches the M2 model)."""
    with torch.no_grad():
        labeled_codes, unlabeled_codes = model.latent(labeled), model.latent(unlabeled)
    return separation_loss(discriminator(labeled_codes), discriminator(unlabeled_codes))


def class_distance_sums(codes: Tensor, predictions: Tensor, anchor_codes: Tensor, anchor_classes: Tensor) -> tuple[Tensor, Tensor]:
    """For each row of ``codes`` Tensor[N, D], the sum of its Euclidean distances to the
    ``anchor_codes`` Tensor[M, D] whose class (``anchor_classes`` Tensor[M]) is its prediction
    (``predictions`` Tensor[N]), and how many there are: float64 Tensor[N] each. In row chunks,
    so that no N × M matrix is formed."""
    codes, anchor_codes = codes.double(), anchor_codes.double()
    sums, counts = [], []
    for chunk, rows in zip(codes.split(4096), predictions.split(4096)):
        same_class = (rows.view(-1, 1) == anchor_classes.view(1, -1)).double()
        distances = torch.cdist(chunk, anchor_codes, compute_mode="donot_use_mm_for_euclid_dist") if anchor_codes.shape[0] else same_class
        sums.append((distances * same_class).sum(1))
        counts.append(same_class.sum(1))
    return torch.cat(sums), torch.cat(counts)


def anchor_distance_select(
    codes: Tensor,
    predictions: Tensor,
    anchor_codes: Tensor,
    anchor_classes: Tensor,
    budget: int,
    classes: int | None = None,
    arbiter: Arbiter = ONE_PROCESS,
) -> tuple[Tensor, Tensor]:
    """The slides' Algorithm 1 on latent codes: ``budget`` rows of ``codes`` Tensor[N, D] (in the
    arbiter's index space: rows here on one process) and their scores (float64 Tensor[budget]),
    in the order picked.

    The classes take turns, in ascending order, each picking once per turn while it has rows
    predicted (``predictions`` int64 Tensor[N], below ``classes``; default its largest + 1) as
    that class left: a class picks its row with the largest sum of Euclidean distances to its
    anchors (``anchor_codes`` Tensor[M, D] of class ``anchor_classes`` Tensor[M], and the rows it
    has picked so far), ties to the lower row. A class with no anchor yet scores all its rows 0,
    so it picks its lowest row first. Each pick's winner comes from ``arbiter`` with its code, so
    ranks holding shards of the rows make the picks one process makes.
    """
    codes = codes.double()
    sums, _ = class_distance_sums(codes, predictions, anchor_codes, anchor_classes)
    classes = classes if classes is not None else int(predictions.max()) + 1 if predictions.numel() else 0
    left = arbiter.total(torch.bincount(predictions.cpu(), minlength=classes))
    available = torch.ones(codes.shape[0], dtype=torch.bool, device=codes.device)
    picked: list[Pick] = []
    while len(picked) < budget:
        for class_ in left.nonzero().flatten().tolist():
            if len(picked) == budget:
                break
            members = predictions == class_
            picked.append(arbiter.pick(sums, available & members, (codes,)))
            left[class_] -= 1
            if picked[-1].local >= 0:
                available[picked[-1].local] = False
            sums[members] += torch.linalg.vector_norm(codes[members] - picked[-1].rows[0], dim=1)
    return torch.tensor([pick.index for pick in picked], dtype=torch.int64), torch.tensor([float(pick.value) for pick in picked], dtype=torch.float64)


def confidence_distance_scores(codes: Tensor, probabilities: Tensor, anchor_codes: Tensor, anchor_classes: Tensor) -> Tensor:
    """The slides' Algorithm 2, float64 Tensor[N]: (1 − max_y q(y | x))·d̃(x), highest first.
    d̄(x) is the mean Euclidean distance from x's code (``codes`` Tensor[N, D]) to the anchors of
    its predicted class (argmax of ``probabilities`` Tensor[N, K], ties to the lower class;
    ``anchor_codes`` Tensor[M, D] of class ``anchor_classes`` Tensor[M]); d̃ = d̄ divided by its
    largest value among the rows predicted as the same class (0 where that is 0), and 1 for a
    class without anchors (nothing known of it)."""
    parts = confidence_distance_parts(codes, probabilities, anchor_codes, anchor_classes)
    return confidence_distance_from_parts(parts, class_largest_distances(parts, probabilities.shape[1]))


class ConfidenceDistanceParts(NamedTuple):
    """What rule 2 needs of each row before the per-class normalisation, float64 / int64 Tensor[N]."""

    uncertainty: Tensor  # 1 − max_y q(y | x)
    predictions: Tensor  # argmax_y q(y | x), ties to the lower class
    mean_distance: Tensor  # d̄(x)
    anchors: Tensor  # how many anchors the row's predicted class has


def confidence_distance_parts(codes: Tensor, probabilities: Tensor, anchor_codes: Tensor, anchor_classes: Tensor) -> ConfidenceDistanceParts:
    confidence, predictions = probabilities.double().max(1)
    sums, counts = class_distance_sums(codes, predictions, anchor_codes, anchor_classes)
    return ConfidenceDistanceParts(1 - confidence, predictions, sums / counts.clamp_min(1), counts)


def class_largest_distances(parts: ConfidenceDistanceParts, classes: int) -> Tensor:
    """float64 Tensor[K]: the largest d̄ among the rows predicted as each class (0 for none); a
    maximum, so shards' values combine exactly by an all-reduce."""
    return parts.mean_distance.new_zeros(classes).scatter_reduce(0, parts.predictions, parts.mean_distance, "amax")


def confidence_distance_from_parts(parts: ConfidenceDistanceParts, largest: Tensor) -> Tensor:
    normalised = parts.mean_distance / largest[parts.predictions].clamp_min(torch.finfo(torch.float64).tiny)
    return parts.uncertainty * torch.where(parts.anchors > 0, normalised, 1.0)


class M2VAAL(VAAL):
    """M2-VAAL and its two latent-distance rules on image pools (items Tensor[C, H, W], H and W
    multiples of 4).

    At each selection a fresh :class:`M2VAE` (and, for ``rule="discriminator"`` or a positive
    ``adversary_weight``, a :class:`LatentDiscriminator` on its latent code [μ(x, y'), y'],
    y' = q(y | x)) is trained from scratch on the labeled and unlabeled images as VAAL trains
    its networks (``iterations`` × two M2 steps on :func:`m2_loss`, then one discriminator
    step on :func:`m2_discriminator_loss`). The query, by ``rule``:

    - ``"discriminator"`` (``m2-vaal``): the items with the lowest discriminator logit, as VAAL.
    - ``"anchor-distance"`` (``m2-anchor-distance``): :func:`anchor_distance_select`, the anchors
      being the labeled items that q(y | x) classifies correctly.
    - ``"confidence-distance"`` (``m2-confidence-distance``): the highest
      :func:`confidence_distance_scores`, ties to the lower global index.

    Randomness, the task model (unused but for its device), zero labels (a uniform draw) and the
    input checks are VAAL's. The trained networks of the last selection are ``last_vae`` and
    ``last_discriminator``; the classifier weight it used is ``last_classifier_weight``.

    Cost per round, in images: iterations·2·(K + 1)·batch_size forwards and backwards through the
    M2 model (each unlabeled item is decoded once per class), iterations·2·batch_size more with a
    discriminator, plus N̂ forwards to score (N̂ + labeled for the distance rules).

    Args:
        rule: one of ``RULES``.
        iterations: training iterations (each two M2 steps, then a discriminator step).
        batch_size: labeled and unlabeled items per training batch (each), and items per scoring batch.
        latent_dim: size of z.
        beta: β, the weight of the KL term.
        adversary_weight: λ, the weight of the adversarial term; None: 1 for the discriminator
            rule, 0 for the distance rules (the slides drop the adversary there).
        classifier_weight: α, the weight of the labeled cross entropy; None: Kingma et al.'s
            α = 0.1·N read per labeled item, 0.1·(pool size)/(labeled items).
        num_classes: K; None: the largest label of the labeled set + 1 (at least 2).
        lr: Adam learning rate of both networks.
        seed: base seed.
        progress: show a progress bar while training.
    """

    last_vae: M2VAE | None = None  # type: ignore[assignment]
    last_classifier_weight: float | None = None
    seed_name = "m2-vaal"

    def __init__(
        self,
        rule: str = "discriminator",
        iterations: int = 200,
        batch_size: int = 64,
        latent_dim: int = 32,
        beta: float = 1.0,
        adversary_weight: float | None = None,
        classifier_weight: float | None = None,
        num_classes: int | None = None,
        lr: float = 5e-4,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"M2VAAL: rule must be one of {', '.join(RULES)}; got {rule!r}")
        self.rule = rule
        adversary_weight = float(rule == "discriminator") if adversary_weight is None else adversary_weight
        super().__init__(iterations, batch_size, latent_dim, beta, adversary_weight, lr, seed, progress)
        self.classifier_weight = None if classifier_weight is None else check_real(classifier_weight, "M2VAAL: classifier_weight", at_least=0)
        self.num_classes = None if num_classes is None else check_int(num_classes, "M2VAAL: num_classes", 2)

    def _trained_networks(self, pool, labeled, candidates, image_shape, device):
        labels = pool.labels_of(labeled)
        model = M2VAE(image_shape, self._classes(labels), self.latent_dim).to(device)
        adversary = self.rule == "discriminator" or self.adversary_weight > 0
        discriminator = LatentDiscriminator(self.latent_dim + model.classes).to(device) if adversary else None
        weight = self.classifier_weight
        self.last_classifier_weight = weight if weight is not None else KINGMA_ALPHA * len(pool) / labeled.numel()
        self._train(model, discriminator, pool, labeled, candidates, image_shape, device)
        self.last_vae, self.last_discriminator = model, discriminator
        return model, discriminator

    @staticmethod
    def _labeled_logit(networks):
        model, discriminator = networks
        return lambda x: discriminator(model.latent(x))

    def query_over_ranks(self, model, pool, budget, shard):
        """The discriminator rule as VAAL's. The distance rules: the same seeded training on every
        rank, each rank's shard's latent codes, then rule 2 (``confidence-distance``) with the
        per-class largest distances all-reduced (a maximum: exact) and one merge, or rule 1's
        greedy (``anchor-distance``) with the shard's arbiter (exact: one all-gather a pick)."""
        if self.rule == "discriminator" or pool.labeled_indices.numel() == 0:
            return super().query_over_ranks(model, pool, budget, shard)
        codes, anchors, classes = shard.on_every_rank(lambda: self.latent_codes(model, pool, shard.owned))
        if self.rule == "anchor-distance":
            return anchor_distance_select(codes, codes[:, -classes:].argmax(1), *anchors, budget, classes, shard.arbiter())[0]
        parts = shard.on_every_rank(lambda: confidence_distance_parts(codes, codes[:, -classes:], *anchors))
        largest = shard.all_reduced(class_largest_distances(parts, classes), dist.ReduceOp.MAX)
        return shard.top(lambda rows: confidence_distance_from_parts(parts, largest), budget)

    def latent_codes(self, model: nn.Module | None, pool: ActivePool, rows: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor], int]:
        """The latent codes of the pool items ``rows``, the anchors (codes and labels) and the
        class count K after this round's training on the whole pool (needs a labeled item): what
        a distributed query of the distance rules works from, the same training on every rank."""
        with self.round_training(model, pool) as ((network, _), image_shape, device):
            codes, anchors = self._codes_and_anchors(network, pool, rows, image_shape, device)
        return codes, anchors, network.classes

    def _codes_and_anchors(self, network, pool, rows, image_shape, device) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The latent codes of ``rows`` and the anchors: the codes and labels of the correctly
        classified labeled items."""
        labeled = pool.labeled_indices
        labels = pool.labels_of(labeled)
        codes = self._outputs(network.latent, [network], pool, rows, image_shape, device) if rows.numel() else torch.zeros(0, self.latent_dim + network.classes)
        labeled_codes = self._outputs(network.latent, [network], pool, labeled, image_shape, device)
        correct = labeled_codes[:, -network.classes :].argmax(1) == labels
        return codes, (labeled_codes[correct], labels[correct])

    def _scored_query(self, networks, pool, candidates, budget, image_shape, device):
        if self.rule == "discriminator":
            return super()._scored_query(networks, pool, candidates, budget, image_shape, device)
        model = networks[0]
        codes, anchors = self._codes_and_anchors(model, pool, candidates, image_shape, device)
        if self.rule == "anchor-distance":
            rows, scores = anchor_distance_select(codes, codes[:, -model.classes :].argmax(1), *anchors, budget, model.classes)
        else:
            scores = confidence_distance_scores(codes, codes[:, -model.classes :], *anchors)
            rows = torch.sort(scores, descending=True, stable=True).indices[:budget]
            scores = scores[rows]
        return candidates[rows], scores.float()

    def _generator_loss(self, model, discriminator, pool, labeled_rows, labeled_images, unlabeled_images, noise):
        distinct, position = labeled_rows.unique(return_inverse=True)  # a batch may repeat items
        labels = pool.labels_of(distinct)[position].to(labeled_images.device)
        weight = self.last_classifier_weight
        return m2_loss(model, discriminator, labeled_images, labels, unlabeled_images, self.beta, weight, self.adversary_weight, noise).total

    def _discriminator_loss(self, model, discriminator, labeled_images, unlabeled_images):
        return m2_discriminator_loss(model, discriminator, labeled_images, unlabeled_images)

    def _generator_step_images(self, model) -> int:
        return (model.classes + 1) * self.batch_size

    def _classes(self, labels: Tensor) -> int:
        largest = int(labels.max())
        if self.num_classes is None:
            return max(2, largest + 1)
        if largest >= self.num_classes:
            raise ValueError(f"M2VAAL: num_classes={self.num_classes}, but the labeled set holds label {largest}")
        return self.num_classes
