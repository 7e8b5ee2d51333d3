"""Cost of descriptor capture when scoring a Fashion-MNIST pool (issue: foundation).

Variants, each over the same pool and model:
  plain_input_grad  forward + backward to the input, no hooks (the autograd work capture needs)
  plain_train_step  forward + loss.backward() with parameter gradients (a training step)
  capture           torch_al.compute_descriptors: features and gradients of 3 layers pooled
                    into an (N, L) store by pool_features / pool_features_into
  naive_capture     what peer code does: keep every full feature map and its gradient, pool at
                    the end (memory O(N·C·H·W))
Goal: capture within 1.15x of plain_input_grad, and its peak memory growing by O(N·L).
"""

import torch
import torch.nn.functional as F
from common import print_table, run_isolated, time_interleaved, write_results
from torch.utils.data import DataLoader, TensorDataset

from torch_al.datasets import as_float_images, load_fashion_mnist
from torch_al.descriptors import compute_descriptors
from torch_al.models import LeNet, SmallResNet

MODELS = {
    "lenet": (LeNet, ["conv1", "conv2", "fc1"]),
    "resnet": (SmallResNet, ["stage1", "stage2", "stage3"]),
}
BATCH = 250


def _setup(model_name: str, pool_size: int):
    torch.manual_seed(0)
    make_model, layers = MODELS[model_name]
    model = make_model().eval()
    images, _ = load_fashion_mnist("train")
    pool = as_float_images(images[:pool_size])
    return model, layers, DataLoader(TensorDataset(pool), batch_size=BATCH)


def _plain(model, loader, train_step: bool) -> None:
    for (x,) in loader:
        x.requires_grad_(not train_step)
        logits = model(x)
        loss = F.cross_entropy(logits, logits.argmax(1), reduction="sum")
        if train_step:
            loss.backward()
        else:
            torch.autograd.grad(loss, x)


def _naive_capture(model, loader, layers) -> torch.Tensor:
    modules = dict(model.named_modules())
    maps = {n: [] for n in layers}
    grads = {n: [] for n in layers}

    def keep(name):
        def hook(module, inputs, output):
            maps[name].append(output.detach())
            output.register_hook(grads[name].append)

        return hook

    handles = [modules[n].register_forward_hook(keep(n)) for n in layers]
    _plain(model, loader, train_step=False)
    for handle in handles:
        handle.remove()

    def pooled(kept):
        return torch.cat([torch.cat([t.mean((2, 3)) if t.dim() == 4 else t for t in kept[n]]) for n in layers], 1)

    return torch.cat([pooled(maps), pooled(grads)], 1)


def _run_variant(model, layers, loader, variant: str) -> None:
    if variant == "capture":
        compute_descriptors(model, loader, layers, capture="both", progress=False)
    elif variant == "naive_capture":
        _naive_capture(model, loader, layers)
    else:
        _plain(model, loader, train_step=variant == "plain_train_step")


VARIANTS = ("plain_input_grad", "plain_train_step", "capture", "naive_capture")


def peak_memory(model_name: str, pool_size: int, variant: str) -> dict:
    """Run in a fresh process: peak RSS of one pass of `variant` over the pool."""
    import gc

    from common import peak_rss_mib, reset_peak_rss

    model, layers, loader = _setup(model_name, pool_size)
    gc.collect()
    reset_peak_rss()
    before = peak_rss_mib()
    _run_variant(model, layers, loader, variant)
    return {"peak_rss_mib": peak_rss_mib() - before}


def main(quick: bool = False) -> str:
    sizes = {"lenet": [1000] if quick else [2000, 8000], "resnet": [250] if quick else [500, 2000]}
    rows = []
    for model_name, pool_sizes in sizes.items():
        for pool_size in pool_sizes:
            model, layers, loader = _setup(model_name, pool_size)
            result = compute_descriptors(model, loader, layers, progress=False)
            naive = _naive_capture(model, loader, layers)
            torch.testing.assert_close(torch.cat([result.features, result.gradients], 1), naive, atol=1e-5, rtol=1e-4)
            seconds = time_interleaved(
                {v: (lambda v=v: _run_variant(model, layers, loader, v)) for v in VARIANTS}, repeats=1 if quick else 5
            )
            memory = {v: run_isolated("bench_pool_features", "peak_memory", model_name=model_name, pool_size=pool_size, variant=v) for v in VARIANTS}
            store_mib = 2 * pool_size * result.features.shape[1] * 4 / 2**20
            rows.append(
                {
                    "model": model_name,
                    "pool": pool_size,
                    "L": result.features.shape[1],
                    **{f"{v}_s": seconds[v] for v in VARIANTS},
                    "capture_over_input_grad": seconds["capture"] / seconds["plain_input_grad"],
                    "capture_over_train_step": seconds["capture"] / seconds["plain_train_step"],
                    **{f"{v}_peak_mib": memory[v]["peak_rss_mib"] for v in VARIANTS},
                    "capture_extra_mib": memory["capture"]["peak_rss_mib"] - memory["plain_input_grad"]["peak_rss_mib"],
                    "naive_extra_mib": memory["naive_capture"]["peak_rss_mib"] - memory["plain_input_grad"]["peak_rss_mib"],
                    "store_mib": store_mib,
                }
            )
    print_table(
        rows,
        ["model", "pool", "L", "plain_input_grad_s", "capture_s", "capture_over_input_grad", "capture_over_train_step",
         "capture_extra_mib", "naive_extra_mib", "store_mib"],
    )
    return write_results("pool_features", rows, goal="capture_over_input_grad <= 1.15; capture_extra_mib ~ store_mib (O(N*L))", batch=BATCH)


if __name__ == "__main__":
    main()
