"""Why EMOC, BADGE and CEAL favour the majority on a biased pool: what each rule sees of the rare
classes, on one model per seed.

    python benchmarks/majority_bias.py [--imbalance 100] [--labels 500] [--seeds 0 1 … 9]

Per seed, a LeNet is trained on ``--labels`` random labels of the experiment's Fashion-MNIST pool
(imbalanced by r, the experiment's recipe; 500 labels = the labeled set after four rounds of
125). On its unlabeled pool items, split into the common classes 0..4 and the rare classes 5..9:

- the rare items among each rule's P = 125 picks (random, entropy, EMOC, BADGE);
- EMOC: with the last layer as θ (the default) an item's score is the product of two factors,
  ‖p − e_ŷ‖₁ (how unsure the model is) and E_x |h(x)·h(x') + 1| (how well its last-layer input
  h(x') lines up with the pool's); each factor's mean, common over rare, the size ‖h‖ likewise,
  the rare items among the top P of the first factor alone, and the largest gap between the
  product and the library's scores (a check of the factorisation);
- BADGE: the mean size of the gradient embedding ‖p − e_ŷ‖·‖h‖ and of its uncertainty factor
  ‖p − e_ŷ‖ alone, common over rare, and the rare items' share of the summed squared embedding
  sizes (the D² mass k-means++ draws from, before any seed is near);
- CEAL: its pseudo-labels at the threshold of that round, δ₄ = δ₀ − 4·dr: how many, the most
  frequent pseudo-label and its share, the share of common-class items, the share labeled right.

Mean and 95% bootstrap interval over seeds; JSON in benchmarks/results/majority_bias.json.
"""

import argparse
import os
import sys

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import print_table, write_results  # noqa: E402
from random_label_model import trained_on_random_labels  # noqa: E402
from seed_statistics import mean_interval  # noqa: E402

from torch_al.embeddings import embed_with_logits  # noqa: E402
from torch_al.experiment import MINORITY, RunConfig  # noqa: E402
from torch_al.provenance import code_version  # noqa: E402
from torch_al.sampler import inputs_loader  # noqa: E402
from torch_al.strategies import BADGE, CEAL, EMOC, Entropy, Random, ceal_pseudo_labels  # noqa: E402
from torch_al.strategies.diversity.badge import gradient_embedding_factors  # noqa: E402

BUDGET = 125


def common_over_rare(values: Tensor, rare: Tensor) -> float:
    return (values[~rare].mean() / values[rare].mean()).item()


def measure(seed: int, args: argparse.Namespace) -> dict[str, float]:
    config = RunConfig(dataset="fashion-mnist", imbalance=args.imbalance, epochs=args.epochs, seed=seed, progress=False)
    model, splits, pool = trained_on_random_labels(config, args.labels)
    truth = splits.pool.tensors[1]
    candidates = pool.unlabeled_indices
    rare = torch.isin(truth[candidates], torch.tensor(MINORITY))
    features, logits = embed_with_logits(model, inputs_loader(pool, candidates, 256), candidates, "majority_bias")
    uncertainty, features = gradient_embedding_factors(logits, features)
    emoc = EMOC(seed=seed, progress=False)
    rules = {"random": Random(seed), "entropy": Entropy(progress=False), "emoc": emoc, "badge": BADGE(seed=seed)}
    picks = {name: rule.select(model, pool, BUDGET) for name, rule in rules.items()}
    rounds_done = args.labels // BUDGET
    pseudo = ceal_pseudo_labels(logits.softmax(1), candidates, picks["entropy"], CEAL().threshold(rounds_done))
    emoc_scores = emoc.item_scores(model, pool, candidates)
    sample = emoc.sample_indices(pool)
    sample_features, _ = embed_with_logits(model, inputs_loader(pool, sample, 256), sample, "majority_bias")
    unsure = uncertainty.abs().sum(1)
    alignment = (features @ sample_features.T + 1).abs().mean(1)
    embedding_sq = (uncertainty.norm(dim=1) * features.norm(dim=1)) ** 2
    pseudo_count = pseudo.indices.numel()
    pseudo_share = (lambda chosen: chosen.double().mean().item()) if pseudo_count else (lambda chosen: float("nan"))
    row = {
        "seed": seed, "labeled_rare": int(torch.isin(truth[pool.labeled_indices], torch.tensor(MINORITY)).sum()),
        "pool_rare_share": rare.double().mean().item(),
        **{f"{name}_rare_picks": int(torch.isin(truth[chosen], torch.tensor(MINORITY)).sum()) for name, chosen in picks.items()},
        "emoc_score_common_over_rare": common_over_rare(emoc_scores, rare),
        "emoc_uncertainty_common_over_rare": common_over_rare(unsure, rare),
        "emoc_alignment_common_over_rare": common_over_rare(alignment, rare),
        "feature_size_common_over_rare": common_over_rare(features.norm(dim=1), rare),
        "emoc_uncertainty_alone_rare_picks": int(rare[unsure.topk(BUDGET).indices].sum()),
        "emoc_factorisation_gap": ((unsure * alignment - emoc_scores).abs().max() / emoc_scores.abs().max()).item(),
        "badge_embedding_common_over_rare": common_over_rare(embedding_sq.sqrt(), rare),
        "badge_uncertainty_common_over_rare": common_over_rare(uncertainty.norm(dim=1), rare),
        "badge_rare_mass_share": (embedding_sq[rare].sum() / embedding_sq.sum()).item(),
        "ceal_pseudo_labels": pseudo_count,
        "ceal_top_class": int(pseudo.labels.bincount().argmax()) if pseudo_count else -1,
        "ceal_top_class_share": pseudo_share(pseudo.labels == pseudo.labels.bincount().argmax()) if pseudo_count else float("nan"),
        "ceal_common_share": pseudo_share(~torch.isin(truth[pseudo.indices], torch.tensor(MINORITY))),
        "ceal_correct_share": pseudo_share(truth[pseudo.indices] == pseudo.labels),
    }  # fmt: skip
    print(f"seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if k != "seed"), flush=True)
    return row


def summary(rows: list[dict]) -> list[dict]:
    """Mean and 95% bootstrap interval over seeds of every measure (seeds where it is defined)."""
    out = []
    for key in rows[0]:
        if key in ("seed", "ceal_top_class"):  # identifiers, not measures
            continue
        values = np.array([row[key] for row in rows], dtype=float)
        values = values[~np.isnan(values)]
        if values.size == 0:
            out.append({"measure": key, "seeds": 0, "mean": None, "low": None, "high": None})
            continue
        low, high = mean_interval(values)
        out.append({"measure": key, "seeds": int(values.size), **{name: float(f"{value:.4g}") for name, value in (("mean", values.mean()), ("low", low), ("high", high))}})
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imbalance", type=float, default=100.0)
    parser.add_argument("--labels", type=int, default=500, help="random labels the model is trained on")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    per_seed = [measure(seed, args) for seed in args.seeds]
    rows = summary(per_seed)
    print_table(rows, list(rows[0]))
    return write_results("majority_bias", rows, setup=vars(args), per_seed=per_seed, code=code_version())


if __name__ == "__main__":
    print(main())
