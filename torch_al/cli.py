"""The ``torch-al`` command (also ``python -m torch_al``); every subcommand is built from a config dataclass.

    torch-al run --dataset fashion-mnist --strategy random entropy --imbalance 100 --rounds 10 --budget 125 --out DIR
    torch-al select --state S --data D --model M --strategy entropy --budget 125
    torchrun --nproc-per-node=N -m torch_al select ...   (each rank scores a shard; rank 0 writes and prints)
    torch-al label --state S --data D --labels answers.json
    torch-al status --state S
    torch-al discard --state S --data D
    torch-al annotate --state S --data D --classes cat dog   (a labeling page; export/import/push/pull: Label Studio)

The commands live in pool_commands.py (select, label, discard, status) and labeling_commands.py
(annotate, export, import, push, pull); this module builds the parser and runs them.
"""

import argparse
import dataclasses
import logging
import os
import sys
import types
import typing

import torch

from torch_al.distributed import RankFailedError
from torch_al.experiment import RunConfig, run_experiment
from torch_al.labeling_commands import (
    AnnotateConfig,
    ExportConfig,
    ImportConfig,
    PullConfig,
    PushConfig,
    command_annotate,
    command_export,
    command_import,
    command_pull,
    command_push,
)
from torch_al.persistence import StateFileError
from torch_al.pool_commands import (
    DiscardConfig,
    LabelConfig,
    SelectConfig,
    StatusConfig,
    command_discard,
    command_label,
    command_select,
    command_status,
)


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

def command_run(config: RunConfig) -> None:
    results = run_experiment(config)
    names = list(results)
    print("accuracy per round (labels: " + ", ".join(names) + ")")
    for row in zip(*(results[name] for name in names)):
        cells = "  ".join(f"{name} {record['accuracy']:.4f} (minority {record['minority_accuracy']:.4f})" for name, record in zip(names, row))
        print(f"round {row[0]['round']:2d}  labels {row[0]['labeled']:5d}  {cells}")
    print(f"wrote {os.path.join(config.out, 'metrics.json')}, metrics.csv and learning_curve.png")

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
