"""The ``torch-al`` command (also ``python -m torch_al``); every subcommand is built from a config dataclass.

    torch-al run --dataset fashion-mnist --strategy random entropy --imbalance 100 --rounds 10 --budget 125 --out DIR
    torch-al select --state S --data D --model M --strategy entropy --budget 125
    torchrun --nproc-per-node=N -m torch_al select ...   (each rank scores a shard; rank 0 writes and prints)
    torch-al label --state S --data D --labels answers.json
    torch-al status --state S
    torch-al discard --state S --data D
"""

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shlex
import sys
import types
import typing
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.utils.data import TensorDataset

from torch_al.checks import check_class_names
from torch_al.distributed import RankFailedError, distributed_select, load_pool, save_pool
from torch_al.experiment import RunConfig, is_ensemble, run_experiment
from torch_al.integrations.label_studio import LOCAL_FILES_URL, LabelStudioProject, export_tasks, import_answers
from torch_al.item_views import rescaled
from torch_al.nn.capture import check_tokens
from torch_al.persistence import StateFileError, load_state
from torch_al.pool import STATE_KIND, ActivePool
from torch_al.strategies import STRATEGIES, make_strategy, strategy_spec
from torch_al.strategies.base import SubBatch


@dataclass
class SelectConfig:
    """Select the next query for a pool of your own data (the query is saved before it is printed).
    While a query is pending it is re-issued as it was, with a notice on stderr: discard drops it."""

    state: str = field(metadata={"help": "pool state file (created when missing)"})
    data: str = field(metadata={"help": "torch.save'd Tensor[N, ...] of the pool's inputs"})
    model: str = field(metadata={"help": "the task model: a torch.export .pt2 file (dynamic batch dim), or TorchScript"})
    strategy: str = field(default="entropy", metadata={"help": f"one of {', '.join(STRATEGIES)}"})
    budget: int = field(default=125, metadata={"help": "items to select"})
    seed: int = field(default=0, metadata={"help": "seed of random / core-set picks and of BatchBALD's sampled configurations"})
    validation: str | None = field(default=None, metadata={"help": "torch.save'd (inputs Tensor[M, ...], labels int64 Tensor[M]), for pcc/pfk/eba"})
    layers: tuple[str, ...] | None = field(default=None, metadata={"help": "descriptor layers (module names of the model), for pcc/pfk/eba"})
    tokens: str | None = field(default=None, metadata={"help": "the layers give (B, T, C) token sequences (a transformer's): mean pools the tokens, first takes the class token; for pcc/pfk/eba"})

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {tuple(STRATEGIES)}, got {self.strategy!r}")
        if self.budget < 1:
            raise ValueError(f"budget must be >= 1, got {self.budget}")
        if is_ensemble(self.strategy):
            raise ValueError(
                f"strategy {self.strategy} scores a committee of E separately trained models and select takes one --model: "
                "use torch-al run --members E, or ActiveLearningLoop with a Committee"
            )
        matches = strategy_spec(self.strategy).matches_validation
        if matches and not (self.validation and self.layers):
            raise ValueError(f"strategy {self.strategy} matches the pool to a labeled validation set: pass --validation FILE and --layers NAME ...")
        if not matches and (self.validation or self.layers or self.tokens):
            raise ValueError(f"--validation, --layers and --tokens are options of pcc/pfk/eba; strategy {self.strategy} takes none of them")
        check_tokens(self.tokens)


@dataclass
class LabelConfig:
    """Record annotations: a JSON object {"global index": label, ...}."""

    state: str = field(metadata={"help": "pool state file"})
    data: str = field(metadata={"help": "the pool's inputs (checked against the state's fingerprint)"})
    labels: str = field(metadata={"help": "JSON file mapping global index to integer label"})
    relabel: bool = field(default=False, metadata={"help": "allow changing existing labels"})


@dataclass
class DiscardConfig:
    """Drop the pending query, so that the next select chooses anew (labels already given for it stay labeled)."""

    state: str = field(metadata={"help": "pool state file"})
    data: str = field(metadata={"help": "the pool's inputs (checked against the state's fingerprint)"})


@dataclass
class PoolItems:
    """The options of every command that records answers given by class name."""

    state: str = field(metadata={"help": "pool state file (with a pending query: torch-al select)"})
    data: str = field(metadata={"help": "the pool's inputs (checked against the state's fingerprint)"})
    classes: tuple[str, ...] | None = field(default=None, metadata={"help": "class names, label k being the k-th; recorded in the state the first time, checked after"})

    def __post_init__(self) -> None:
        if self.classes is not None:
            check_class_names(self.classes)


@dataclass
class ShownItems(PoolItems):
    """The options of every command that shows a pool's items to people."""

    rescale: bool = field(default=False, metadata={"help": "show each image scaled by its own min and max (for normalised inputs)"})


@dataclass(kw_only=True)
class ExportConfig(ShownItems):
    """Write the pending query's unlabeled items as Label Studio tasks (OUT) and its labeling config (OUT with .xml)."""

    out: str = field(metadata={"help": "the tasks' JSON file; the labeling config goes beside it (.xml)"})
    format: str = field(default="label-studio", metadata={"help": "label-studio (the only format so far)"})
    image_dir: str | None = field(default=None, metadata={"help": "write the images here and refer to them by --image-url (default: inline data URLs)"})
    image_url: str = field(default=LOCAL_FILES_URL, metadata={"help": "with --image-dir: an image's URL, {file} its file name, {folder} the folder's name, {index} the item's index"})

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_format(self.format)


@dataclass(kw_only=True)
class ImportConfig(PoolItems):
    """Record the answers of a Label Studio JSON export (all checked first: any fault records nothing)."""

    file: str = field(metadata={"help": "Label Studio's JSON export (Export → JSON)"})
    format: str = field(default="label-studio", metadata={"help": "label-studio (the only format so far)"})
    relabel: bool = field(default=False, metadata={"help": "record answers that differ from the ledger as corrections"})

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_format(self.format)


@dataclass
class AnnotateConfig(ShownItems):
    """Serve a labeling page for the pending query (127.0.0.1 by default; any other address needs the printed token).
    With --model and --strategy, the next sub-batch of a strategy that asks within its round is chosen when one is answered."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to serve on; any but loopback asks for a token"})
    port: int = field(default=8765, metadata={"help": "port (0: any free one; the URL is printed)"})
    token: str | None = field(default=None, metadata={"help": "the page's token (default: made up when the address is not loopback)"})
    model: str | None = field(default=None, metadata={"help": "the task model, to choose the next sub-batch (as select's --model)"})
    strategy: str | None = field(default=None, metadata={"help": "with --model: the strategy (as select's --strategy)"})
    budget: int = field(default=125, metadata={"help": "with --model: the round's budget (as select's --budget)"})
    seed: int = field(default=0, metadata={"help": "with --model: as select's --seed"})
    validation: str | None = field(default=None, metadata={"help": "with --model: as select's --validation (pfk-direct)"})
    layers: tuple[str, ...] | None = field(default=None, metadata={"help": "with --model: as select's --layers (pfk-direct)"})
    tokens: str | None = field(default=None, metadata={"help": "with --model: as select's --tokens (pfk-direct)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.model is None) != (self.strategy is None):
            raise ValueError("--model and --strategy go together: both choose the next sub-batch of a round asked in parts")
        if self.model is None and (self.validation or self.layers or self.tokens):
            raise ValueError("--validation, --layers and --tokens choose sub-batches with --model and --strategy; give those too")
        if self.model is not None:
            self.select_config()

    def select_config(self) -> "SelectConfig":
        chosen = {name: getattr(self, name) for name in ("model", "strategy", "budget", "seed", "validation", "layers", "tokens")}
        return SelectConfig(state=self.state, data=self.data, **chosen)


@dataclass(kw_only=True)
class PushConfig(ShownItems):
    """Send the pending query's unlabeled items to a Label Studio project (created with the classes when missing;
    items it holds already are not sent twice). The token comes from $LABEL_STUDIO_API_KEY."""

    url: str = field(metadata={"help": "the Label Studio server, e.g. http://127.0.0.1:8080"})
    project: str = field(metadata={"help": "the project's title"})


@dataclass(kw_only=True)
class PullConfig(PoolItems):
    """Record a Label Studio project's answers (all checked first: any fault records nothing; pulling again records nothing twice).
    The token comes from $LABEL_STUDIO_API_KEY."""

    url: str = field(metadata={"help": "the Label Studio server, e.g. http://127.0.0.1:8080"})
    project: str = field(metadata={"help": "the project's title"})
    relabel: bool = field(default=False, metadata={"help": "record answers that differ from the ledger as corrections"})


def _check_format(name: str) -> None:
    if name != "label-studio":
        raise ValueError(f"--format must be label-studio, got {name!r}")


@dataclass
class StatusConfig:
    """Summarise a pool state file (no dataset needed)."""

    state: str = field(metadata={"help": "pool state file"})


def add_config_arguments(parser: argparse.ArgumentParser, config: type) -> None:
    """One ``--option`` per dataclass field, typed from its annotation, helped by its metadata."""
    hints = typing.get_type_hints(config)
    for item in dataclasses.fields(config):
        kind = hints[item.name]
        if isinstance(kind, types.UnionType):  # X | None: an optional X
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        options: dict = {"help": item.metadata.get("help", "")}
        if item.default is dataclasses.MISSING:
            options["required"] = True
        else:
            options["default"] = item.default
            options["help"] += f" (default: {item.default})"
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            options.update(nargs="+", type=typing.get_args(kind)[0])
        else:
            options["type"] = kind
        parser.add_argument("--" + item.name.replace("_", "-"), dest=item.name, **options)


def _pool_for(data_path: str) -> ActivePool:
    inputs = torch.load(data_path, weights_only=True)
    if not isinstance(inputs, torch.Tensor):
        raise ValueError(f"{data_path} must hold one Tensor[N, ...] of inputs, got {type(inputs).__name__}")
    return ActivePool(TensorDataset(inputs), target_key=None)


def _load_model(path: str) -> torch.nn.Module:
    """A torch.export .pt2 file, unflattened so its submodules keep their names (the descriptor
    layers of pcc/pfk/eba hook them), or a TorchScript file."""
    if path.endswith(".pt2"):
        return torch.export.unflatten(torch.export.load(path))
    return torch.jit.load(path, map_location="cpu")


def _load_validation(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    saved = torch.load(path, weights_only=True)
    if not (isinstance(saved, (tuple, list)) and len(saved) == 2 and all(isinstance(t, torch.Tensor) for t in saved)):
        raise ValueError(f"{path} must hold (inputs Tensor[M, ...], labels int64 Tensor[M]), got {type(saved).__name__}")
    return saved[0], saved[1]


def _same_strategy(recorded: str | None, requested: str) -> bool:
    """Whether the recorded strategy is the CLI name ``requested``: select records CLI names, the
    loop and the Lightning callback record class names (``Entropy`` is ``entropy``)."""
    return recorded is not None and recorded in (requested, getattr(STRATEGIES[requested], "__name__", None))


def _pending_summary(pool: ActivePool) -> str:
    """'round R: N items (K already labeled), chosen by S with budget N' for the pending query."""
    query = pool.pending_query
    labeled = int(pool.labeled_mask[query].sum())
    strategy = pool.pending_strategy or "a strategy that was not recorded"  # None: e.g. a state saved by an older torch_al
    return f"round {pool.round + 1}: {query.numel()} items ({labeled} already labeled), chosen by {strategy} with budget {query.numel()}"


def command_run(config: RunConfig) -> None:
    results = run_experiment(config)
    names = list(results)
    print("accuracy per round (labels: " + ", ".join(names) + ")")
    for row in zip(*(results[name] for name in names)):
        cells = "  ".join(f"{name} {record['accuracy']:.4f} (minority {record['minority_accuracy']:.4f})" for name, record in zip(names, row))
        print(f"round {row[0]['round']:2d}  labels {row[0]['labeled']:5d}  {cells}")
    print(f"wrote {os.path.join(config.out, 'metrics.json')}, metrics.csv and learning_curve.png")


def command_select(config: SelectConfig) -> None:
    with _torchrun_group() as distributed:
        _select(config, distributed)


@contextlib.contextmanager
def _torchrun_group():
    """Under ``torchrun`` with more than one process: a gloo process group for the command (yields
    True); otherwise nothing (False)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield False
        return
    dist.init_process_group("gloo")
    try:
        yield True
        dist.barrier()  # no rank closes its connections while another still uses them (gloo aborts that one)
    finally:
        dist.destroy_process_group()


def _select(config: SelectConfig, distributed: bool) -> None:
    """Every rank loads the same state and scores its shard; rank 0 alone writes and prints."""
    speaks = not distributed or dist.get_rank() == 0
    pool = _pool_for(config.data)
    if os.path.exists(config.state) and distributed:
        load_pool(pool, config.state)
    elif os.path.exists(config.state):
        pool.load(config.state)
    if pool.pending_query is None:
        strategy, model = _strategy_and_model(config)
        if distributed:
            asked = SubBatch(distributed_select(strategy, model, pool, config.budget), None, True)
        else:  # one query, or the next sub-batch of a round asked in parts (the same model each time)
            asked = strategy.next_sub_batch(model, pool, config.budget)
        pool.propose(asked.indices, asked.scores, strategy=config.strategy, final=asked.final)
        if distributed:
            save_pool(pool, config.state)
        else:
            pool.save(config.state)
    elif speaks:  # re-issue it: stdout stays the JSON line, the notice goes to stderr
        print(f"torch-al select: re-issuing the pending query for {_pending_summary(pool)}", file=sys.stderr)
        differs = []
        if not _same_strategy(pool.pending_strategy, config.strategy):
            differs.append(f"--strategy {config.strategy}")
        if pool.pending_final and not pool.open_round and config.budget != pool.pending_query.numel():
            differs.append(f"--budget {config.budget}")
        if differs:
            request = " ".join(differs)
            print(f"torch-al select: your request ({request}) was NOT applied: a pending query is re-issued until it is labeled or discarded", file=sys.stderr)
        discard = f"torch-al discard --state {shlex.quote(config.state)} --data {shlex.quote(config.data)}"
        print(f"torch-al select: `{discard}` drops it (labels already given stay); then select again", file=sys.stderr)
    if speaks:
        print(json.dumps({"round": pool.round + 1, "query": pool.pending_query.tolist(), "final": pool.pending_final}))


def _strategy_and_model(config: SelectConfig):
    options = {"validation": _load_validation(config.validation), "layers": config.layers, "tokens": config.tokens} if config.validation else {}
    return make_strategy(config.strategy, seed=config.seed, progress=False, **options), _load_model(config.model)


def command_label(config: LabelConfig) -> None:
    pool = _pool_for(config.data).load(config.state)
    with open(config.labels) as f:
        answers = json.load(f)
    if not isinstance(answers, dict):
        raise ValueError(f"{config.labels} must hold a JSON object {{index: label}}")
    pool.label([int(k) for k in answers], list(answers.values()), relabel=config.relabel)
    pool.save(config.state)
    print(f"{len(answers)} labels recorded; {pool!r}")


def command_discard(config: DiscardConfig) -> None:
    pool = _pool_for(config.data).load(config.state)
    if pool.pending_query is None:
        print(f"no pending query in {config.state}: nothing to discard (file not modified)")
        return
    summary = _pending_summary(pool)
    pool.discard_query()
    pool.save(config.state)
    print(f"discarded the pending query for {summary}; labels already given stay in the ledger; {pool!r}")


def _named_pool(config: PoolItems) -> ActivePool:
    """The pool of ``config.state`` with its class names: recorded from ``--classes`` the first
    time (and saved), checked against them after."""
    pool = _pool_for(config.data).load(config.state)
    if config.classes is not None:
        recorded = pool.classes is not None
        pool.set_classes(config.classes)
        if not recorded:
            pool.save(config.state)
    elif pool.classes is None:
        raise ValueError(f"{config.state} names no classes yet: pass --classes NAME ... (label k is the k-th name)")
    return pool


def _render(config: ShownItems):
    return rescaled if config.rescale else None


def command_export(config: ExportConfig) -> None:
    pool = _named_pool(config)
    layout = export_tasks(pool, config.out, _render(config), config.image_dir, config.image_url)
    asked = int((~pool.labeled_mask[pool.pending_query]).sum())
    print(f"wrote {asked} Label Studio tasks for round {pool.round + 1} to {config.out} and the labeling config to {layout}")


def _print_answers(answers, pool: ActivePool) -> None:
    print(f"{answers.indices.numel()} labels recorded ({answers.recorded_before} already in the ledger, {answers.unanswered} tasks not answered yet); {pool!r}")


def command_import(config: ImportConfig) -> None:
    pool = _named_pool(config)
    with open(config.file) as f:
        tasks = json.load(f)
    answers = import_answers(pool, tasks, config.state, config.relabel)
    _print_answers(answers, pool)


def command_push(config: PushConfig) -> None:
    pool = _named_pool(config)
    sent = LabelStudioProject(config.url, config.project).push(pool, _render(config))
    print(f"sent {sent} tasks of round {pool.round + 1} to Label Studio project {config.project!r} at {config.url}")


def command_pull(config: PullConfig) -> None:
    pool = _named_pool(config)
    answers = LabelStudioProject(config.url, config.project).pull(pool, config.state, config.relabel)
    _print_answers(answers, pool)


def command_annotate(config: AnnotateConfig) -> None:
    from torch_al.labeling_page import LabelingServer, LabelingSession

    pool = _named_pool(config)
    next_sub_batch = None
    if config.model is not None:
        strategy, model = _strategy_and_model(config.select_config())
        next_sub_batch = lambda pool: strategy.next_sub_batch(model, pool, config.budget)  # noqa: E731
    session = LabelingSession(pool, config.state, _render(config), next_sub_batch, config.strategy)
    server = LabelingServer(session, config.host, config.port, config.token)
    print(f"labeling page: {server.url}  (Ctrl-C stops it; every answer is saved to {config.state} as it is given)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def command_status(config: StatusConfig) -> None:
    state = load_state(config.state, STATE_KIND)
    meta = json.loads(state["meta"])
    index, label = state["ledger_index"], state["ledger_label"]
    current = dict(zip(index.tolist(), label.tolist()))  # later rows (relabels) win
    counts = torch.bincount(torch.tensor(list(current.values()), dtype=torch.int64)).tolist() if current else []
    print(f"dataset: {meta['fingerprint']['size']} items (sample hash {meta['fingerprint']['sample_sha256']})")
    print(f"round {meta['round']}: {len(current)} labeled, {meta['fingerprint']['size'] - len(current)} unlabeled, {index.numel()} ledger rows")
    print(f"labels per class: {counts}" + (f" (classes {', '.join(meta['classes'])})" if meta.get("classes") else ""))
    pending = state["pending_indices"]
    if pending.numel():
        strategy = meta.get("pending_strategy")  # None: not recorded (schema version 1)
        answered = sum(1 for i in pending.tolist() if i in current)
        chosen = strategy or "a strategy that was not recorded"
        print(f"pending query for round {meta['pending_round']}: {pending.numel()} items ({answered} already labeled), chosen by {chosen}")
    else:
        print("no pending query")
    sizes = state.get("open_round_sizes", torch.empty(0, dtype=torch.int64))
    if pending.numel() and meta.get("pending_final") is False or sizes.numel():
        print(f"round {meta['round'] + 1} is asked in sub-batches: {sizes.numel()} answered so far ({int(sizes.sum())} items); `select` continues it")


COMMANDS = {
    "run": (RunConfig, command_run, "simulate an experiment on a labeled dataset; writes metrics and a learning curve"),
    "select": (SelectConfig, command_select, "select (or re-issue) the next query for your own pool"),
    "label": (LabelConfig, command_label, "record annotations for a pool"),
    "status": (StatusConfig, command_status, "summarise a pool state file"),
    "discard": (DiscardConfig, command_discard, "drop the pending query of a pool (labels already given stay)"),
    "annotate": (AnnotateConfig, command_annotate, "serve a labeling page in the browser for the pending query"),
    "export": (ExportConfig, command_export, "write the pending query as Label Studio tasks"),
    "import": (ImportConfig, command_import, "record the answers of a Label Studio JSON export"),
    "push": (PushConfig, command_push, "send the pending query to a running Label Studio project"),
    "pull": (PullConfig, command_pull, "record the answers of a running Label Studio project"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torch-al", description="Deep active learning with torch_al.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each round (logger 'torch_al')")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is often fastest for small models on busy machines)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (config, _, help_text) in COMMANDS.items():
        add_config_arguments(commands.add_parser(name, help=help_text, description=config.__doc__), config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    name, verbose, threads = args.pop("command"), args.pop("verbose"), args.pop("threads")
    config_type, command, _ = COMMANDS[name]
    try:
        config = config_type(**args)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    if threads:
        torch.set_num_threads(threads)
    try:
        command(config)
    except (ValueError, TypeError, KeyError, IndexError, FileNotFoundError, StateFileError, RankFailedError) as error:
        print(f"torch-al {name}: error: {error}", file=sys.stderr)
        return 1
    return 0
