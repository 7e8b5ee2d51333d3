"""A LeNet trained on random labels of the experiment's imbalanced Fashion-MNIST pool, with the
experiment's recipe: the common starting point of the benchmarks that look inside one model
(what its pseudo-labels get right, which items each rule would pick)."""

import torch
from torch import nn

from torch_al.experiment import RunConfig, Splits, load_splits, make_model, make_trainer
from torch_al.pool import ActivePool
from torch_al.strategies import Random


def trained_on_random_labels(config: RunConfig, labels: int) -> tuple[nn.Module, Splits, ActivePool]:
    """(model in eval mode, splits, pool with ``labels`` random items labeled), all drawn from
    ``config.seed``."""
    splits = load_splits(config)
    torch.manual_seed(config.seed)
    model = make_model(config, splits.pool.tensors[0][0])
    pool = ActivePool(splits.pool)
    chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(config.seed))[:labels]
    pool.label(chosen, splits.pool.tensors[1][chosen])
    make_trainer(config, Random())(model, pool, 1)
    return model.eval(), splits, pool
