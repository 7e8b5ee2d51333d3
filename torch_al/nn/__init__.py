"""nn modules of torch_al."""

from torch_al.nn.capture import DescriptorCapture
from torch_al.nn.integrated_gradients import IntegratedGradients

__all__ = ["DescriptorCapture"]
__all__ += ["IntegratedGradients"]
