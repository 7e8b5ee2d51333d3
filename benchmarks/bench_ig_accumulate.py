"""Integrated-gradient attention (EBA) at 3 layers, K = 128: torch_al vs captum, on Fashion-MNIST.

Baselines, at the same K, quadrature (right Riemann sum: k/K, k = 1..K) and internal batch size
(chunk x batch rows per forward):
- captum ``InternalInfluence``: the same quantity (input scaled along the path, gradient at the
  layer, summed with step size 1/K), one layer per call. Given -log_softmax as the forward and ŷ as
  the target, its attribution pooled over space is our attention exactly, so we check agreement.
- captum ``LayerIntegratedGradients``: a different quantity (it interpolates the layer output
  itself and multiplies by its difference), so cost only. Also one layer per call: given several
  layers of one chain it replaces each layer's output, which cuts the earlier ones from the graph.
Each variant runs in its own process (peak RSS is a per-process high-water mark), reset after
warm-up so it counts the workload only. At equal rows per pass both sides hold one chunk's
activation graph, so peak memory is expected near parity; glibc's heap makes it noisy (~±15%).
"""

import gzip
import os
import time

import torch
import torch.nn.functional as F
from common import print_table, run_isolated, write_results

DATA_DIR = "/usr/share/datasets/fashion-mnist"
LAYERS = {"lenet": ["conv1", "conv2", "fc1"], "resnet": ["stage1", "stage2", "stage3"]}
# images, batch, chunk (path steps per pass; captum's internal_batch_size = chunk * batch)
WORKLOADS = {False: {"lenet": (64, 16, 16), "resnet": (8, 4, 16)}, True: {"lenet": (8, 8, 16), "resnet": (1, 1, 16)}}
STEPS = {False: 128, True: 16}  # --quick is a smoke run of the same code at a short path
VARIANTS = ("torch_al", "captum_internal_influence", "captum_layer_ig")


def load_fashion_mnist_images(count: int) -> torch.Tensor:
    """The first `count` test images, normalised, as Tensor[count, 1, 28, 28] float32."""
    path = os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: install the Debian package dataset-fashion-mnist")
    with gzip.open(path, "rb") as f:
        data = f.read()
    if int.from_bytes(data[:4], "big") != 2051:
        raise ValueError(f"{path} is not an IDX image file")
    images = torch.frombuffer(bytearray(data[16 : 16 + count * 784]), dtype=torch.uint8).view(count, 1, 28, 28)
    return (images.float() / 255 - 0.2860) / 0.3530


def make_model(name: str) -> torch.nn.Module:
    from torch_al.models import LeNet, SmallResNet

    torch.manual_seed(0)
    return (LeNet() if name == "lenet" else SmallResNet()).eval()


def negative_log_softmax(model):
    """captum differentiates a chosen output: -log softmax at ŷ is our per-sample cross-entropy."""
    return lambda inputs: -F.log_softmax(model(inputs), dim=1)


def attention(variant: str, model, x: torch.Tensor, layers: list[str], chunk: int, steps: int, labels=None) -> dict:
    """Pooled attention per layer of one batch (for captum_layer_ig: its attribution, pooled)."""
    if variant == "torch_al":
        from torch_al.nn import IntegratedGradients

        return IntegratedGradients(model, layers, steps=steps, chunk=chunk)(x, labels)[0]
    from captum.attr import InternalInfluence, LayerIntegratedGradients

    modules = dict(model.named_modules())
    if labels is None:
        with torch.no_grad():
            labels = model(x).argmax(1)
    common = dict(target=labels, n_steps=steps, method="riemann_right", internal_batch_size=chunk * x.shape[0])
    method = InternalInfluence if variant == "captum_internal_influence" else LayerIntegratedGradients
    maps = [method(negative_log_softmax(model), modules[n]).attribute(x, **common) for n in layers]
    return {n: m.mean(dim=tuple(range(2, m.dim()))) if m.dim() > 2 else m for n, m in zip(layers, maps)}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak_rss() -> int:
    """Restarts the process's peak-RSS count (Linux clear_refs) and returns the current RSS in KiB,
    so that the peak read afterwards belongs to the workload and not to imports or data loading."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


def count_passes(model) -> dict:
    """Rows through the model's forward, and through its backward, per call."""
    counts = {"forward": 0, "backward": 0}

    def on_forward(module, inputs, output):
        counts["forward"] += output.shape[0]
        if output.requires_grad:
            output.register_hook(lambda grad: counts.__setitem__("backward", counts["backward"] + grad.shape[0]))

    model.register_forward_hook(on_forward)
    return counts


def run_variant(variant: str, model_name: str, quick: bool) -> dict:
    """One variant over the whole workload, in a fresh process: time, extra peak RSS, passes."""
    torch.manual_seed(0)
    images, batch, chunk = WORKLOADS[quick][model_name]
    model = make_model(model_name)
    x = load_fashion_mnist_images(images)
    attention(variant, model, x[:1], LAYERS[model_name], 2, 2)  # warm-up: lazy init, kernel choice
    counts = count_passes(model)
    base_kib = reset_peak_rss()
    start = time.perf_counter()
    for first in range(0, images, batch):
        attention(variant, model, x[first : first + batch], LAYERS[model_name], chunk, STEPS[quick])
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "extra_peak_mib": (_status_kib("VmHWM") - base_kib) / 1024,
        "forward_per_image": counts["forward"] / images,
        "backward_per_image": counts["backward"] / images,
    }


def agreement(model_name: str, steps: int) -> float:
    """Largest |ours - captum InternalInfluence| relative to the largest |attention|, 2 images."""
    model = make_model(model_name)
    x = load_fashion_mnist_images(2)
    with torch.no_grad():
        labels = model(x).argmax(1)
    ours = attention("torch_al", model, x, LAYERS[model_name], 16, steps, labels)
    theirs = attention("captum_internal_influence", model, x, LAYERS[model_name], 16, steps, labels)
    return max(((ours[n] - theirs[n]).abs().max() / theirs[n].abs().max()).item() for n in ours)


def main(quick: bool) -> str:
    rows = []
    for model_name in LAYERS:
        error = agreement(model_name, steps=16)
        if error > 1e-4:
            raise AssertionError(f"{model_name}: torch_al and captum InternalInfluence differ by {error:.2e} (relative)")
        images, batch, chunk = WORKLOADS[quick][model_name]
        results = {v: run_isolated("bench_ig_accumulate", "run_variant", variant=v, model_name=model_name, quick=quick) for v in VARIANTS}
        for variant, result in results.items():
            rows.append(
                {
                    "model": model_name,
                    "variant": variant,
                    "images": images,
                    "K": STEPS[quick],
                    "rows/pass": chunk * batch,
                    "s/image": result["seconds"] / images,
                    "ours_faster_x": result["seconds"] / results["torch_al"]["seconds"],
                    "extra_peak_MiB": result["extra_peak_mib"],
                    "fwd/image": result["forward_per_image"],
                    "bwd/image": result["backward_per_image"],
                    "max_rel_diff": f"{error:.1e}" if variant == "captum_internal_influence" else "",
                }
            )
    columns = ["model", "variant", "images", "K", "rows/pass", "s/image", "ours_faster_x", "extra_peak_MiB", "fwd/image", "bwd/image", "max_rel_diff"]
    print_table(rows, columns)
    return write_results("ig_accumulate", rows, quick=quick, steps=STEPS[quick], layers=LAYERS, method="riemann_right")
