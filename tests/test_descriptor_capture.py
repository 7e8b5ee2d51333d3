"""DescriptorCapture and compute_descriptors against per-sample gradients from torch.func."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close
from torch.utils.data import DataLoader, TensorDataset

from torch_al.descriptors import compute_descriptors
from torch_al.models import LeNet, SmallResNet
from torch_al.nn import DescriptorCapture


class SequenceNet(nn.Module):
    """(B, T, C) outputs, channels last."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.mix = nn.Linear(6, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.mix(torch.tanh(self.embed(x)))).mean(1))


class InplaceNet(nn.Module):
    """conv1's output is overwritten by an in-place ReLU and also feeds a residual branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        y = self.act(self.conv1(x))
        return self.head((self.conv2(y) + y).mean((2, 3)))


def reference_descriptors(model, layers, x, y, channel_dim=1):
    """Per-sample features and ∂L_i/∂z_i, each sample on its own (vmap over grad), pooled by mean."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())

    def per_sample_loss(perturbations, xi, yi):
        outputs = {}

        def add_perturbation(name):
            def hook(module, inputs, output):
                outputs[name] = output
                return output + perturbations[name]

            return hook

        handles = [modules[n].register_forward_hook(add_perturbation(n)) for n in layers]
        try:
            logits = torch.func.functional_call(model, params, (xi.unsqueeze(0),))
        finally:
            for handle in handles:
                handle.remove()
        loss = F.cross_entropy(logits, yi.unsqueeze(0))
        return loss, {n: o.squeeze(0) for n, o in outputs.items()}

    with torch.no_grad():
        shapes = {}
        handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape[1:])) for n in layers]
        model(x[:1])
        for handle in handles:
            handle.remove()
    zeros = {n: torch.zeros((1, *shapes[n]), dtype=x.dtype) for n in layers}
    grads, outputs = torch.func.vmap(torch.func.grad(per_sample_loss, has_aux=True), in_dims=(None, 0, 0))(zeros, x, y)

    def pool(t):
        t = t.squeeze(1)  # the per-sample batch dim of 1
        t = t.movedim(channel_dim if channel_dim < 0 else channel_dim, 1) if channel_dim != 1 else t
        return t.mean(dim=tuple(range(2, t.dim()))) if t.dim() > 2 else t

    features = {n: pool(outputs[n].unsqueeze(1)) for n in layers}
    gradients = {n: pool(grads[n]) for n in layers}
    return features, gradients


CASES = {
    "resnet": (lambda: SmallResNet(widths=(4, 6), blocks_per_stage=1), ["stem", "stage1", "stage2.0.conv1", "stage2"], (6, 1, 12, 12), 1),
    "lenet": (LeNet, ["conv1", "act2", "fc1"], (5, 1, 28, 28), 1),
    "inplace_residual": (InplaceNet, ["conv1", "conv2"], (4, 1, 6, 6), 1),
    "sequence": (SequenceNet, ["embed", "mix"], (5, 7, 4), -1),
}


@pytest.mark.parametrize("case", CASES)
def test_pooled_gradients_equal_per_sample_gradients(case):
    make_model, layers, shape, channel_dim = CASES[case]
    model = make_model().double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    y = torch.randint(0, 3, (shape[0],))
    ref_features, ref_gradients = reference_descriptors(model, layers, x, y, channel_dim)

    with DescriptorCapture(model, layers, capture="both", channel_dim=channel_dim) as capture:
        logits = model(x)
        F.cross_entropy(logits, y, reduction="sum").backward()
        assert list(capture.features) == layers and list(capture.gradients) == layers
        for name in layers:
            assert_close(capture.features[name], ref_features[name], msg=name)
            assert_close(capture.gradients[name], ref_gradients[name], msg=name)


def test_hooks_are_removed_on_close():
    model = LeNet()
    with DescriptorCapture(model, ["conv1"]) as capture:
        model(torch.randn(2, 1, 28, 28))
        assert "conv1" in capture.features
    assert not model.conv1._forward_hooks and not model._forward_pre_hooks


def test_layers_given_as_modules_and_features_only_needs_no_grad():
    model = LeNet().eval()
    with DescriptorCapture(model, [model.fc1, model.conv2], capture="features") as capture, torch.no_grad():
        model(torch.randn(3, 1, 28, 28))
    assert list(capture.features) == ["fc1", "conv2"]
    assert capture.features["conv2"].shape == (3, 20) and capture.gradients == {}


@pytest.mark.parametrize(
    "layers, capture, error, message",
    [
        (["nope"], "both", ValueError, "layer 'nope' is not in the model"),
        (["conv1", "conv1"], "both", ValueError, "given twice"),
        ([], "both", ValueError, "at least one layer"),
        ("conv1", "both", TypeError, "sequence of names"),
        (["conv1"], "weights", ValueError, "capture must be one of"),
    ],
)
def test_bad_arguments(layers, capture, error, message):
    with pytest.raises(error, match=message):
        DescriptorCapture(LeNet(), layers, capture=capture)


def test_a_layer_run_twice_in_one_forward_is_an_error():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x))

    model = Twice()
    with DescriptorCapture(model, ["lin"]), pytest.raises(RuntimeError, match="ran twice in one forward"):
        model(torch.randn(2, 3))


def _loader(n=23, batch_size=5):
    x = torch.randn(n, 1, 28, 28)
    y = torch.randint(0, 10, (n,))
    return DataLoader(TensorDataset(x, y), batch_size=batch_size), x, y


@pytest.mark.parametrize("labels", ["argmax", "given"])
def test_compute_descriptors_fills_stores_in_loader_order(labels):
    model = LeNet().double().train()
    loader, x, y = _loader()
    loader = DataLoader(TensorDataset(x.double(), y), batch_size=5)
    layers = ["conv1", "conv2", "fc1"]
    result = compute_descriptors(model, loader, layers, labels=y if labels == "given" else "argmax", progress=False)

    assert model.training, "the model's mode is restored"
    model.eval()
    expected_labels = y if labels == "given" else model(x.double()).argmax(1)
    ref_features, ref_gradients = reference_descriptors(model, layers, x.double(), expected_labels)
    assert result.columns == {"conv1": slice(0, 10), "conv2": slice(10, 30), "fc1": slice(30, 80)}
    assert result.features.shape == result.gradients.shape == (23, 80)
    assert torch.equal(result.labels, expected_labels)
    for name, span in result.columns.items():
        assert_close(result.features[:, span], ref_features[name], msg=name)
        assert_close(result.gradients[:, span], ref_gradients[name], msg=name)


def test_compute_descriptors_features_only():
    loader, x, _ = _loader(7, 3)
    result = compute_descriptors(LeNet(), loader, ["conv2"], capture="features", progress=False)
    assert result.gradients is None and result.features.shape == (7, 20)


def test_compute_descriptors_rejects_bad_labels_and_empty_loaders():
    loader, _, y = _loader()
    with pytest.raises(ValueError, match=r"labels must be an int64 Tensor\[23\]"):
        compute_descriptors(LeNet(), loader, ["conv1"], labels=y[:3], progress=False)
    with pytest.raises(ValueError, match="no samples"):
        compute_descriptors(LeNet(), DataLoader(TensorDataset(torch.empty(0, 1, 28, 28)), batch_size=4), ["conv1"], progress=False)


def test_compute_descriptors_reports_a_layer_that_does_not_affect_the_loss():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.unused = nn.Linear(3, 2)

        def forward(self, x):
            self.unused(x)
            return self.used(x)

    loader = DataLoader(TensorDataset(torch.randn(4, 3)), batch_size=2)
    with pytest.raises(ValueError, match=r"\['unused'\] do not affect the loss"):
        compute_descriptors(Branch(), loader, ["used", "unused"], progress=False)
