"""A PFK round against one forward and one backward over the pool (issue 30, item 6).

With a large backbone the passes are the whole cost of a round, so a round should cost little more
than the passes it cannot avoid: one forward and one input-gradient backward per pool item.
Variants, each over the same pool, validation set and model, on one CPU thread:
  plain_pass   forward + backward to the input over the pool, no hooks (the bound)
  pfk_round    PFK(estimator="validation_match").select: the validation set's M forwards and
               M̂ forward/backward, the pool's pass with the label search between each batch's
               forward and backward, k-center and select_unique
  two_pass     the same round with the label search as it was before: a features-only forward
               over the pool, the search, then forward + backward with the labels (picks checked
               equal to pfk_round's)
  pool_pass    the pool's part of pfk_round alone (its descriptors with the label search), the
               validation set's passes and the selection ops left out
Goal: pfk_round / plain_pass <= 1.15 on LeNet and on a ViT. The validation set's passes (M
forwards, M̂ forward/backward) are the method's own; the pool at N = 100k is Fashion-MNIST's 50k
pool images twice (the issue's N; timing only).
"""

import argparse

import torch
import torch.nn.functional as F
from common import print_table, time_interleaved, write_results
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool
from torch_al.datasets import as_float_images, load_fashion_mnist
from torch_al.models import LeNet, tiny_vit
from torch_al.sampler import inputs_loader
from torch_al.strategies import PFK
from torch_al.strategies.distribution_matching.matching import ValidationMatch

MODELS = {"lenet": LeNet, "vit": tiny_vit}
BATCH = 256
BUDGET = 125


class TwoPassPFK(PFK):
    """PFK with the label search of before: features over the whole pool, then the gradients."""

    def pool_descriptors(self, model, pool, candidates, query):
        layers = self._layers(model)
        loader = inputs_loader(pool, candidates, self.batch_size)
        pool_z = self.describe(model, layers, loader, "argmax", features=True, gradients=False).features
        labels = ValidationMatch(query.validation_z, self._validation[1], self.precision)(pool_z)
        return pool_z, self.describe(model, layers, loader, labels, features=False, gradients=True).gradients


def _setup(model_name: str, pool_size: int, validation_size: int):
    torch.manual_seed(0)
    model = MODELS[model_name]().eval()
    images, labels = load_fashion_mnist("train")
    images, labels = as_float_images(images), labels
    validation = (images[-validation_size:], labels[-validation_size:])
    repeats = -(-pool_size // (images.shape[0] - validation_size))
    pool_images, pool_labels = images[:-validation_size].repeat(repeats, 1, 1, 1)[:pool_size], labels[:-validation_size].repeat(repeats)[:pool_size]
    return model, ActivePool(TensorDataset(pool_images, pool_labels)), validation


def _plain_pass(model, pool) -> None:
    for (x,) in DataLoader(TensorDataset(pool.dataset.tensors[0]), batch_size=BATCH):
        x.requires_grad_()
        outputs = model(x)
        logits = getattr(outputs, "logits", outputs)
        torch.autograd.grad(F.cross_entropy(logits, logits.argmax(1), reduction="sum"), x)


def main(quick: bool = False) -> str:
    torch.set_num_threads(1)
    # The PFK experiment's 10k validation set; the pools of the measurement (LeNet) and a ViT's.
    sizes = {"lenet": (2000, 500) if quick else (100_000, 10_000), "vit": (1000, 250) if quick else (40_000, 4000)}
    rows = []
    for model_name, (pool_size, validation_size) in sizes.items():
        model, pool, validation = _setup(model_name, pool_size, validation_size)
        rounds = {name: kind(validation=validation, batch_size=BATCH, progress=False) for name, kind in (("pfk_round", PFK), ("two_pass", TwoPassPFK))}
        picks = {name: strategy.select(model, pool, BUDGET) for name, strategy in rounds.items()}
        assert torch.equal(picks["pfk_round"], picks["two_pass"]), "the label search between the passes changed the picks"
        pfk, candidates = rounds["pfk_round"], pool.unlabeled_indices
        query = pfk.query_descriptors(model, pool, BUDGET)
        seconds = time_interleaved(
            {
                "plain_pass": lambda: _plain_pass(model, pool),
                **{name: (lambda s=strategy: s.select(model, pool, BUDGET)) for name, strategy in rounds.items()},
                "pool_pass": lambda: pfk.pool_descriptors(model, pool, candidates, query),
            },
            repeats=1 if quick else 3,
        )
        cost = rounds["pfk_round"].last_cost
        rows.append({
            "model": model_name, "pool": pool_size, "validation": validation_size, **{f"{name}_s": value for name, value in seconds.items()},
            "pfk_round_over_plain": seconds["pfk_round"] / seconds["plain_pass"], "two_pass_over_plain": seconds["two_pass"] / seconds["plain_pass"],
            "pool_pass_over_plain": seconds["pool_pass"] / seconds["plain_pass"],
            "pfk_round_forward": cost.forward, "pfk_round_backward": cost.backward, "same_picks": True,
        })  # fmt: skip
    print_table(rows, ["model", "pool", "validation", "plain_pass_s", "pfk_round_s", "two_pass_s", "pfk_round_over_plain", "two_pass_over_plain", "pool_pass_over_plain"])
    return write_results("pfk_round", rows, goal="pfk_round_over_plain <= 1.15", batch=BATCH, budget=BUDGET, threads=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
