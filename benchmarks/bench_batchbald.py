"""BatchBALD: torch_al's greedy against baal's BatchBALD heuristic on the same MC probabilities, in one run.

The probabilities are seeded and synthetic: N = 2000 items, T = 32 passes, C = 10 classes,
p_t = softmax(s·z + ε_t) with z and ε_t standard normal and a per-item scale s in [0, 3], so the
pool mixes confident, ambiguous and disagreeing items. One thread. Columns (seconds for one
selection of `batch` items, the median of the two seeds' runs, ours and baal's taking turns):
  ours   torch_al.strategies.batchbald_select: exact joint entropies while the picked items'
         label configurations number at most MAX_CONFIGURATIONS (here picks 1–4), then SAMPLES
         configurations drawn from the joint, extended by one drawn label per pick
  baal   baal.active.heuristics.BatchBALD(num_samples=batch − 1, num_draw=SAMPLES // T) on the
         [N, C, T] probabilities, if `import baal` works: every step redraws SAMPLES
         configurations of the whole history (num_draw per posterior sample), from the first
         step on; it returns batch items for num_samples = batch − 1 (its loop appends
         num_samples picks to the first, BALD's, pick)
  redux  batchbald_redux.batchbald.get_batchbald_batch(log p, batch, num_samples=SAMPLES) (Kirsch's
         reference code), if it imports: exact joint entropies while C^(picks) <= SAMPLES, then
         SAMPLES configurations drawn afresh at every step
Ratios: baal/ours and redux/ours (>1: ours is faster; the goal for redux: >= 10). Batch 4 is in
the exact regime of both ours and redux: their picks are asserted equal before timing.

Agreement, checked before timing: ours' first pick and score are BALD's (float64 formula), and so
is baal's first pick. Both rules are Monte-Carlo estimates of the same objective beyond the exact
range, so picks are compared with the noise floor of each: `same_prefix` is the number of leading
picks two runs share, `overlap` the fraction of the batch they share, for ours vs baal, ours vs ours
under another seed, and baal vs baal under another seed. `mi_*` is each batch's joint mutual
information I(y_batch; θ) = H(y_batch) − Σ E_θ H(y_i|θ), estimated for both batches from the same
EVALUATION_SAMPLES fresh configurations: which rule's batch is more informative by the objective.
"""

import argparse
import importlib.metadata
import math
import statistics
import time

import numpy as np
import torch
from common import print_table, write_results

from torch_al.strategies import BALD, batchbald_select

PASSES, CLASSES = 32, 10
MAX_CONFIGURATIONS = SAMPLES = 1024
EVALUATION_SAMPLES = 100000


def mc_probabilities(items: int, seed: int = 0) -> torch.Tensor:
    """float64 Tensor[N, T, C]."""
    generator = torch.Generator().manual_seed(seed)
    scale = torch.rand(items, 1, 1, generator=generator, dtype=torch.float64) * 3
    centre = torch.randn(items, 1, CLASSES, generator=generator, dtype=torch.float64)
    noise = torch.randn(items, PASSES, CLASSES, generator=generator, dtype=torch.float64)
    return (scale * centre + noise).softmax(-1)


def ours(probabilities: torch.Tensor, batch: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return batchbald_select(probabilities, batch, MAX_CONFIGURATIONS, SAMPLES, generator=generator)[0].tolist()


def baal_runner(probabilities: torch.Tensor):
    """run(batch, seed) -> baal's picks in pick order, or None when baal does not import."""
    try:
        from baal.active.heuristics import BatchBALD as BaalBatchBALD
    except Exception as error:
        print(f"baal skipped: {error!r}")
        return None
    predictions = probabilities.transpose(1, 2).numpy()  # baal's layout [N, C, T]

    class Recorded(BaalBatchBALD):
        """Records the history it samples from, to recover its pick order (it returns scores)."""

        def _sample_from_history(self, probs, num_draw=1000):
            self.history_rows.append(probs[-1])
            return super()._sample_from_history(probs, num_draw)

    def run(batch: int, seed: int) -> list[int]:
        heuristic = Recorded(num_samples=batch - 1, num_draw=SAMPLES // PASSES)
        heuristic.history_rows = []
        torch.manual_seed(seed)  # baal draws its configurations from torch's global generator
        scores = heuristic.compute_score(predictions)
        order = [int(np.flatnonzero((predictions == row).all(axis=(1, 2)))[0]) for row in heuristic.history_rows]
        rest = [int(i) for i in np.flatnonzero(scores) if int(i) not in order]
        return order + rest

    return run


def redux_runner(probabilities: torch.Tensor):
    """run(batch, seed) -> batchbald-redux's picks, or None when it does not import."""
    try:
        from batchbald_redux.batchbald import get_batchbald_batch
    except Exception as error:
        print(f"batchbald-redux skipped: {error!r}")
        return None
    log_probabilities = probabilities.log()  # its input: log p, [N, K = T, C]

    def run(batch: int, seed: int) -> list[int]:
        torch.manual_seed(seed)  # it draws its sampled configurations from torch's global generator
        return get_batchbald_batch(log_probabilities, batch, SAMPLES, dtype=torch.float64).indices

    return run


def joint_information(probabilities: torch.Tensor, batch: list[int], samples: int, seed: int) -> float:
    """I(y_batch; θ) from ``samples`` configurations drawn from the joint: a posterior sample t,
    then every label from p_t; H ≈ mean of −log p(ŷ), p(ŷ) = mean_t Π_i p_t(ŷ_i)."""
    generator = torch.Generator().manual_seed(seed)
    p = probabilities[batch]  # [b, T, C]
    posterior = torch.randint(PASSES, (samples,), generator=generator)
    log_per_pass = torch.zeros(PASSES, samples, dtype=torch.float64)
    for item in p:
        labels = torch.multinomial(item[posterior], 1, generator=generator).squeeze(1)
        log_per_pass += item[:, labels].log()
    entropy = -(torch.logsumexp(log_per_pass, 0) - math.log(PASSES)).mean()
    conditional = torch.special.entr(p).sum(-1).mean(1).sum()
    return float(entropy - conditional)


def agreement(a: list[int], b: list[int]) -> tuple[int, float]:
    prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return prefix, len(set(a) & set(b)) / len(a)


def main(quick: bool) -> str:
    torch.set_num_threads(1)
    items = 500 if quick else 2000
    probabilities = mc_probabilities(items)
    baal = baal_runner(probabilities)
    redux = redux_runner(probabilities)
    peers = {name: run for name, run in (("baal", baal), ("redux", redux)) if run is not None}

    bald = BALD(progress=False).score(probabilities)
    first, first_score = batchbald_select(probabilities, 1)
    assert int(first) == int(bald.argmax()) and abs(float(first_score) - float(bald.max())) < 1e-12
    if baal is not None:
        assert baal(2, 0)[0] == int(bald.argmax()), "baal's first pick is not BALD's"
    if redux is not None:  # exact joint entropies for both up to 3 picked items (C^3 = 1000 configurations)
        assert redux(4, 0) == ours(probabilities, 4, 0), "batchbald-redux and ours differ in the exact regime"

    rows = []
    for batch in (4, 10, 20) if quick else (4, 10, 30):
        times, picks = {}, {}
        for seed in (0, 1):  # ours and each peer take turns
            for name, run in (("ours", lambda b, s: ours(probabilities, b, s)), *peers.items()):
                start = time.perf_counter()
                picks[name, seed] = run(batch, seed)
                times.setdefault(name, []).append(time.perf_counter() - start)
        row = {"N": items, "T": PASSES, "C": CLASSES, "batch": batch, "M": SAMPLES, "ours_s": statistics.median(times["ours"])}
        row["ours_vs_ours_seed_prefix"], row["ours_vs_ours_seed_overlap"] = agreement(picks["ours", 0], picks["ours", 1])
        row["mi_ours"] = joint_information(probabilities, picks["ours", 0], EVALUATION_SAMPLES, seed=99)
        for name in peers:
            row[f"{name}_s"] = statistics.median(times[name])
            row[f"{name}/ours"] = row[f"{name}_s"] / row["ours_s"]
            row[f"ours_vs_{name}_prefix"], row[f"ours_vs_{name}_overlap"] = agreement(picks["ours", 0], picks[name, 0])
            row[f"{name}_vs_{name}_seed_prefix"], row[f"{name}_vs_{name}_seed_overlap"] = agreement(picks[name, 0], picks[name, 1])
            row[f"mi_{name}"] = joint_information(probabilities, picks[name, 0], EVALUATION_SAMPLES, seed=99)
        rows.append(row)
    columns = ["batch", "ours_s", "redux_s", "baal_s", "redux/ours", "baal/ours", "ours_vs_redux_prefix", "ours_vs_baal_prefix",
               "ours_vs_ours_seed_prefix", "redux_vs_redux_seed_prefix", "baal_vs_baal_seed_prefix", "mi_ours", "mi_redux", "mi_baal"]
    print_table(rows, columns)
    return write_results(
        "batchbald", rows, quick=quick, threads=1, max_configurations=MAX_CONFIGURATIONS, samples=SAMPLES,
        evaluation_samples=EVALUATION_SAMPLES, probabilities="softmax(s·z + ε_t), s ~ U[0, 3], z, ε_t ~ N(0, 1), seed 0",
        baal=None if baal is None else importlib.metadata.version("baal"),
        batchbald_redux=None if redux is None else importlib.metadata.version("batchbald-redux"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 500, batches of 10 and 20")
    args = parser.parse_args()
    print(main(quick=args.quick))
