"""How good are self-supervised LeNet embeddings on Fashion-MNIST? A linear probe of the 50-d
embedding (the input of LeNet's last layer, the one the diversity and low-budget strategies read)
after rotation pretraining, after SimCLR, and from random weights, in one run.

Per seed: LeNet initialised from the seed; pretraining on 20 000 unlabeled training images
(rotation: 8 epochs, the experiment's default; SimCLR: 20 epochs of 256 images); then a
logistic regression (scikit-learn, standardised features, C = 1) fitted on the embeddings of
10 000 other training images with their labels and scored on the 10 000 test images. Nothing is
tuned: every setting above is fixed in advance and the test set is only scored. Accuracy per
encoder with a 95% bootstrap interval over the seeds, SimCLR − rotation paired seed by seed, and
the pretraining seconds (one thread).
"""

import argparse
import time

import numpy as np
import torch
from common import print_table, write_results
from seed_statistics import mean_interval, paired_difference

from torch_al.datasets.fashion_mnist import as_float_images, load_fashion_mnist
from torch_al.embeddings import embed
from torch_al.models import LeNet
from torch_al.pretraining import rotation_pretrain, simclr_pretrain
from torch_al.seeding import derived_seed

PRETRAIN_IMAGES = 20_000
PROBE_IMAGES = 10_000
ENCODERS = ("random", "rotation", "simclr")


def embeddings(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return embed(model, images.split(1000), name="linear probe")


def probe_accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    probe.fit(train.numpy(), train_labels.numpy())
    return float(probe.score(test.numpy(), test_labels.numpy()))


def run_seed(seed: int, quick: bool) -> dict:
    images, labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    images, test_images = as_float_images(images), as_float_images(test_images)
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(derived_seed(seed, "linear probe split")))
    pretrain_count, probe_count = (2000, 1000) if quick else (PRETRAIN_IMAGES, PROBE_IMAGES)
    unlabeled = images[order[:pretrain_count]]
    probe_rows = order[pretrain_count : pretrain_count + probe_count]
    row = {"seed": seed}
    for encoder in ENCODERS:
        torch.manual_seed(derived_seed(seed, "linear probe model"))
        model = LeNet()
        start = time.perf_counter()
        if encoder == "rotation":
            rotation_pretrain(model, unlabeled, epochs=1 if quick else 8, seed=seed, progress=False)
        elif encoder == "simclr":
            simclr_pretrain(model, unlabeled, epochs=1 if quick else 20, batch_size=256, seed=seed, progress=False)
        row[f"{encoder}_pretrain_s"] = round(time.perf_counter() - start, 1)
        train = embeddings(model, images[probe_rows])
        test = embeddings(model, test_images if not quick else test_images[:2000])
        row[encoder] = probe_accuracy(train, labels[probe_rows], test, test_labels if not quick else test_labels[:2000])
    return row


def main(seeds: list[int], quick: bool) -> str:
    torch.set_num_threads(1)
    rows = [run_seed(seed, quick) for seed in seeds]
    print_table(rows, ["seed", *ENCODERS, "rotation_pretrain_s", "simclr_pretrain_s"])
    summary = []
    for encoder in ENCODERS:
        values = np.array([row[encoder] for row in rows])
        low, high = mean_interval(values)
        summary.append({"encoder": encoder, "accuracy": round(float(values.mean()), 4), "low": round(float(low), 4), "high": round(float(high), 4), "seeds": len(values)})
    print_table(summary, ["encoder", "accuracy", "low", "high", "seeds"])
    simclr_minus_rotation = paired_difference(np.array([row["simclr"] for row in rows]), np.array([row["rotation"] for row in rows]))
    print("SimCLR - rotation:", simclr_minus_rotation)
    return write_results(
        "linear_probe", rows, summary=summary, simclr_minus_rotation=simclr_minus_rotation, quick=quick, threads=1,
        pretrain_images=PRETRAIN_IMAGES, probe_images=PROBE_IMAGES,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    print(main(arguments.seeds, arguments.quick))
