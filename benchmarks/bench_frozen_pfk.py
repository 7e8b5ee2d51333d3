"""A PFK round in frozen-embedding mode (issue 30, item 2): N stored 768-d features of a frozen
backbone and a linear head (``torch_al.nn.FeatureHead``), on one CPU thread.

Each variant runs in its own process (peak memory is per process), over the same features:
  head_pass   forward + backward of the head over the stored features (what any gradient costs)
  pfk_round   PFK(estimator="validation_match").select with P = 125 from a 2 000-item
              validation set: its descriptors (z: the stored features; g: the head's input
              gradients), the nearest-validation label search, k-center, pfk_topk and the fill
Reported: seconds, the round over the head pass, and peak memory beyond the stored features
(the features are N·768·4 bytes: 2.9 GiB at N = 10⁶). No peer runs PFK on stored features.
"""

import argparse

import torch
from common import print_table, run_isolated, write_results
from torch.utils.data import DataLoader, TensorDataset

WIDTH, CLASSES, VALIDATION, BUDGET, BATCH = 768, 10, 2000, 125, 4096


def _features(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-clustered features, like a frozen backbone's: a class mean plus unit noise."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(CLASSES, WIDTH, generator=generator)
    labels = torch.randint(0, CLASSES, (rows,), generator=generator)
    features = torch.empty(rows, WIDTH)
    for start in range(0, rows, 65536):
        block = slice(start, start + 65536)
        features[block] = means[labels[block]] + torch.randn(features[block].shape, generator=generator) * 2
    return features, labels


def measure(variant: str, pool_size: int) -> dict:
    """Run in a fresh process: one variant on one thread, its seconds and peak memory."""
    import time

    from common import peak_rss_mib, reset_peak_rss

    from torch_al import ActivePool
    from torch_al.nn import FeatureHead
    from torch_al.strategies import PFK

    torch.set_num_threads(1)
    torch.manual_seed(0)
    features, labels = _features(pool_size, seed=0)
    validation = _features(VALIDATION, seed=1)
    model = FeatureHead(torch.nn.Linear(WIDTH, CLASSES)).eval()
    reset_peak_rss()
    before = peak_rss_mib()
    start = time.perf_counter()
    if variant == "head_pass":
        for (x,) in DataLoader(TensorDataset(features), batch_size=BATCH):
            x.requires_grad_()
            logits = model(x)
            torch.autograd.grad(torch.nn.functional.cross_entropy(logits, logits.argmax(1), reduction="sum"), x)
        picked = None
    else:
        picked = PFK(validation=validation, batch_size=BATCH, progress=False).select(model, ActivePool(TensorDataset(features, labels)), BUDGET)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "extra_mib": peak_rss_mib() - before, "features_mib": features.numel() * 4 / 2**20, "picked": None if picked is None else picked.numel()}


def main(quick: bool = False) -> str:
    rows = []
    for pool_size in [20_000] if quick else [100_000, 1_000_000]:
        results = {variant: run_isolated("bench_frozen_pfk", "measure", variant=variant, pool_size=pool_size) for variant in ("head_pass", "pfk_round")}
        assert results["pfk_round"]["picked"] == BUDGET
        rows.append({
            "pool": pool_size, "width": WIDTH, "validation": VALIDATION, "features_mib": results["pfk_round"]["features_mib"],
            "head_pass_s": results["head_pass"]["seconds"], "pfk_round_s": results["pfk_round"]["seconds"],
            "pfk_round_over_head_pass": results["pfk_round"]["seconds"] / results["head_pass"]["seconds"],
            "head_pass_extra_mib": results["head_pass"]["extra_mib"], "pfk_round_extra_mib": results["pfk_round"]["extra_mib"],
        })  # fmt: skip
    print_table(rows, ["pool", "width", "validation", "features_mib", "head_pass_s", "pfk_round_s", "pfk_round_over_head_pass", "head_pass_extra_mib", "pfk_round_extra_mib"])
    return write_results("frozen_pfk", rows, threads=1, budget=BUDGET, batch=BATCH, note="extra_mib: peak RSS beyond what the process held once the features were made")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
