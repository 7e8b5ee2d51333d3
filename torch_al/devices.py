"""Where a model lives."""

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter, else of its first buffer (a parameterless
    module with state), else the CPU (a module with neither has nowhere else to be)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
