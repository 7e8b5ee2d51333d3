"""IntegratedGradients and compute_attention against an explicit loop over the path steps."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from torch_al.attention import compute_attention
from torch_al.descriptors import compute_descriptors
from torch_al.models import LeNet, SmallResNet
from torch_al.nn import IntegratedGradients


def reference_attention(model, layers, x, labels, steps, baseline=0.0):
    """(1/K) Σ_k pool(∂L(f(b + k/K (x − b)), y)/∂F), one step at a time, with autograd.grad on
    the feature maps themselves."""
    modules = dict(model.named_modules())
    total = {name: 0.0 for name in layers}
    for k in range(1, steps + 1):
        outputs = {}
        handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o)) for n in layers]
        try:
            logits = model(baseline + (k / steps) * (x - baseline))
        finally:
            for handle in handles:
                handle.remove()
        loss = F.cross_entropy(logits, labels, reduction="sum")
        grads = torch.autograd.grad(loss, [outputs[n] for n in layers])
        for name, grad in zip(layers, grads):
            total[name] = total[name] + (grad.mean(dim=tuple(range(2, grad.dim()))) if grad.dim() > 2 else grad)
    return {name: value / steps for name, value in total.items()}


CASES = {
    "lenet": (LeNet, ["conv1", "act2", "fc1"], (3, 1, 28, 28)),
    "resnet": (lambda: SmallResNet(widths=(4, 6), blocks_per_stage=1), ["stem", "stage1", "stage2.0.conv1", "stage2"], (2, 1, 12, 12)),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("steps, chunk", [(1, 1), (5, 2), (6, 3), (7, 16), (8, 8)])
def test_matches_explicit_loop_over_steps(case, steps, chunk):
    make_model, layers, shape = CASES[case]
    model = make_model().double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    labels = torch.randint(0, 10, (shape[0],))
    attention, used = IntegratedGradients(model, layers, steps=steps, chunk=chunk)(x, labels)
    expected = reference_attention(model, layers, x, labels, steps)
    assert list(attention) == layers and used is labels
    for name in layers:
        assert attention[name].dtype == torch.float64
        assert_close(attention[name], expected[name], msg=name)


def test_tensor_baseline_and_argmax_pseudo_labels():
    model = LeNet().double().train()
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    baseline = torch.rand(1, 28, 28, dtype=torch.float64)
    attention, labels = IntegratedGradients(model, ["conv2", "fc1"], steps=6, baseline=baseline, chunk=4)(x)
    assert model.training, "the model's mode is restored"
    model.eval()
    assert torch.equal(labels, model(x).argmax(1))
    expected = reference_attention(model, ["conv2", "fc1"], x, labels, 6, baseline)
    for name in expected:
        assert_close(attention[name], expected[name], msg=name)


def test_float32_model_accumulates_in_float32_and_adds_into_out():
    model = LeNet().eval()
    x = torch.randn(2, 1, 28, 28)
    labels = torch.tensor([3, 7])
    integrated_gradients = IntegratedGradients(model, ["conv1", "fc1"], steps=4, chunk=3)
    attention, _ = integrated_gradients(x, labels)
    store = torch.ones(5, 60)
    out = {"conv1": store[1:3, :10], "fc1": store[1:3, 10:]}
    integrated_gradients(x, labels, out=out)
    assert attention["conv1"].dtype == torch.float32
    assert_close(store[1:3], 1 + torch.cat([attention["conv1"], attention["fc1"]], dim=1))
    assert (store[[0, 3, 4]] == 1).all()


def test_memory_is_bounded_by_chunk_and_labels_cost_no_extra_pass():
    model = LeNet().eval()
    batch_rows = []
    model.register_forward_pre_hook(lambda m, inputs: batch_rows.append(inputs[0].shape[0]))
    IntegratedGradients(model, ["conv2"], steps=10, chunk=4)(torch.randn(3, 1, 28, 28))
    assert batch_rows == [12, 12, 6]  # K = 10 steps of 3 images in passes of at most 4 steps


def test_completeness_at_the_input_layer():
    """With the input itself as the layer, (x − b) · average gradient sums to L(x) − L(b), up to the
    Riemann-sum error that shrinks as K grows."""
    model = nn.Sequential(nn.Identity(), nn.Unflatten(1, (1, 28, 28)), LeNet()).double().eval()
    x = torch.rand(4, 784, dtype=torch.float64)
    baseline = torch.full((784,), 0.25, dtype=torch.float64)
    labels = torch.tensor([1, 4, 7, 9])

    def loss(inputs):
        return F.cross_entropy(model(inputs), labels, reduction="none")

    difference = loss(x) - loss(baseline.expand_as(x))
    errors = {}
    for steps in (8, 256):
        attention, _ = IntegratedGradients(model, ["0"], steps=steps, baseline=baseline, chunk=64)(x, labels)
        errors[steps] = ((x - baseline) * attention["0"]).sum(1) - difference
    assert errors[256].abs().max() < errors[8].abs().max() / 4  # the Riemann error falls about as 1/K
    assert_close(errors[256], torch.zeros(4, dtype=torch.float64), atol=1e-2 * difference.abs().max().item(), rtol=0)


def _loader(n=11, batch_size=4, dtype=torch.float64):
    x = torch.randn(n, 1, 28, 28, dtype=dtype)
    y = torch.randint(0, 10, (n,))
    return DataLoader(TensorDataset(x, y), batch_size=batch_size), x, y


def test_one_step_is_the_gradient_descriptor():
    model = LeNet().double()
    loader, _, _ = _loader()
    layers = ["conv1", "conv2", "fc1"]
    attention = compute_attention(model, loader, layers, steps=1, progress=False)
    descriptors = compute_descriptors(model, loader, layers, capture="gradients", progress=False)
    assert attention.columns == descriptors.columns
    assert torch.equal(attention.labels, descriptors.labels)
    assert_close(attention.attention, descriptors.gradients)


@pytest.mark.parametrize("labels", ["argmax", "given"])
def test_compute_attention_fills_the_store_in_loader_order(labels):
    model = LeNet().double()
    loader, x, y = _loader()
    layers = ["conv2", "fc1"]
    result = compute_attention(model, loader, layers, steps=5, chunk=2, labels=y if labels == "given" else "argmax", progress=False)
    model.eval()
    expected_labels = y if labels == "given" else model(x).argmax(1)
    expected = reference_attention(model, layers, x, expected_labels, 5)
    assert result.columns == {"conv2": slice(0, 20), "fc1": slice(20, 70)}
    assert result.attention.shape == (11, 70) and torch.equal(result.labels, expected_labels)
    for name, span in result.columns.items():
        assert_close(result.attention[:, span], expected[name], msg=name)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=0), "steps must be a positive int, got 0"),
        (dict(steps=True), "steps must be a positive int, got True"),
        (dict(steps=2.5), "steps must be a positive int"),
        (dict(chunk=0), "chunk must be a positive int, got 0"),
        (dict(layers=["nope"]), "layer 'nope' is not in the model"),
    ],
)
def test_bad_arguments(kwargs, message):
    kwargs = {"layers": ["conv1"], **kwargs}
    with pytest.raises(ValueError, match=message):
        IntegratedGradients(LeNet(), **kwargs)


def test_bad_calls():
    integrated_gradients = IntegratedGradients(LeNet(), ["conv1"], steps=2, baseline=torch.zeros(3, 28, 28))
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"baseline of shape \(3, 28, 28\) does not broadcast to the batch shape \(2, 1, 28, 28\)"):
        integrated_gradients(x)
    integrated_gradients.baseline = 0.0
    with pytest.raises(ValueError, match=r"labels must be an int64 Tensor\[2\]"):
        integrated_gradients(x, torch.tensor([1, 2, 3]))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="outside torch.inference_mode"):
        integrated_gradients(x)
    with pytest.raises(ValueError, match=r"labels must be an int64 Tensor\[11\]"):
        compute_attention(LeNet(), _loader()[0], ["conv1"], labels=torch.zeros(3, dtype=torch.int64), progress=False)
