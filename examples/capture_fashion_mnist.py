"""Main job (for now): describe a Fashion-MNIST pool with a LeNet's pooled features and gradients.

Trains a LeNet briefly on part of the training split, then captures multi-scale descriptors
(conv1 + conv2 + fc1, L = 80) of a pool of training images with argmax pseudo-labels, in one
forward and one backward per batch. Prints what the descriptors say about the pool: a 1-nearest-
neighbour accuracy in feature space (are they informative?) and the gradient norm of the
misclassified images against the correct ones (do they flag what the model gets wrong?).

    python examples/capture_fashion_mnist.py [--train 5000] [--pool 10000] [--out descriptors.pt]
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from torch_al.datasets import as_float_images, load_fashion_mnist
from torch_al.descriptors import compute_descriptors
from torch_al.models import LeNet

LAYERS = ["conv1", "conv2", "fc1"]


def train(model: LeNet, images: torch.Tensor, labels: torch.Tensor, epochs: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    loader = DataLoader(TensorDataset(images, labels), batch_size=25, shuffle=True)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()


def nearest_neighbour_accuracy(descriptors: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out 1-NN accuracy under cosine similarity."""
    unit = F.normalize(descriptors, dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-float("inf"))
    return (labels[similarity.argmax(1)] == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=5000, help="training images for the LeNet")
    parser.add_argument("--pool", type=int, default=10000, help="pool images to describe")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="save the descriptor stores here (torch.save)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    images, labels = load_fashion_mnist("train")
    images = as_float_images(images)
    train_x, train_y = images[: args.train], labels[: args.train]
    pool_x, pool_y = images[args.train : args.train + args.pool], labels[args.train : args.train + args.pool]

    model = LeNet()
    start = time.perf_counter()
    train(model, train_x, train_y, args.epochs)
    print(f"trained LeNet on {len(train_x)} images in {time.perf_counter() - start:.1f}s")

    start = time.perf_counter()
    pool_loader = DataLoader(TensorDataset(pool_x), batch_size=250)
    descriptors = compute_descriptors(model, pool_loader, LAYERS, capture="both", labels="argmax")
    seconds = time.perf_counter() - start
    correct = descriptors.labels == pool_y
    grad_norm = descriptors.gradients.norm(dim=1)

    print(f"pool of {len(pool_x)} images described in {seconds:.1f}s ({1e3 * seconds / len(pool_x):.2f} ms/image)")
    print(f"feature store {tuple(descriptors.features.shape)}, gradient store {tuple(descriptors.gradients.shape)}")
    print(f"columns: { {name: (s.start, s.stop) for name, s in descriptors.columns.items()} }")
    print(f"model accuracy on the pool (argmax pseudo-labels correct): {correct.float().mean():.3f}")
    print(f"1-NN accuracy in feature-descriptor space: {nearest_neighbour_accuracy(descriptors.features[:5000], pool_y[:5000]):.3f} (chance 0.100)")
    print(f"mean gradient-descriptor norm: misclassified {grad_norm[~correct].mean():.4f} vs correct {grad_norm[correct].mean():.4f}")
    if args.out:
        torch.save({"features": descriptors.features, "gradients": descriptors.gradients, "labels": descriptors.labels}, args.out)
        print(f"saved descriptors to {args.out}")


if __name__ == "__main__":
    main()
