"""Frozen-embedding mode: strategies on a frozen backbone's stored features and a trainable head
(``FeatureHead``) select what they select on the whole model, without running the backbone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool
from torch_al.descriptors import standardise
from torch_al.nn import FeatureHead
from torch_al.strategies import BALD, PFK, Committee, CoreSet, EnsembleEntropy, make_strategy

HAS_OPS = all(hasattr(torch.ops.torch_al, op) for op in ("pfk_topk", "kcenter_greedy"))
needs_ops = pytest.mark.skipif(not HAS_OPS, reason="needs the compiled ops")


class Backbone(nn.Module):
    """A small CNN whose output features go through ``features`` (an Identity, the hook point)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.features = nn.Identity()

    def forward(self, x):
        return self.features(self.body(x))


class WholeModel(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


def problem(seed: int = 0):
    torch.manual_seed(seed)
    images = torch.rand(160, 1, 8, 8, dtype=torch.float64)
    labels = torch.arange(160) % 3
    images[:, 0, :4] += labels.view(-1, 1, 1) / 2  # a class signal
    backbone = Backbone().double().eval()
    head = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    with torch.no_grad():
        features = backbone(images)
    return images, labels, backbone, head, features


@needs_ops
@pytest.mark.parametrize("name", ["pfk", "pcc", "pfk-sum-argmax"])
def test_matching_on_stored_features_picks_what_it_picks_on_the_whole_model(name):
    images, labels, backbone, head, features = problem()
    validation, stored_validation = (images[:40], labels[:40]), (features[:40], labels[:40])
    whole = make_strategy(name, validation=validation, layers=["backbone.features"], progress=False)
    frozen = make_strategy(name, validation=stored_validation, progress=False)
    pool, stored = ActivePool(TensorDataset(images[40:], labels[40:])), ActivePool(TensorDataset(features[40:], labels[40:]))
    stored.label(torch.arange(0, 120, 7), labels[40::7]), pool.label(torch.arange(0, 120, 7), labels[40::7])
    picked = frozen.select(FeatureHead(head).eval(), stored, 12)
    assert torch.equal(picked, whole.select(WholeModel(backbone, head).eval(), pool, 12))
    assert frozen.last_cost.backward == (0 if name == "pcc" else whole.last_cost.backward)


@needs_ops
def test_pfk_descriptors_of_a_linear_head_are_the_features_and_w_transposed_times_p_minus_y():
    _, labels, _, _, features = problem()
    linear = nn.Linear(16, 3).double()
    model = FeatureHead(linear, widths=(10, 6)).eval()
    pfk = PFK(validation=(features[:5], labels[:5]), progress=False)
    described = pfk.describe(model, model.descriptor_layers, DataLoader(TensorDataset(features), batch_size=64), labels, features=True, gradients=True)
    columns = {"layers.0": slice(0, 10), "layers.1": slice(10, 16)}
    gradient = (linear(features).softmax(1) - F.one_hot(labels, 3)) @ linear.weight  # ∂L_i/∂x_i of the summed cross entropy
    for got, expected in zip(described.features + described.gradients, standardise(features, columns) + standardise(gradient.detach(), columns)):
        torch.testing.assert_close(got, expected)


@needs_ops
def test_embeddings_dropout_and_committees_run_on_the_head():
    _, labels, _, _, features = problem()
    pool = ActivePool(TensorDataset(features, labels))
    pool.label(torch.arange(0, 160, 9), labels[::9])
    linear_head = FeatureHead(nn.Linear(16, 3).double())
    from torch_al.ops.kcenter_greedy import kcenter_greedy

    expected, _ = kcenter_greedy(features, 6, pool.labeled_mask)
    assert torch.equal(CoreSet().select(linear_head, pool, 6), expected)  # the last Linear's input: the stored features
    dropout_head = FeatureHead(nn.Sequential(nn.Dropout(0.3), nn.Linear(16, 3))).double()
    picked, scores = BALD(passes=16, progress=False).select(dropout_head, pool, 4, return_scores=True)
    assert picked.numel() == 4 and bool((scores > 0).all())
    committee = Committee.build(lambda: FeatureHead(nn.Linear(16, 3)).double(), members=3)
    assert EnsembleEntropy(progress=False).select(committee, pool, 4).numel() == 4
    assert make_strategy("typiclust", features=features).select(linear_head, pool, 4).numel() == 4


def test_bad_widths_and_features_are_named():
    with pytest.raises(ValueError, match=r"widths must be positive ints, one per stored layer, got \(768, 0\)"):
        FeatureHead(nn.Linear(768, 2), widths=(768, 0))
    with pytest.raises(TypeError, match="head must be an nn.Module"):
        FeatureHead("linear")
    with pytest.raises(ValueError, match=r"the stored features must be Tensor\[B, 12\]; got shape \(2, 10\)"):
        FeatureHead(nn.Linear(12, 2), widths=(6, 6))(torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"the stored features must be Tensor\[B, D\]; got shape \(2, 1, 4\)"):
        FeatureHead(nn.Linear(4, 2))(torch.zeros(2, 1, 4))
