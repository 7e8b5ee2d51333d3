"""MC dropout on a model whose dropout is ``F.dropout`` inside ``forward`` (timm's ``drop_rate``):
``torch_al.nn.dropout_as_module`` moves it into a module the strategies can sample."""

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.nn import dropout_as_module
from torch_al.strategies import BALD, VariationRatio

timm = pytest.importorskip("timm")


def timm_resnet(drop_rate: float = 0.25) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=10, in_chans=1, drop_rate=drop_rate)


class HandWritten(nn.Module):
    """The same network written with a dropout module before the classifier (its modules shared)."""

    def __init__(self, model: nn.Module, rate: float) -> None:
        super().__init__()
        self.model = model
        self.drop = nn.Dropout(rate)

    def forward(self, x):
        return self.model.fc(self.drop(self.model.global_pool(self.model.forward_features(x))))


def test_the_converted_model_trains_and_predicts_as_before():
    original = timm_resnet()
    converted = dropout_as_module(copy.deepcopy(original))
    assert converted.drop_rate == 0.0 and isinstance(converted.fc[0], nn.Dropout) and converted.fc[0].p == 0.25
    x = torch.rand(4, 1, 28, 28)
    for mode in (True, False):
        original.train(mode), converted.train(mode)
        torch.manual_seed(1)
        expected = original(x)
        torch.manual_seed(1)
        assert torch.equal(converted(x), expected)  # training draws the same masks from the same numbers


@pytest.mark.parametrize("strategy", [BALD, VariationRatio])
def test_mc_dropout_refuses_functional_dropout_and_samples_the_module(strategy):
    original = timm_resnet()
    pool = ActivePool(TensorDataset(torch.rand(30, 1, 28, 28), torch.arange(30) % 10))
    with pytest.raises(ValueError, match=r"needs dropout in the model.*dropout_as_module"):
        strategy(passes=8, progress=False).select(original, pool, 3)
    converted = dropout_as_module(copy.deepcopy(original)).eval()
    picked, scores = strategy(passes=8, progress=False).select(converted, pool, 3, return_scores=True)
    reference_model = HandWritten(copy.deepcopy(original).eval(), 0.25)
    expected_picked, expected_scores = strategy(passes=8, progress=False).select(reference_model, pool, 3, return_scores=True)
    assert torch.equal(picked, expected_picked)
    assert torch.equal(scores, expected_scores) and bool((scores > 0).all())


def test_bad_rates_and_heads_are_named():
    with pytest.raises(ValueError, match=r"ResNet.drop_rate = 0.0 \(pass rate=...\)"):
        dropout_as_module(timm_resnet(drop_rate=0.0))
    with pytest.raises(ValueError, match=r"got rate=1.5"):
        dropout_as_module(timm_resnet(), rate=1.5)
    with pytest.raises(ValueError, match="has no module named 'head'; its layers: conv1, bn1"):
        dropout_as_module(timm_resnet(), head="head")
    plain = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert isinstance(dropout_as_module(plain, rate=0.5)[2][0], nn.Dropout)  # no timm: the last nn.Linear
