"""Simulated experiments of the papers: a dataset, a pool made imbalanced, one loop per strategy.

``torch-al run`` is :func:`run_experiment` on a :class:`RunConfig`.
"""

import csv
import io
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from torch_al.checks import output_logits
from torch_al.datasets import as_float_images, balanced_split, imbalance, load_digits, load_fashion_mnist, make_blobs
from torch_al.embeddings import last_linear
from torch_al.generated_items_pool import TrainingSet
from torch_al.loop import ActiveLearningLoop
from torch_al.models import LeNet, SmallResNet, tiny_vit
from torch_al.nn.capture import TOKEN_POOLINGS
from torch_al.persistence import atomic_write_bytes, load_state, save_state
from torch_al.pool import ActivePool
from torch_al.provenance import code_version, config_hash, environment
from torch_al.sampler import ActiveSampler
from torch_al.seeding import derived_seed
from torch_al.strategies import STRATEGIES, Committee, Strategy
from torch_al.strategies.registry import REGISTRY, make_strategy, strategy_spec

logger = logging.getLogger("torch_al")

DATASETS = ("fashion-mnist", "digits", "synthetic")
MODELS = ("auto", "lenet", "resnet", "mlp", "vit")
MINORITY = (5, 6, 7, 8, 9)
RARE_CLASSES = ("5-9", "drawn")
TRAINED_PARTS = ("all", "head")
PRETRAINED = "+rotation"
# The suffixes that start a strategy from a self-supervised model, and the pretraining each names.
PRETRAININGS = {PRETRAINED: "rotation", "+simclr": "simclr"}
SUFFIXES = " or ".join(map(repr, PRETRAININGS))


def pretraining_of(name: str) -> str | None:
    """``"pfk+simclr"`` → ``"simclr"``; None for a strategy that starts from random weights."""
    return next((method for suffix, method in PRETRAININGS.items() if name.endswith(suffix)), None)


def base_strategy(name: str) -> str:
    """``"pfk+rotation"`` → ``"pfk"``: the suffix only changes the initial model."""
    for suffix in PRETRAININGS:
        name = name.removesuffix(suffix)
    return name


def strategy_options(config: "RunConfig", name: str) -> dict:
    """The ``config`` fields that configure strategy ``name`` (its registry entry's
    ``run_options``), by constructor parameter."""
    return {parameter: getattr(config, field) for field, parameter in strategy_spec(base_strategy(name)).run_options.items()}


def is_ensemble(name: str) -> bool:
    """Whether the strategy scores a committee of ``members`` models (``ensemble-*``, ``qbc-*``)."""
    spec = REGISTRY.get(base_strategy(name))
    return spec is not None and spec.committee


@dataclass
class RunConfig:
    """A simulated active-learning experiment (the oracle is the dataset's own labels)."""

    dataset: str = field(default="fashion-mnist", metadata={"help": f"one of {', '.join(DATASETS)}"})
    strategy: tuple[str, ...] = field(
        default=("random", "entropy"),
        metadata={"help": f"one or more of {', '.join(STRATEGIES)}; NAME+rotation and NAME+simclr start that strategy from rotation or SimCLR pretraining"},
    )
    imbalance: float = field(default=1.0, metadata={"help": "r: the pool's common vs rare classes in ratio r (1 = balanced)"})
    rare_classes: str = field(default="5-9", metadata={"help": "which half of the classes is rare: 5-9, or drawn (a half drawn per seed)"})
    rounds: int = field(default=10, metadata={"help": "selection rounds"})
    budget: int = field(default=125, metadata={"help": "labels bought per round"})
    initial: int = field(default=0, metadata={"help": "random labels before round 1 (the papers start from 0)"})
    epochs: int = field(default=50, metadata={"help": "training epochs per round (lr x0.1 every 15, stretched in proportion when min_steps raises them)"})
    min_steps: int = field(default=0, metadata={"help": "at least this many SGD steps per round: the epochs are raised to reach it (a few labels make one batch an epoch)"})
    evaluate_on: str = field(default="test", metadata={"help": "where accuracy is measured: test, or validation (the balanced held-out labeled set: settings are chosen there)"})
    train: str = field(default="all", metadata={"help": "what trains: all (the whole model) or head (the last nn.Linear alone; the backbone, e.g. self-supervised, stays frozen in eval mode)"})
    batch_size: int = field(default=25, metadata={"help": "training batch size"})
    lr: float = field(default=0.05, metadata={"help": "SGD learning rate (momentum 0.5)"})
    model: str = field(default="auto", metadata={"help": f"one of {', '.join(MODELS)}; auto: lenet for images, mlp otherwise"})
    pretrain_epochs: int = field(default=8, metadata={"help": f"rotation pretraining epochs on the pool for NAME{PRETRAINED} strategies"})
    simclr_epochs: int = field(default=20, metadata={"help": "SimCLR pretraining epochs on the pool for NAME+simclr strategies (batches of 256 images)"})
    passes: int = field(default=128, metadata={"help": "T: MC-dropout passes (bald, variation-ratio, max-entropy, batchbald)"})
    members: int = field(default=5, metadata={"help": "E: independently trained models of the ensemble strategies (ensemble-*, qbc-vote-entropy)"})
    steps: int = field(default=128, metadata={"help": "K: integrated-gradient steps of eba's attention"})
    layers: tuple[str, ...] | None = field(default=None, metadata={"help": "descriptor layers of pcc/pfk/eba, feature layers of learning-loss (default: the model's, LeNet act1 act2 act3 = L 80)"})
    tokens: str | None = field(default=None, metadata={"help": "layers of pcc/pfk/eba/learning-loss give (B, T, C) tokens: mean pools them, first takes the class token (default: the model's)"})
    k: int = field(default=32, metadata={"help": "pool candidates kept per validation center (pcc, pfk, eba)"})
    delta0: float = field(default=0.005, metadata={"help": "ceal: entropy threshold of the pseudo-labels at the first selection (the paper's δ0)"})
    decay: float = field(default=0.00033, metadata={"help": "ceal: threshold decrease per completed round (the paper's dr)"})
    vaal_iterations: int = field(default=200, metadata={"help": "vaal, m2-*: training iterations of their VAE (M2) and discriminator per selection (each 2 VAE steps, 1 discriminator step)"})
    generator_iterations: int = field(default=300, metadata={"help": "bgadl: training steps of its VAE per selection (64 images each)"})
    sub_queries: int = field(default=10, metadata={"help": "dal: sub-queries per selection, the discriminator retrained before each (the paper's n)"})
    annotators: int = field(default=20, metadata={"help": "direct: labels asked at once in its threshold search (B1, people labeling in parallel)"})
    label_noise: float = field(default=0.0, metadata={"help": "fraction of the pool whose simulated answers are wrong (a seeded, fixed set: asked again, an item gets the same wrong class)"})
    shortlist: int | None = field(default=None, metadata={"help": "batchbald: run the greedy over this many unlabeled items of highest BALD score (default: all)"})
    pool_size: int | None = field(default=None, metadata={"help": "subsample the pool to this many items (quick runs)"})
    seed: int = field(default=0, metadata={"help": "seeds the splits, the model, training and selection"})
    device: str = field(default="cpu", metadata={"help": "torch device for training and scoring"})
    out: str = field(default="torch_al_run", metadata={"help": "output folder: metrics.json/csv, learning_curve.png, checkpoints"})
    pretrained_cache: str | None = field(default=None, metadata={"help": "folder keeping pretrained weights per (method, setup, seed), shared by runs that would pretrain the same model"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})

    def __post_init__(self) -> None:
        if isinstance(self.strategy, str):
            self.strategy = (self.strategy,)
        self.strategy = tuple(self.strategy)
        pretrained_ensembles = sorted({name.removeprefix(base_strategy(name)) for name in self.strategy if is_ensemble(name) and pretraining_of(name)})
        checks = [
            (self.dataset in DATASETS, f"dataset must be one of {DATASETS}, got {self.dataset!r}"),
            (bool(self.strategy) and all(base_strategy(s) in STRATEGIES for s in self.strategy), f"strategy must be among {tuple(STRATEGIES)} (optionally with {SUFFIXES}), got {self.strategy}"),
            (len(set(self.strategy)) == len(self.strategy), f"strategy lists a method twice: {self.strategy}"),
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
            (self.tokens in (None, *TOKEN_POOLINGS), f"tokens must be one of {TOKEN_POOLINGS} (or unset), got {self.tokens!r}"),
            (self.imbalance >= 1, f"imbalance must be >= 1, got {self.imbalance}"),
            (self.rare_classes in RARE_CLASSES, f"rare_classes must be one of {RARE_CLASSES}, got {self.rare_classes!r}"),
            (self.rounds >= 0, f"rounds must be >= 0, got {self.rounds}"),
            (self.budget >= 1, f"budget must be >= 1, got {self.budget}"),
            (self.initial >= 0, f"initial must be >= 0, got {self.initial}"),
            (self.epochs >= 1 and self.batch_size >= 1, f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}"),
            (min(self.pretrain_epochs, self.passes, self.steps, self.k) >= 1, "pretrain_epochs, passes, steps and k must be >= 1"),
            (type(self.members) is int and self.members >= 2, f"members must be an int >= 2 (E models of an ensemble), got {self.members!r}"),
            (not pretrained_ensembles,
             f"ensemble strategies start from E random initialisations; {'/'.join(pretrained_ensembles)} is not supported for them, got {self.strategy}"),
            (type(self.simclr_epochs) is int and self.simclr_epochs >= 1, f"simclr_epochs must be an int >= 1, got {self.simclr_epochs!r}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (type(self.min_steps) is int and self.min_steps >= 0, f"min_steps must be an int >= 0, got {self.min_steps!r}"),
            (self.evaluate_on in ("test", "validation"), f"evaluate_on must be test or validation, got {self.evaluate_on!r}"),
            (self.train in TRAINED_PARTS, f"train must be one of {TRAINED_PARTS}, got {self.train!r}"),
            (self.train == "all" or not any(map(is_ensemble, self.strategy)),
             f"train='head' trains one model's last nn.Linear; the ensemble strategies train E models, got {self.strategy}"),
            (type(self.vaal_iterations) is int and self.vaal_iterations >= 1, f"vaal_iterations must be an int >= 1, got {self.vaal_iterations!r}"),
            (self.delta0 >= 0 and self.decay >= 0, f"delta0 and decay must be >= 0, got {self.delta0}, {self.decay}"),
            (self.pool_size is None or self.pool_size >= 1, f"pool_size must be >= 1, got {self.pool_size}"),
            (type(self.sub_queries) is int and self.sub_queries >= 1, f"sub_queries must be an int >= 1, got {self.sub_queries!r}"),
            (type(self.annotators) is int and self.annotators >= 1, f"annotators must be an int >= 1, got {self.annotators!r}"),
            (0 <= self.label_noise < 1, f"label_noise must be in [0, 1), got {self.label_noise}"),
            (type(self.generator_iterations) is int and self.generator_iterations >= 1, f"generator_iterations must be an int >= 1, got {self.generator_iterations!r}"),
            (self.shortlist is None or type(self.shortlist) is int and self.shortlist >= self.budget, f"shortlist must be an int >= budget ({self.budget}), got {self.shortlist!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class Splits:
    pool: TensorDataset  # inputs, labels: the oracle's answers
    test: tuple[Tensor, Tensor]
    validation: tuple[Tensor, Tensor]  # balanced; for methods that look at the test distribution (PFK)
    rare: tuple[int, ...]  # the classes the pool holds fewer of


def load_splits(config: RunConfig) -> Splits:
    """Pool (imbalanced by ``config.imbalance``), balanced validation and balanced test sets."""
    if config.dataset == "fashion-mnist":
        train_x, train_y = load_fashion_mnist("train")
        test_x, test_y = load_fashion_mnist("test")
        train_x, test_x = as_float_images(train_x), as_float_images(test_x)
        validation, pool = balanced_split(train_y, 10000, seed=config.seed)
    else:
        x, y = load_digits() if config.dataset == "digits" else make_blobs(3000, seed=config.seed)
        test, rest = balanced_split(y, 300 if config.dataset == "digits" else 500, seed=config.seed)
        test_x, test_y, train_x, train_y = x[test], y[test], x[rest], y[rest]
        validation, pool = balanced_split(train_y, test.numel(), seed=derived_seed(config.seed, "validation"))
    rare = rare_classes(config, int(train_y.max()) + 1)
    pool = imbalance(train_y, pool, config.imbalance, rare, seed=config.seed)
    if config.pool_size is not None and config.pool_size < pool.numel():
        generator = torch.Generator().manual_seed(derived_seed(config.seed, "pool_size"))
        pool = pool[torch.randperm(pool.numel(), generator=generator)[: config.pool_size]].sort().values
    logger.info("pool of %d items (%d of the rare classes %s)", pool.numel(), int(torch.isin(train_y[pool], torch.tensor(rare)).sum()), rare)
    return Splits(TensorDataset(train_x[pool], train_y[pool]), (test_x, test_y), (train_x[validation], train_y[validation]), rare)


def rare_classes(config: RunConfig, num_classes: int = 10) -> tuple[int, ...]:
    """The pool's rare half of the classes: 5..9, or for ``rare_classes="drawn"`` a half drawn
    from the run's seed (each seed its own split)."""
    if config.rare_classes == "5-9":
        return MINORITY
    generator = torch.Generator().manual_seed(derived_seed(config.seed, "rare classes"))
    return tuple(sorted(torch.randperm(num_classes, generator=generator)[: num_classes // 2].tolist()))


def make_model(config: RunConfig, sample: Tensor, num_classes: int = 10) -> nn.Module:
    kind = config.model if config.model != "auto" else ("lenet" if sample.dim() == 3 else "mlp")
    if kind == "lenet":
        return LeNet(sample.shape[0], num_classes)
    if kind == "resnet":
        return SmallResNet(sample.shape[0], num_classes)
    if kind == "vit":
        return tiny_vit(sample.shape[0], sample.shape[-1], num_classes)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(sample.numel(), 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, num_classes))
    mlp.descriptor_layers = ("2",)  # the hidden ReLU, for the matching strategies
    return mlp


def round_epochs(config: RunConfig, batches_per_epoch: int) -> int:
    """``config.epochs``, raised so that the round makes at least ``config.min_steps`` SGD steps."""
    return max(config.epochs, math.ceil(config.min_steps / max(batches_per_epoch, 1)))


def make_trainer(config: RunConfig, strategy: Strategy, member_order: bool = False):
    """The papers' recipe: SGD (momentum 0.5), lr × 0.1 every 15 epochs (stretched in proportion
    when ``min_steps`` raises the epochs of a round with few labels), fine-tuned across rounds,
    minimising ``strategy.training_loss`` (cross entropy, or for learning loss the joint objective,
    with the module's parameters in the same optimiser).
    On whatever the loop gives: the pool, for CEAL the pool plus its pseudo-labels, for BGADL the
    pool plus its generated items (``strategy.training_set``). With
    ``member_order`` (committees) each call shuffles with a seed drawn from torch's global RNG,
    which the loop seeds per (round, member): every member sees its own mini-batch order, as in
    Beluch et al.; otherwise every round shuffles from ``config.seed``. With ``config.train ==
    "head"`` only the last ``nn.Linear`` trains; the rest stays frozen in eval mode (a frozen
    pretrained backbone with a linear head: the self-supervised-embedding setting of the
    low-budget papers)."""

    def train(model: nn.Module, pool: TrainingSet, round_: int) -> None:
        if pool.labeled_indices.numel() == 0:
            return  # round 0 of the papers: the initial (random or pretrained) model selects
        sampler = ActiveSampler(pool, seed=int(torch.randint(2**62, ())) if member_order else config.seed)
        loader = DataLoader(pool, sampler=sampler, batch_size=config.batch_size)
        extra = strategy.extra_parameters(model, pool[int(pool.labeled_indices[0])][0].unsqueeze(0))
        trained = model if config.train == "all" else last_linear(model, "train='head'")
        optimizer = torch.optim.SGD([*trained.parameters(), *extra], lr=config.lr, momentum=0.5)
        epochs = round_epochs(config, len(loader))
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, round(15 * epochs / config.epochs)), gamma=0.1)
        model.train(config.train == "all")
        trained.train()
        for epoch in tqdm(range(epochs), desc=f"train round {round_}", leave=False, disable=not config.progress):
            sampler.set_epoch(epoch)
            for x, y in loader:
                optimizer.zero_grad()
                strategy.training_loss(model, x.to(config.device), y.to(config.device), epoch, config.epochs).backward()
                optimizer.step()
            schedule.step()

    return train


def make_evaluator(config: RunConfig, test: tuple[Tensor, Tensor], pool: ActivePool, rare: tuple[int, ...]):
    @torch.no_grad()
    def evaluate(model: nn.Module) -> dict[str, float]:
        model.eval()
        x, y = test
        predicted = torch.cat([output_logits(model(chunk.to(config.device))).argmax(1).cpu() for chunk in x.split(1000)])
        correct = predicted == y
        minority = torch.isin(y, torch.tensor(rare))
        labeled = pool.labels_of(pool.labeled_indices)
        return {
            "accuracy": round(correct.float().mean().item(), 4),
            "minority_accuracy": round(correct[minority].float().mean().item(), 4),
            "labeled_minority": int(torch.isin(labeled, torch.tensor(rare)).sum()),
        }

    return evaluate


def run_experiment(config: RunConfig) -> dict[str, list[dict]]:
    """Runs every strategy of the config on the same splits and initial model (for the ensemble
    strategies, a :class:`Committee` of ``config.members`` independently initialised models, whose
    test accuracy is that of their mean-probability prediction); writes
    ``metrics.json``, ``metrics.csv`` and ``learning_curve.png`` to ``config.out``. Each strategy
    checkpoints into ``out/<strategy>/``, so running the same command again resumes."""
    splits = load_splits(config)
    results: dict[str, list[dict]] = {}
    pretrained: dict[str, dict[str, Tensor]] = {}
    for name in config.strategy:
        sample = splits.pool.tensors[0][0]
        if is_ensemble(name):  # E members, member e initialised from (derived_seed(seed, "model"), "member", e)
            model = Committee.build(lambda: make_model(config, sample), config.members, seed=derived_seed(config.seed, "model")).to(config.device)
        else:
            torch.manual_seed(derived_seed(config.seed, "model"))
            model = make_model(config, sample).to(config.device)
        checkpoint_dir = os.path.join(config.out, name)
        record_provenance(config, name, checkpoint_dir)
        method = pretraining_of(name)
        if method is not None and not os.path.exists(os.path.join(checkpoint_dir, "state.pt")):
            if method not in pretrained:
                pretrained[method] = cached_pretraining(config, model, splits.pool.tensors[0], method)
            model.load_state_dict(pretrained[method])
        pool = ActivePool(splits.pool)
        strategy = make_strategy(base_strategy(name), seed=config.seed, progress=config.progress, validation=splits.validation, **strategy_options(config, name))
        scored_on = splits.test if config.evaluate_on == "test" else splits.validation
        loop = ActiveLearningLoop(
            pool, strategy, model, make_trainer(config, strategy, member_order=is_ensemble(name)), config.budget, config.rounds,
            evaluate=make_evaluator(config, scored_on, pool, splits.rare), oracle=noisy_oracle(splits.pool.tensors[1], config.label_noise, config.seed), initial=config.initial,
            checkpoint_dir=checkpoint_dir, seed=config.seed, progress=config.progress,
        )  # fmt: skip
        results[name] = loop.run()
        record_provenance(config, name, checkpoint_dir, finished=True)
    write_results(config, results)
    return results


def noisy_oracle(labels: Tensor, noise: float, seed: int):
    """The simulated annotators: the pool's labels, but a seeded ``noise`` fraction of items
    answered with another class drawn uniformly (fixed per item, so asking again changes nothing)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, "label noise"))
    classes = max(int(labels.max()) + 1, 2)
    wrong = torch.rand(labels.numel(), generator=generator) < noise
    other = (labels + torch.randint(1, classes, (labels.numel(),), generator=generator)) % classes
    answers = torch.where(wrong, other, labels)
    return lambda indices: answers[torch.as_tensor(indices, dtype=torch.int64)]


# Fields that name a run rather than change what it computes.
_NOT_SETUP = ("strategy", "seed", "out", "progress", "pretrained_cache")
# Fields added after runs were recorded: hashed only when set, so those runs keep their setup.
_HASHED_WHEN_SET = {"annotators": 20, "label_noise": 0.0, "rare_classes": "5-9", "simclr_epochs": 20, "min_steps": 0, "train": "all", "evaluate_on": "test", "tokens": None}


def setup_hash(config: RunConfig) -> str:
    """The hash of everything that decides an experiment's numbers but the strategy and the
    seed: its options, torch's thread count and the software (float results depend on both).
    Lines and seeds of one experiment share it; a summary of lines of different setups is a
    summary of different experiments."""
    setup = {
        key: value for key, value in asdict(config).items() if key not in _NOT_SETUP and not (key in _HASHED_WHEN_SET and value == _HASHED_WHEN_SET[key])
    }
    return hash_with_software(setup)


def hash_with_software(settings: dict) -> str:
    """The hash of ``settings`` with torch's version and thread count, on which float results depend."""
    environment_ = environment()
    return config_hash({**settings, "torch_threads": environment_["torch_threads"], "torch": environment_["torch"]})


def record_provenance(config: RunConfig, name: str, checkpoint_dir: str, finished: bool = False) -> dict:
    """Writes ``checkpoint_dir/run.json``: the line (strategy, seed), the configuration and its
    :func:`setup_hash`, the software, and every code version (:func:`code_version`) that worked on
    the run, in order (a run resumed by other code lists two: it is no one commit's result).

    Raises:
        ValueError: the folder holds a run of another strategy, seed or setup (resuming it would
            mix two experiments).
    """
    path = os.path.join(checkpoint_dir, "run.json")
    line = {"strategy": name, "seed": config.seed, "setup_hash": setup_hash(config)}
    record = {**line, "config": asdict(config), "environment": environment(), "code": [], "finished": None}
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
        if {key: record.get(key) for key in line} != line:
            raise ValueError(f"{checkpoint_dir} holds a run of {({key: record.get(key) for key in line})}, not of {line}: use another --out")
    code = code_version()
    if code not in record["code"]:
        record["code"].append(code)
    if finished and record["finished"] is None:
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    os.makedirs(checkpoint_dir, exist_ok=True)
    atomic_write_bytes(path, json.dumps(record, indent=1).encode())
    return record


PRETRAINED_KIND = "torch_al.pretrained_model"
# What pretrained weights depend on besides the seed: the pool, the model and the pretraining.
PRETRAINING_SETUP = ("dataset", "imbalance", "rare_classes", "pool_size", "model", "pretrain_epochs", "simclr_epochs", "lr", "device")


def cached_pretraining(config: RunConfig, model: nn.Module, images: Tensor, method: str) -> dict[str, Tensor]:
    """:func:`pretrain`'s weights, read from ``config.pretrained_cache`` when a run with the same
    pool, model, pretraining options and seed already made them there (written atomically,
    checksummed), else made and kept: runs that differ only in what follows pretraining (the
    budget, the training recipe, where accuracy is measured) share them."""
    if config.pretrained_cache is None:
        return pretrain(config, model, images, method)
    key = hash_with_software({key: value for key, value in asdict(config).items() if key in PRETRAINING_SETUP})
    path = os.path.join(config.pretrained_cache, f"{method}-{key}-seed{config.seed}.pt")
    if os.path.exists(path):
        state = load_state(path, PRETRAINED_KIND)
        logger.info("%s pretraining: read from %s", method, path)
        return {key: value for key, value in state.items() if isinstance(value, Tensor)}
    weights = pretrain(config, model, images, method)
    os.makedirs(config.pretrained_cache, exist_ok=True)
    save_state(path, weights, PRETRAINED_KIND)
    return weights


def pretrain(config: RunConfig, model: nn.Module, images: Tensor, method: str) -> dict[str, Tensor]:
    """Weights of ``model`` pretrained in place by ``method`` ("rotation" or "simclr") on the
    pool's images, once per run and method: every strategy of that suffix starts from the same model."""
    from torch_al.pretraining import rotation_pretrain, simclr_pretrain

    start = time.perf_counter()
    if method == "rotation":
        epochs = config.pretrain_epochs
        rotation_pretrain(model, images, epochs, lr=config.lr, seed=config.seed, progress=config.progress)
    else:
        epochs = config.simclr_epochs
        simclr_pretrain(model, images, epochs, seed=config.seed, progress=config.progress)
    logger.info("%s pretraining: %d epochs on %d images in %.1f s", method, epochs, images.shape[0], time.perf_counter() - start)
    return {key: value.clone() for key, value in model.state_dict().items()}


def write_results(config: RunConfig, results: dict[str, list[dict]]) -> None:
    from torch_al.plots import learning_curve

    os.makedirs(config.out, exist_ok=True)
    provenance = {"code": code_version(), "environment": environment(), "setup_hash": setup_hash(config)}
    atomic_write_bytes(os.path.join(config.out, "metrics.json"), json.dumps({"config": asdict(config), **provenance, "results": results}, indent=1).encode())
    rows = [{"strategy": name, **record} for name, records in results.items() for record in records]
    text = io.StringIO()
    # Every key of every row, in first-seen order: strategies add their own (CEAL: pseudo_labeled).
    fieldnames = list(dict.fromkeys(key for row in rows for key in row)) or ["strategy"]
    writer = csv.DictWriter(text, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(os.path.join(config.out, "metrics.csv"), text.getvalue().encode())
    title = f"{config.dataset}, imbalance {config.imbalance:g}, budget {config.budget}/round, seed {config.seed}"
    learning_curve(results, title=title).savefig(os.path.join(config.out, "learning_curve.png"), dpi=120)
