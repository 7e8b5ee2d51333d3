"""nn modules of torch_al."""

from torch_al.nn.capture import DescriptorCapture
from torch_al.nn.dropout import dropout_as_module
from torch_al.nn.frozen import FeatureHead
from torch_al.nn.integrated_gradients import IntegratedGradients

__all__ = ["DescriptorCapture"]
__all__ += ["IntegratedGradients"]
__all__ += ["dropout_as_module", "FeatureHead"]
