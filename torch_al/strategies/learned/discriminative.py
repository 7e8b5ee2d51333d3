"""Discriminative active learning: Gissin & Shalev-Shwartz, "Discriminative Active Learning",
arXiv:1907.06347, 2019. A binary classifier on the task model's representation ψ(x) tells labeled
from unlabeled items; the items it is surest are unlabeled are the ones least like what is labeled.
The batch is chosen in sub-queries, the classifier retrained between them with the items chosen
so far counted as labeled, which spreads the batch over the regions the labeled set misses."""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from torch_al.arbiter import ONE_PROCESS, Arbiter, highest_first
from torch_al.checks import check_int, check_real
from torch_al.devices import model_device
from torch_al.embeddings import check_embedding_layer, embed
from torch_al.nn.capture import Tokens
from torch_al.pool import ActivePool
from torch_al.sampler import inputs_loader
from torch_al.seeding import derived_seed
from torch_al.strategies.base import Strategy

HIDDEN_LAYERS = 3  # the paper's discriminator: three hidden ReLU layers


def split_budget(budget: int, sub_queries: int) -> list[int]:
    """Sizes of the sub-queries: ``min(sub_queries, budget)`` of them (none is empty), as even as
    possible, the first ``budget % count`` one larger; they add up to ``budget``."""
    count = min(sub_queries, budget)
    size, extra = divmod(budget, count)
    return [size + 1] * extra + [size] * (count - extra)


def discriminator(dim: int, hidden: int, generator: torch.Generator) -> nn.Sequential:
    """An MLP ``dim → hidden → hidden → hidden → 1`` (ReLU) whose output is the logit of
    P(unlabeled | ψ). Initialised like ``nn.Linear`` (U(±1/√fan_in)) from ``generator`` alone, so
    the global RNG is neither read nor advanced. On the CPU."""
    widths = [dim] + [hidden] * HIDDEN_LAYERS
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [nn.Linear(fan_in, fan_out, device="meta"), nn.ReLU()]
    layers.append(nn.Linear(hidden, 1, device="meta"))
    model = nn.Sequential(*layers).to_empty(device="cpu")
    with torch.no_grad():
        for linear in model[::2]:
            bound = 1 / math.sqrt(linear.in_features)
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
    return model


@dataclass
class TrainedDiscriminator:
    """A discriminator and how its training ended: the class-balanced accuracy of its last
    training pass (NaN when a class was absent from that pass) and the Adam steps it took."""

    model: nn.Sequential
    accuracy: float
    steps: int


def train_discriminator(
    features: Tensor,
    is_unlabeled: Tensor,
    generator: torch.Generator,
    *,
    hidden: int,
    steps: int,
    batch_size: int,
    lr: float,
    stop_accuracy: float,
) -> TrainedDiscriminator:
    """A fresh :func:`discriminator` trained to tell the ``is_unlabeled`` rows from the others.

    Args:
        features: float Tensor[m, D], ψ of the training rows.
        is_unlabeled: bool Tensor[m], their targets; both classes must be present.
        generator: CPU generator of the initialisation and the minibatch order.
        hidden: width of the hidden layers.
        steps: at most this many Adam steps on minibatches of ``batch_size`` rows, in shuffled
            passes over the rows.
        lr: Adam's learning rate.
        stop_accuracy: stop at the end of a pass whose class-balanced accuracy (the mean of the
            two classes' accuracies, from the predictions made while training) reaches this.

    Each class carries half of the loss's weight (row weight m / m_class, as in the authors'
    code), so the few labeled rows are not drowned out by the unlabeled ones. No regularisation:
    the task is close to fitting a random labelling, and the early stop is what keeps the
    classifier from memorising it. Everything depends on the inputs and ``generator`` alone, so
    every holder of the same rows trains the same classifier.
    """
    counts = torch.bincount(is_unlabeled.long().cpu(), minlength=2)
    if not bool(counts.all()):
        raise ValueError(f"train_discriminator: is_unlabeled must hold both classes, got {counts[0]} labeled and {counts[1]} unlabeled rows")
    model = discriminator(features.shape[1], hidden, generator).to(features.device)
    targets = is_unlabeled.to(features.device, features.dtype)
    class_weight = is_unlabeled.numel() / counts.to(targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    step, accuracy = 0, math.nan
    while step < steps:
        order = torch.randperm(is_unlabeled.numel(), generator=generator)[: (steps - step) * batch_size]  # the last pass may stop short
        batches = [batch.to(features.device) for batch in order.split(batch_size)]
        accuracy = _train_pass(model, optimizer, features, targets, class_weight, batches)
        step += len(batches)
        if accuracy >= stop_accuracy:
            break
    return TrainedDiscriminator(model.eval(), accuracy, step)


def _train_pass(model: nn.Module, optimizer: torch.optim.Optimizer, features: Tensor, targets: Tensor, class_weight: Tensor, batches: list[Tensor]) -> float:
    """One Adam step per batch of rows; the pass's class-balanced accuracy, from each batch's
    predictions before its step (NaN when a class was absent from the pass)."""
    counts = torch.zeros(2, 2, device=features.device)  # correct, seen per class
    for rows in batches:
        labels = targets[rows]
        logits = model(features[rows]).squeeze(1)
        loss = (class_weight[labels.long()] * nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        counts[0] += torch.bincount(labels.long(), weights=((logits > 0) == labels.bool()).float(), minlength=2)
        counts[1] += torch.bincount(labels.long(), minlength=2)
    correct, seen = counts
    return float((correct / seen).mean())


@torch.no_grad()
def unlabeled_probability(model: nn.Module, features: Tensor) -> Tensor:
    """P(unlabeled | ψ) = sigmoid of the discriminator's logit, float Tensor[N]."""
    return torch.sigmoid(model(features).squeeze(1))


def standardised(features: Tensor) -> Tensor:
    """``features`` (Tensor[m, D]) with every column shifted and scaled to mean 0 and standard
    deviation 1 over its rows (a constant column becomes 0). Measured on LeNet's 50-d
    Fashion-MNIST embeddings, 125 labeled: the discriminator reaches 0.98 balanced accuracy in
    962 steps instead of 0.90 after 2000."""
    rows = features.double()
    mean = rows.mean(0)
    deviation = (rows - mean).square().mean(0).sqrt()  # two passes: no cancellation
    scale = torch.where(deviation > 1e-12 * mean.abs().clamp_min(1), deviation, torch.inf)
    return ((rows - mean) / scale).to(features.dtype)


def training_rows(is_unlabeled: Tensor, ratio: float | None, at_least: int, generator: torch.Generator) -> Tensor:
    """The rows a sub-query's discriminator trains on, int64 Tensor[m] increasing: every labeled
    row and max(⌊ratio · labeled⌋, ``at_least``) unlabeled rows drawn without replacement (all of
    them when there are no more, or ``ratio`` is None), as the authors' code subsamples the
    unlabeled side."""
    labeled, unlabeled = (~is_unlabeled).nonzero().squeeze(1), is_unlabeled.nonzero().squeeze(1)
    if ratio is not None and (count := max(int(ratio * labeled.numel()), at_least)) < unlabeled.numel():
        unlabeled = unlabeled[torch.randperm(unlabeled.numel(), generator=generator)[:count]]
    return torch.cat([labeled, unlabeled]).sort().values


def gathered_rows(features: Tensor, held: Tensor, rows: Tensor, arbiter: Arbiter = ONE_PROCESS) -> Tensor:
    """ψ of the pool items ``rows`` (int64 Tensor[m], CPU), Tensor[m, D], on every holder: each
    fills the rows it holds (``features`` of its increasing items ``held``) and the arbiter sums
    the holders' tensors; every item is held once, so the sum adds zeros only and is exact."""
    out = features.new_zeros(rows.numel(), features.shape[1])
    if held.numel():
        position = torch.searchsorted(held, rows).clamp_max(held.numel() - 1)
        mine = held[position] == rows
        out[mine.to(out.device)] = features[position[mine].to(features.device)]
    return arbiter.total(out)


class DiscriminativeAL(Strategy):
    """Sub-queries of the items a labeled-vs-unlabeled classifier is surest are unlabeled.

    ψ(x) is computed once per selection for the whole pool (the task model does not change
    between sub-queries). The budget P is split into n = min(``sub_queries``, P) sub-queries of
    sizes ⌈P/n⌉ or ⌊P/n⌋, the larger ones first (:func:`split_budget`). For each, as the authors'
    code does: the items chosen by the earlier sub-queries count as labeled; the unlabeled side is
    subsampled to ``unlabeled_ratio`` × |labeled| items, at least the sub-query's size
    (:func:`training_rows`); their ψ, standardised per column over those rows
    (:func:`standardised`), train a fresh discriminator (:func:`train_discriminator`) until its
    class-balanced training accuracy reaches ``stop_accuracy`` or ``discriminator_steps`` steps;
    and the sub-query takes the sampled unlabeled items of highest P(unlabeled | ψ), ties to the
    lower global index. Over ranks, the training rows are gathered to every rank
    (:func:`gathered_rows`), which then trains and ranks as one process does. With nothing labeled yet there is nothing to discriminate: the first
    sub-query is then drawn uniformly at random.

    Every random draw (the subsample, the classifier's initialisation, the minibatch order, the
    first draw with nothing labeled) comes from a generator seeded by (seed, round, sub-query), so
    a selection repeats exactly. Scores: each pick's P(unlabeled | ψ) in its sub-query (1 for the
    random first sub-query: every item is unlabeled). Cost: N̂ + labeled forward passes of the task
    model; the discriminators' training is no pass of the task model and counts in the seconds.
    ``last_cost.details`` holds ``discriminator_accuracy`` (the lowest final training accuracy of
    the selection's discriminators, over those whose last pass saw both classes) and
    ``discriminator_steps`` (their Adam steps, summed).

    Args:
        sub_queries: n, an int >= 1 (the paper's 10 on MNIST).
        layer: the representation's layer name (its output, flattened); default the input of the
            model's last ``nn.Linear``, the penultimate layer.
        hidden: width of the discriminator's three hidden layers (the paper: 500; see
            docs/methods.md for why 128).
        discriminator_steps: at most this many Adam steps per discriminator.
        train_batch_size: the discriminator's minibatch size (the authors' 1024: large, so that
            most minibatches hold some labeled rows).
        lr: Adam's learning rate.
        stop_accuracy: stop training once the class-balanced training accuracy reaches this (the
            authors' 0.98), in (0, 1].
        unlabeled_ratio: unlabeled rows per labeled row in each discriminator's training set and
            among the sub-query's candidates (the authors' 10); None: every unlabeled item.
        batch_size: the task model's forward batch size.
        seed: base seed of the draws.
        tokens: with a named ``layer``, read its output as (B, T, C) tokens pooled to (B, C):
            ``"mean"`` over the tokens or ``"first"`` (the class token); None flattens it.
    """

    def __init__(
        self,
        sub_queries: int = 10,
        layer: str | None = None,
        hidden: int = 128,
        discriminator_steps: int = 3000,
        train_batch_size: int = 1024,
        lr: float = 1e-3,
        stop_accuracy: float = 0.98,
        unlabeled_ratio: float | None = 10.0,
        batch_size: int = 256,
        seed: int = 0,
        tokens: Tokens | None = None,
    ) -> None:
        check_embedding_layer("DiscriminativeAL", layer, tokens)
        self.lr = check_real(lr, "DiscriminativeAL: lr", above=0)
        self.stop_accuracy = check_real(stop_accuracy, "DiscriminativeAL: stop_accuracy", above=0, at_most=1)
        self.unlabeled_ratio = None if unlabeled_ratio is None else check_real(unlabeled_ratio, "DiscriminativeAL: unlabeled_ratio", above=0)
        self.sub_queries = check_int(sub_queries, "DiscriminativeAL: sub_queries", 1)
        self.layer = layer
        self.tokens = tokens
        self.hidden = check_int(hidden, "DiscriminativeAL: hidden", 1)
        self.discriminator_steps = check_int(discriminator_steps, "DiscriminativeAL: discriminator_steps", 1)
        self.train_batch_size = check_int(train_batch_size, "DiscriminativeAL: train_batch_size", 1)
        self.batch_size = check_int(batch_size, "DiscriminativeAL: batch_size", 1)
        self.seed = seed

    def query(self, model, pool, budget):
        everything = torch.arange(len(pool))
        return self.query_from_features(self.features_of(model, pool, everything), pool, budget, everything)

    def query_over_ranks(self, model, pool, budget, shard):
        """Each rank embeds its shard (rank 0 the labeled items too); each sub-query's training
        rows (the labeled items and the sampled unlabeled ones, at most (1 + unlabeled_ratio) ×
        labeled) reach every rank by one all-reduce, and every rank trains the same discriminator
        and ranks the sampled items as one process does (exact)."""
        held = torch.cat([pool.labeled_indices, shard.owned]).sort().values if shard.rank == 0 else shard.owned
        features = shard.held_or_empty(shard.on_every_rank(lambda: self.features_of(model, pool, held)), 1, model_device(model))
        return self.query_from_features(features, pool, budget, held, shard.arbiter(held))[0]

    def features_of(self, model: nn.Module | None, pool: ActivePool, rows: Tensor) -> Tensor | None:
        """ψ of the pool items ``rows`` (int64 Tensor[n]), float Tensor[n, D]; None when n = 0."""
        if model is None:
            raise ValueError("DiscriminativeAL embeds the pool with a model; got model=None")
        self.charge(forward=rows.numel())
        return embed(model, inputs_loader(pool, rows, self.batch_size), self.layer, rows, name=type(self).__name__, tokens=self.tokens) if rows.numel() else None

    def query_from_features(self, features: Tensor, pool: ActivePool, budget: int, held: Tensor, arbiter: Arbiter = ONE_PROCESS) -> tuple[Tensor, Tensor]:
        """The sub-queries' picks and their P(unlabeled | ψ), from ``features`` Tensor[n, D] of the
        pool items ``held`` (int64 Tensor[n], increasing); ``arbiter`` joins this process to the
        holders of the other items: on one process every item is held; over ranks, each rank
        holds its shard and one of them the labeled items (:meth:`query_over_ranks`)."""
        is_unlabeled = ~pool.labeled_mask
        picks, scores, trainings = [], [], []
        for sub_query, size in enumerate(split_budget(budget, self.sub_queries)):
            generator = torch.Generator().manual_seed(derived_seed(self.seed, "dal", pool.round, sub_query))
            chosen, probability, trained = self._sub_query(features, is_unlabeled, held, size, generator, arbiter)
            is_unlabeled[chosen] = False
            picks.append(chosen)
            scores.append(probability)
            trainings += [trained] if trained is not None else []
        if trainings:
            self.note(discriminator_steps=sum(t.steps for t in trainings))
        if measured := [t.accuracy for t in trainings if not math.isnan(t.accuracy)]:
            self.note(discriminator_accuracy=min(measured))
        return torch.cat(picks).cpu(), torch.cat(scores).float().cpu()

    def _sub_query(self, features: Tensor, is_unlabeled: Tensor, held: Tensor, size: int, generator: torch.Generator, arbiter: Arbiter) -> tuple[Tensor, Tensor, TrainedDiscriminator | None]:
        """``size`` items among ``is_unlabeled`` (bool Tensor[N]), their P(unlabeled | ψ), and the
        discriminator that chose them (None for the random draw with nothing labeled)."""
        if bool(is_unlabeled.all()):  # every holder draws the same
            return torch.randperm(is_unlabeled.numel(), generator=generator)[:size], torch.ones(size), None  # P(unlabeled) = 1: everything is
        rows = training_rows(is_unlabeled, self.unlabeled_ratio, size, generator)
        training = standardised(gathered_rows(features, held, rows, arbiter))
        targets = is_unlabeled[rows]
        trained = train_discriminator(
            training, targets, generator, hidden=self.hidden, steps=self.discriminator_steps, batch_size=self.train_batch_size,
            lr=self.lr, stop_accuracy=self.stop_accuracy,
        )  # fmt: skip
        candidates = targets.nonzero().squeeze(1)  # the sampled unlabeled rows
        probability = unlabeled_probability(trained.model, training[candidates.to(training.device)])
        picks, values = highest_first(probability, rows[candidates], size)
        return picks, values, trained
