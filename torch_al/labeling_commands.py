"""The commands that put a pool's pending query before people and record their answers:
``annotate`` (the labeling page), ``export`` / ``import`` (Label Studio files), ``push`` / ``pull``
(a running Label Studio). Each takes a config dataclass; ``torch_al.cli`` builds the parser from them."""

import json
from dataclasses import dataclass, field

from torch_al.checks import check_class_names
from torch_al.integrations.label_studio import LOCAL_FILES_URL, LabelStudioProject, export_tasks, import_answers
from torch_al.item_views import rescaled
from torch_al.pool import ActivePool
from torch_al.pool_commands import SelectConfig, pool_for, strategy_and_model


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

    def select_config(self) -> SelectConfig:
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

def _named_pool(config: PoolItems) -> ActivePool:
    """The pool of ``config.state`` with its class names: recorded from ``--classes`` the first
    time (and saved), checked against them after."""
    pool = pool_for(config.data).load(config.state)
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
        strategy, model = strategy_and_model(config.select_config())
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
