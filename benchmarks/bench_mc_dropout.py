"""MC-dropout BALD: consistent masks against per-item masks, full replication and baal, in one run.

LeNet (torch_al.models.LeNet, seeded, untrained) scores a pool of 5000 Fashion-MNIST images (the
first 5000 training images if torch_al.datasets.load_fashion_mnist finds them, random 1×28×28
images otherwise) with BALD, T = 32 stochastic passes, batch size 256, one thread. Columns (time
in seconds for one whole selection, median of interleaved runs):
  ours         torch_al BALD: consistent masks (pass t applies one mask per dropout module to
               every item); conv1, conv2 (the prefix before the first dropout, ~96% of the
               multiply-adds) run once per forward; the rest runs chunk·B rows (chunk = T here)
  per_item     the path before consistent masks, written out here: the same prefix-once
               passes, the dropout modules in training mode drawing a mask per row
  full         torch_al BALD with prefix_once=False: every pass runs the whole model
  baal         baal's ModelWrapper.predict_on_dataset (MC dropout through baal's patched
               dropout, the batch replicated T times in memory) + baal's BALD heuristic, if
               `import baal` works
Ratios: per_item/ours (the goal: >= 1/1.1, consistent masks no slower than 1.1× per-item masks),
full/ours and baal/ours (>1: ours is faster; the goal for baal: >= 5).

Before timing, the scores are checked: ours and full apply the same masks, so their BALD scores
must agree to rounding; per-item and baal draw other masks, so baal's BALD heuristic is checked
against our BALD formula on baal's own passes, and the score distributions are reported (mean,
rank correlation with ours). A second table sweeps ``chunk`` for the prefix-once path (T = 32 and
T = 128).
"""

import argparse
import logging

import torch
from common import print_table, time_interleaved, write_results
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.models import LeNet
from torch_al.strategies import BALD

PASSES = 32
BATCH = 256


def pool_images(n: int) -> tuple[torch.Tensor, str]:
    try:
        from torch_al.datasets import load_fashion_mnist

        images, _ = load_fashion_mnist("train")
        return images[:n].unsqueeze(1).float().div(255), "Fashion-MNIST train[:n]"
    except Exception:  # no data set here: images of the same size
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), "random 1x28x28"


def ours_scores(model, pool, seed: int = 0, **options) -> tuple[torch.Tensor, BALD]:
    """All unlabeled items' BALD scores, in pool order, from a seeded selection."""
    strategy = BALD(passes=options.pop("passes", PASSES), batch_size=BATCH, progress=False, **options)
    torch.manual_seed(seed)
    indices, scores = strategy.select(model, pool, len(pool), return_scores=True)
    out = torch.empty(len(pool))
    out[indices] = scores.float()
    return out, strategy


@torch.no_grad()
def per_item_scores(model, images: torch.Tensor, passes: int = PASSES) -> torch.Tensor:
    """BALD with a mask per row: the dropout modules in training mode, the input of the first
    one (LeNet's ``drop2``) repeated T = ``passes`` times (pass-major), the prefix before it run
    once per batch; the masks come from torch's global generator."""
    model.eval()
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    for module in dropouts:
        module.train()
    handle = model.drop2.register_forward_pre_hook(  # LeNet's first dropout in execution order
        lambda module, args: (args[0].unsqueeze(0).expand(passes, *args[0].shape).flatten(0, 1),))
    try:
        scores = []
        for batch in images.split(BATCH):
            probabilities = model(batch).softmax(-1).unflatten(0, (passes, batch.shape[0])).transpose(0, 1)
            scores.append(BALD(progress=False).score(probabilities))
    finally:
        handle.remove()
        model.eval()
    return torch.cat(scores)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def baal_runner(model, dataset):
    """(run, scores) for baal, or None when baal does not import."""
    try:
        from baal.active.heuristics import BALD as BaalBALD
        from baal.bayesian.dropout import patch_module
        from baal.modelwrapper import ModelWrapper, TrainingArgs
    except Exception as error:
        print(f"baal skipped: {error!r}")
        return None
    import copy

    patched = patch_module(copy.deepcopy(model).eval(), inplace=True)  # dropout always on
    wrapper = ModelWrapper(patched, TrainingArgs(criterion=torch.nn.CrossEntropyLoss(), batch_size=BATCH, use_cuda=False, workers=0, replicate_in_memory=True))
    heuristic = BaalBALD()

    def run(seed: int = 0, with_predictions: bool = False):
        torch.manual_seed(seed)
        predictions = wrapper.predict_on_dataset(dataset, iterations=PASSES, verbose=False)  # [N, C, T] logits
        scores = torch.as_tensor(heuristic.get_uncertainties(predictions)).float()
        return (scores, torch.as_tensor(predictions)) if with_predictions else scores

    return run


def main(quick: bool) -> str:
    torch.set_num_threads(1)
    logging.getLogger("torch_al").setLevel(logging.WARNING)
    n = 500 if quick else 5000
    images, source = pool_images(n)
    dataset = TensorDataset(images, torch.zeros(n, dtype=torch.int64))
    pool = ActivePool(dataset)
    torch.manual_seed(0)
    model = LeNet().eval()

    # Agreement before timing.
    ours, strategy = ours_scores(model, pool)
    full, _ = ours_scores(model, pool, prefix_once=False)
    ours_vs_full = float((ours - full).abs().max())
    assert ours_vs_full < 1e-4, f"prefix-once and full replication disagree by {ours_vs_full}"
    print(f"pool: {source}, N = {n}; ours vs full replication (same masks): max |Δ score| = {ours_vs_full:.2e}; "
          f"ours charges {strategy.last_cost.forward} forwards (T·N = {PASSES * n} + probe)")
    baal = baal_runner(model, dataset)
    agreement = {"ours_vs_full_max_abs": ours_vs_full}
    if baal is not None:
        baal_scores, predictions = baal(with_predictions=True)
        formula = BALD(progress=False).score(predictions.double().softmax(1).transpose(1, 2)).float()
        agreement["baal_heuristic_vs_our_formula_max_abs"] = float((baal_scores - formula).abs().max())
        assert agreement["baal_heuristic_vs_our_formula_max_abs"] < 1e-4, agreement
        agreement["baal_vs_full_max_abs"] = float((baal_scores - full).abs().max())
        agreement["baal_vs_ours_rank_correlation"] = rank_correlation(baal_scores, ours)
        agreement["mean_score_ours_baal"] = [float(ours.mean()), float(baal_scores.mean())]
        print(f"baal: its BALD heuristic vs our formula on its passes: max |Δ| = {agreement['baal_heuristic_vs_our_formula_max_abs']:.2e}; "
              f"its masks differ from ours (max |Δ score| vs full replication {agreement['baal_vs_full_max_abs']:.2e}, "
              f"rank correlation {agreement['baal_vs_ours_rank_correlation']:.3f}, mean score ours {float(ours.mean()):.4g} / baal {float(baal_scores.mean()):.4g})")

    per_item = per_item_scores(model, images)
    agreement["per_item_vs_ours_rank_correlation"] = rank_correlation(per_item, ours)
    agreement["mean_score_ours_per_item"] = [float(ours.mean()), float(per_item.mean())]
    print(f"per-item masks: rank correlation with ours {agreement['per_item_vs_ours_rank_correlation']:.3f}, "
          f"mean score ours {float(ours.mean()):.4g} / per-item {float(per_item.mean()):.4g}")
    calls = {"ours": lambda: ours_scores(model, pool), "per_item": lambda: per_item_scores(model, images), "full": lambda: ours_scores(model, pool, prefix_once=False)}
    if baal is not None:
        calls["baal"] = baal
    times = time_interleaved(calls, repeats=1 if quick else 3)
    row = {"N": n, "T": PASSES, "batch": BATCH, **{f"{k}_s": v for k, v in times.items()}, "per_item/ours": times["per_item"] / times["ours"], "full/ours": times["full"] / times["ours"]}
    if baal is not None:
        row["baal/ours"] = times["baal"] / times["ours"]
    columns = ["N", "T", "batch", "ours_s", "per_item_s", "full_s", "baal_s", "per_item/ours", "full/ours", "baal/ours"]
    print_table([row], columns)

    # chunk sweep of the prefix-once path (None: the default rule).
    sweep_calls = {}
    for passes, chunks in ((PASSES, (4, 8, 16, None)), (128, (32, None, 128))):
        for chunk in chunks:
            sweep_calls[(passes, chunk)] = lambda p=passes, c=chunk: ours_scores(model, pool, passes=p, chunk=c)
    sweep_times = time_interleaved({str(k): v for k, v in sweep_calls.items()}, repeats=1 if quick else 2)
    sweep = [{"T": p, "chunk": "auto" if c is None else c, "ours_s": sweep_times[str((p, c))]} for p, c in sweep_calls]
    for r in sweep:
        r["vs_auto"] = r["ours_s"] / sweep_times[str((r["T"], None))]
    print_table(sweep, ["T", "chunk", "ours_s", "vs_auto"])
    return write_results(
        "mc_dropout", [row], quick=quick, pool=source, threads=1, agreement=agreement, chunk_sweep=sweep,
        baal=None if baal is None else __import__("importlib.metadata").metadata.version("baal"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a pool of 500 images, one timing run each")
    args = parser.parse_args()
    print(main(quick=args.quick))
