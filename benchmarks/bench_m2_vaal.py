"""M2-VAAL: does the adversarial term hurt the M2 classifier? The slides report that it does.

One M2-VAAL selection (``m2-vaal``, P = 64) on a Fashion-MNIST pool of 250 labeled and 5000
unlabeled images of the TRAIN split (labeled from any class, or only from 3 classes as in the
slides' low-label runs), trained once with the adversarial term off
(``adversary_weight=0``: the discriminator is still trained and still selects, but the M2 model
does not try to fool it) and once on (``adversary_weight=1``, the default), from the same seed:
the same initial weights, batches and noise. Columns:
  acc_lambda0, acc_lambda1   accuracy of the trained q(y | x) on 2000 other TRAIN images (held
                             out from the pool; the test split is never read)
  d_acc_lambda0/1            the discriminator's labeled-vs-unlabeled accuracy on the pool at
                             threshold 0.5 (balanced: mean of the two classes' accuracies)
  s_lambda0, s_lambda1       seconds of the selection (training and scoring), one thread
Difference: acc_lambda1 − acc_lambda0 (< 0: the adversary hurts the classifier). ``--weights``
compares other λ (written to m2_vaal_lambda_<λs>.json).
"""

import argparse
import itertools
import time

import torch
from common import print_table, write_results
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.datasets import as_float_images, load_fashion_mnist
from torch_al.seeding import derived_seed
from torch_al.strategies import M2VAAL

LABELED, UNLABELED, HELD_OUT, BUDGET = 250, 5000, 2000, 64
# Where the labeled items come from: any class, or only pullover, coat and sneaker (the slides'
# low-label setting, where labeled and unlabeled images differ and the discriminator can tell them).
SETTINGS: dict[str, tuple[int, ...] | None] = {"any-class": None, "3-classes": (2, 4, 7)}


def splits(seed: int, labeled_classes: tuple[int, ...] | None) -> tuple[ActivePool, torch.Tensor, torch.Tensor]:
    """(pool of LABELED labeled + UNLABELED unlabeled images, held-out images, their labels), all
    from the train split, drawn from ``seed``; the labeled items only of ``labeled_classes``
    (None: any class)."""
    images, labels = load_fashion_mnist("train")
    images = as_float_images(images)
    order = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(derived_seed(seed, "bench m2-vaal")))
    allowed = torch.isin(labels[order], torch.tensor(labeled_classes)) if labeled_classes else torch.ones_like(order, dtype=torch.bool)
    labeled = order[allowed][:LABELED]
    rest = order[~torch.isin(order, labeled)]
    pool_rows, held_out = torch.cat([labeled, rest[:UNLABELED]]), rest[UNLABELED : UNLABELED + HELD_OUT]
    pool = ActivePool(TensorDataset(images[pool_rows], labels[pool_rows]))
    pool.label(torch.arange(LABELED), labels[labeled])
    return pool, images[held_out], labels[held_out]


@torch.no_grad()
def accuracies(strategy: M2VAAL, pool: ActivePool, held_out: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(q(y | x) accuracy on the held-out images, balanced discriminator accuracy on the pool)."""
    model, discriminator = strategy.last_vae, strategy.last_discriminator
    accuracy = float((model.classify(held_out).argmax(1) == labels).float().mean())
    called_labeled = torch.cat([discriminator(model.latent(x)) > 0 for x in pool.dataset.tensors[0].split(1000)])
    balanced = 0.5 * float(called_labeled[pool.labeled_mask].float().mean() + (~called_labeled[~pool.labeled_mask]).float().mean())
    return accuracy, balanced


def main(quick: bool = False, iterations: int = 40, seeds: int = 1, settings: tuple[str, ...] = tuple(SETTINGS), weights: tuple[float, ...] = (0.0, 1.0)) -> str:
    """The table for ``seeds`` seeds, ``settings`` and adversary ``weights`` λ; ``quick``: 5
    iterations, a smoke run. Returns the JSON path (``m2_vaal.json`` for λ ∈ {0, 1})."""
    torch.set_num_threads(1)
    iterations = 5 if quick else iterations
    rows = []
    for setting, seed in itertools.product(settings, range(seeds)):
        pool, held_out, labels = splits(seed, SETTINGS[setting])
        row = {"labeled_from": setting, "seed": seed, "labeled": LABELED, "unlabeled": UNLABELED, "iterations": iterations}
        for weight in weights:
            strategy = M2VAAL(iterations=iterations, adversary_weight=weight, num_classes=10, seed=seed, progress=False)
            start = time.perf_counter()
            strategy.select(None, pool, BUDGET)
            seconds = time.perf_counter() - start
            row[f"acc_lambda{weight:g}"], row[f"d_acc_lambda{weight:g}"] = accuracies(strategy, pool, held_out, labels)
            row[f"s_lambda{weight:g}"] = seconds
        row["difference"] = row[f"acc_lambda{weights[-1]:g}"] - row[f"acc_lambda{weights[0]:g}"]
        rows.append(row)
    print_table(rows, list(rows[0]))
    name = "m2_vaal" if weights == (0.0, 1.0) else "m2_vaal_lambda_" + "_".join(f"{weight:g}" for weight in weights)
    return write_results(name, rows, threads=1, budget=BUDGET, held_out=HELD_OUT, split="train")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 iterations, a smoke run")
    parser.add_argument("--iterations", type=int, default=40, help="M2-VAAL training iterations (each 2 M2 steps + 1 discriminator step)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 1.0], help="adversary weights λ to compare, the first as the reference")
    args = parser.parse_args()
    print("wrote", main(args.quick, args.iterations, args.seeds, tuple(args.settings), tuple(args.weights)))
