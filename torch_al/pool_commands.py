"""The commands that drive a pool of your own data one query at a time: ``select`` (one process or
``torchrun``), ``label``, ``discard``, ``status``. Each takes a config dataclass; ``torch_al.cli``
builds the parser from them."""

import contextlib
import json
import os
import shlex
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.utils.data import TensorDataset

from torch_al.distributed import distributed_select, load_pool, save_pool
from torch_al.experiment import is_ensemble
from torch_al.nn.capture import check_tokens
from torch_al.persistence import load_state
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
class StatusConfig:
    """Summarise a pool state file (no dataset needed)."""

    state: str = field(metadata={"help": "pool state file"})

def pool_for(data_path: str) -> ActivePool:
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
    pool = pool_for(config.data)
    if os.path.exists(config.state) and distributed:
        load_pool(pool, config.state)
    elif os.path.exists(config.state):
        pool.load(config.state)
    if pool.pending_query is None:
        strategy, model = strategy_and_model(config)
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


def strategy_and_model(config: SelectConfig):
    options = {"validation": _load_validation(config.validation), "layers": config.layers, "tokens": config.tokens} if config.validation else {}
    return make_strategy(config.strategy, seed=config.seed, progress=False, **options), _load_model(config.model)


def command_label(config: LabelConfig) -> None:
    pool = pool_for(config.data).load(config.state)
    with open(config.labels) as f:
        answers = json.load(f)
    if not isinstance(answers, dict):
        raise ValueError(f"{config.labels} must hold a JSON object {{index: label}}")
    pool.label([int(k) for k in answers], list(answers.values()), relabel=config.relabel)
    pool.save(config.state)
    print(f"{len(answers)} labels recorded; {pool!r}")


def command_discard(config: DiscardConfig) -> None:
    pool = pool_for(config.data).load(config.state)
    if pool.pending_query is None:
        print(f"no pending query in {config.state}: nothing to discard (file not modified)")
        return
    summary = _pending_summary(pool)
    pool.discard_query()
    pool.save(config.state)
    print(f"discarded the pending query for {summary}; labels already given stay in the ledger; {pool!r}")

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
