"""How often each PFK pseudo-label estimator names the true class, and what it costs.

    python benchmarks/pseudo_label_accuracy.py [--imbalance 100] [--labels 625] [--sample 1000]

The Fisher scores g of PFK are taken with a pseudo-label for every unlabeled pool point, so a
wrong label is a wrong descriptor. A LeNet is trained on ``--labels`` random labels of the
Fashion-MNIST pool (imbalanced by r, the experiment's recipe), then ``--sample`` random unlabeled
pool points (up to half of them from the rare classes) get a label from each estimator: the argmax prediction ŷ, the nearest validation row
under R_z (``validation_match``, p̂(y, z)), and the Monte-Carlo ``trace_cov`` and ``mutual_info``
(K perturbed copies, D per-class backward passes each). Reported: accuracy against the true
labels, overall and on the rare classes 5..9, images through forward / backward passes, seconds.
"""

import argparse
import os
import sys
import time

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import print_table, write_results  # noqa: E402
from random_label_model import trained_on_random_labels  # noqa: E402

from torch_al.experiment import MINORITY, RunConfig  # noqa: E402
from torch_al.pool import ActivePool  # noqa: E402
from torch_al.strategies import PFK, predict_probabilities  # noqa: E402
from torch_al.strategies.distribution_matching.pseudo_labels import MONTE_CARLO_KINDS, monte_carlo_pseudo_labels  # noqa: E402


def sample_unlabeled(pool: ActivePool, labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Up to half the sample from the rare classes 5..9 (a uniform draw from a 100x imbalanced
    pool would hold about 1% of them), the rest from the common ones."""
    generator = torch.Generator().manual_seed(seed + 1)
    unlabeled = pool.unlabeled_indices
    is_rare = torch.isin(labels[unlabeled], torch.tensor(MINORITY))
    rare, common = unlabeled[is_rare], unlabeled[~is_rare]
    rare = rare[torch.randperm(rare.numel(), generator=generator)[: size // 2]]
    common = common[torch.randperm(common.numel(), generator=generator)[: size - rare.numel()]]
    return torch.cat([rare, common])


def estimate(name: str, model, splits, inputs: torch.Tensor, samples: int) -> tuple[torch.Tensor, int, int]:
    """(labels, forward images, backward images) of one estimator on the sampled inputs."""
    loader = DataLoader(inputs, batch_size=256)  # batches of inputs, as the strategies load them
    if name == "argmax":
        return predict_probabilities(model, loader, progress=False).argmax(1), inputs.shape[0], 0
    if name == "validation_match":
        pfk = PFK(splits.validation, progress=False)
        layers = model.descriptor_layers
        pool_z = pfk.describe(model, layers, loader, "argmax", features=True, gradients=False).features
        validation_loader = DataLoader(splits.validation[0], batch_size=256)
        validation_z = pfk.describe(model, layers, validation_loader, "argmax", features=True, gradients=False).features
        # PFK has the validation features already (it looks for the misclassified rows with them)
        return splits.validation[1][PFK._nearest(pool_z, validation_z)], inputs.shape[0], 0
    estimated = monte_carlo_pseudo_labels(model, model.descriptor_layers, loader, samples, torch.Generator().manual_seed(0), name)
    return estimated.labels, estimated.forward, estimated.backward


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imbalance", type=float, default=100.0)
    parser.add_argument("--labels", type=int, default=625, help="random labels the model is trained on")
    parser.add_argument("--sample", type=int, default=1000, help="unlabeled pool points to label")
    parser.add_argument("--samples", type=int, default=16, help="K of the Monte-Carlo estimators")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = RunConfig(dataset="fashion-mnist", imbalance=args.imbalance, epochs=args.epochs, seed=args.seed, progress=False)
    model, splits, pool = trained_on_random_labels(config, args.labels)
    picked = sample_unlabeled(pool, splits.pool.tensors[1], args.sample, args.seed)
    inputs, truth = splits.pool.tensors[0][picked], splits.pool.tensors[1][picked]
    rare = torch.isin(truth, torch.tensor(MINORITY))
    rows = []
    for name in ("argmax", "validation_match", *MONTE_CARLO_KINDS):
        start = time.perf_counter()
        labels, forward, backward = estimate(name, model, splits, inputs, args.samples)
        seconds = time.perf_counter() - start
        correct = labels.cpu() == truth
        rows.append({
            "estimator": name, "accuracy": round(correct.float().mean().item(), 4),
            "rare_accuracy": round(correct[rare].float().mean().item(), 4) if rare.any() else None, "rare_points": int(rare.sum()),
            "forward_per_point": round(forward / args.sample, 1), "backward_per_point": round(backward / args.sample, 1),
            "seconds": round(seconds, 2), "seconds_vs_argmax": round(seconds / rows[0]["seconds"], 1) if rows else 1.0,
        })  # fmt: skip
    print_table(rows, list(rows[0]))
    return write_results("pseudo_label_accuracy", rows, setup=vars(args))


if __name__ == "__main__":
    print(main())
