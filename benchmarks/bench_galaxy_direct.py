"""GALAXY's and DIRECT's selection work at a million pool items, against the issue's goal.

What a round costs beyond the model's forward pass: the class lines (a sort of the pool per
class), the searches and the bookkeeping between answers, on one CPU thread. The probabilities are
fixed (as within a round) and the oracle answers at once, so the time is the strategies' alone.
Pool: N items of C = 10 classes at 100× imbalance (classes 5–9 rare), probabilities of a model that
is right on 80% of items, 1250 labeled items drawn at random; a round of b labels. Columns:
  galaxy_s, direct_s   seconds for the whole round (b labels; GALAXY asks them one at a time,
                       DIRECT in batches of B1 = 20 and one batch per class around the thresholds)
  lines_s              of which the C class lines (torch_al.class_line_order for every class), which
                       both build once a round
  forward_s            one forward pass of the experiment's LeNet over N Fashion-MNIST-sized
                       images (what every round pays first), measured on 20 000 and scaled
No installable package implements either method (LabelBench is a research repository), so the
reference point is the goal: ≤ 1 s per round at N = 10⁶, C = 10.
"""

import time

import torch
from common import print_table, write_results

import torch_al
from torch_al.models import LeNet
from torch_al.strategies.imbalance.direct import direct_asks
from torch_al.strategies.imbalance.galaxy import galaxy_asks
from torch_al.strategies.within_round import RoundLabels

CLASSES, LABELED, GOAL_SECONDS = 10, 1250, 1.0


def imbalanced_problem(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities float64 Tensor[n, C], true labels): 100× imbalance, 80% of argmaxes right."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.tensor([100.0] * 5 + [1.0] * 5)
    truth = torch.multinomial(weights, n, replacement=True, generator=generator)
    logits = torch.randn(n, CLASSES, generator=generator, dtype=torch.float64)
    right = torch.rand(n, generator=generator) < 0.8
    logits[torch.arange(n)[right], truth[right]] += 4.0
    return logits.softmax(1), truth


def one_round(asks, truth: torch.Tensor, labeled: torch.Tensor) -> tuple[float, int]:
    """Seconds for one round, answering each sub-batch from ``truth``; and the sub-batches."""
    labels = RoundLabels(labeled.clone(), torch.where(labeled, truth, 0))
    start, batches = time.perf_counter(), 0
    for batch in asks(labels):
        labels.record(batch, truth[batch])
        batches += 1
    return time.perf_counter() - start, batches


def lines_seconds(probabilities: torch.Tensor) -> float:
    start = time.perf_counter()
    for k in range(probabilities.shape[1]):
        torch_al.class_line_order(probabilities, k)
    return time.perf_counter() - start


def forward_seconds(n: int) -> float:
    model, sample = LeNet().eval(), min(n, 20_000)
    images = torch.randn(sample, 1, 28, 28)
    start = time.perf_counter()
    with torch.no_grad():
        for chunk in images.split(512):
            model(chunk)
    return (time.perf_counter() - start) * n / sample


def main(quick: bool = False) -> str:
    torch.set_num_threads(1)
    rows = []
    for n, budget in ([(50_000, 125)] if quick else [(100_000, 125), (1_000_000, 125), (1_000_000, 1250)]):
        probabilities, truth = imbalanced_problem(n)
        labeled = torch.zeros(n, dtype=torch.bool)
        labeled[torch.randperm(n, generator=torch.Generator().manual_seed(1))[:LABELED]] = True
        galaxy_s, galaxy_batches = one_round(lambda labels: galaxy_asks(probabilities, labels, budget, 0, 1), truth, labeled)
        direct_s, direct_batches = one_round(lambda labels: direct_asks(probabilities, labels, budget, 20, 60, 0, 1), truth, labeled)
        rows.append(
            {"N": n, "budget": budget, "galaxy_s": round(galaxy_s, 3), "galaxy_batches": galaxy_batches, "direct_s": round(direct_s, 3),
             "direct_batches": direct_batches, "lines_s": round(lines_seconds(probabilities), 3), "forward_s": round(forward_seconds(n), 1), "goal_s": GOAL_SECONDS}
        )  # fmt: skip
    print_table(rows, ["N", "budget", "galaxy_s", "galaxy_batches", "direct_s", "direct_batches", "lines_s", "forward_s", "goal_s"])
    return write_results("galaxy_direct", rows, threads=1, classes=CLASSES, labeled=LABELED)


if __name__ == "__main__":
    main()
