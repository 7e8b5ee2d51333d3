"""model_device: where a model lives, for models with parameters, with buffers only, or neither."""

import torch
from torch import nn

from torch_al.devices import model_device


class BufferOnly(nn.Module):
    def __init__(self, device: str) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(3, device=device))

    def forward(self, x):
        return x * self.scale


def test_the_first_parameter_decides():
    assert model_device(nn.Linear(2, 3, device="meta")) == torch.device("meta")


def test_a_parameterless_model_lives_where_its_buffers_are():
    assert model_device(BufferOnly("meta")) == torch.device("meta")


def test_a_model_with_no_state_runs_on_the_cpu():
    assert model_device(nn.ReLU()) == torch.device("cpu")
