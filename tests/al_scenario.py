"""A tiny, fast active-learning run shared by the loop tests and their killed subprocesses."""

import json

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActiveLearningLoop, ActivePool, ActiveSampler
from torch_al.datasets import make_blobs
from torch_al.strategies import DIRECT, Entropy, LearningLoss

ROUNDS, BUDGET, INITIAL, EPOCHS = 4, 10, 10, 3


def make_loop(checkpoint_dir, strategy=None, oracle_log=None, rounds=ROUNDS, train_hook=None) -> ActiveLearningLoop:
    x, y = make_blobs(200, num_classes=4, dim=6, spread=2.0, seed=0)
    pool = ActivePool(TensorDataset(x, y))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))

    strategy = strategy or Entropy(progress=False)

    def train(model, pool, round_):  # through the strategy's objective: cross entropy but for learning loss
        optimizer = torch.optim.SGD([*model.parameters(), *strategy.extra_parameters(model, x[:1])], lr=0.1)
        sampler = ActiveSampler(pool, seed=0)
        for epoch in range(EPOCHS):
            sampler.set_epoch(epoch)
            for xb, yb in DataLoader(pool, sampler=sampler, batch_size=8):
                optimizer.zero_grad()
                strategy.training_loss(model, xb, yb, epoch, EPOCHS).backward()
                optimizer.step()
            if train_hook:
                train_hook(round_, epoch)

    @torch.no_grad()
    def evaluate(model):
        return {"accuracy": (model(x).argmax(1) == y).float().mean().item()}

    def oracle(indices):
        if oracle_log:
            with open(oracle_log, "a") as f:
                f.write(json.dumps(indices.tolist()) + "\n")
        return y[indices]

    return ActiveLearningLoop(pool, strategy, model, train, BUDGET, rounds, evaluate, oracle, INITIAL, checkpoint_dir, progress=False)


def learning_loss() -> LearningLoss:
    """A strategy that learns beside the model: its module must survive every interruption."""
    return LearningLoss(layers=["1"], width=16, progress=False)


def direct() -> DIRECT:
    """A strategy that asks within its round: sub-batches of 2, several a round."""
    return DIRECT(annotators=2, seed=0, progress=False)


def outcome(loop: ActiveLearningLoop, metrics: list[dict]):
    """What must not depend on interruptions: the ledger (without times) and the metrics (without timings)."""
    ledger = loop.pool.ledger
    return (
        ledger.index.tolist(),
        ledger.label.tolist(),
        ledger.round.tolist(),
        [{k: v for k, v in record.items() if not k.endswith("_seconds")} for record in metrics],
    )


def without_passes(records: list[dict]) -> list[dict]:
    """The records but their forwards: a round asked in sub-batches and resumed replays its first
    part, passing over the pool again, and counts it."""
    return [{k: v for k, v in r.items() if k != "select_forward"} for r in records]


class Stop(Exception):
    """The crash :func:`run_until_stopped` makes."""


def run_until_stopped(loop: ActiveLearningLoop, stage: str, stops_training=lambda model, round_: round_ == 2) -> None:
    """Runs ``loop`` until it is killed: at round 2's oracle call (``stage="oracle"``: round 2's
    query saved, its labels not given) or as ``stops_training(model, round_)`` says, before that
    training call (``stage="train"``: round 2 labeled and saved by default)."""
    oracle, train = loop.oracle, loop.train

    def stopping_oracle(indices):
        if loop.pool.round == 1:
            raise Stop
        return oracle(indices)

    def stopping_train(model, pool, round_):
        if stops_training(model, round_):
            raise Stop
        train(model, pool, round_)

    if stage == "oracle":
        loop.oracle = stopping_oracle
    else:
        loop.train = stopping_train
    try:
        loop.run()
    except Stop:
        return
    raise AssertionError(f"the run was not stopped at its {stage} step")

