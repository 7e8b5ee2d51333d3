"""nn modules of torch_al."""

from torch_al.nn.capture import DescriptorCapture

__all__ = ["DescriptorCapture"]
