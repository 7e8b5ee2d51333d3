"""The classifier head that self-supervised pretraining swaps out and gives back reset."""

from torch import nn


def head_slot(model: nn.Module, method: str = "rotation pretraining") -> tuple[nn.Module, str, nn.Linear]:
    """Where the model's last ``nn.Linear`` (in registration order) sits: (parent, attribute name,
    layer), so pretraining can swap it out and put it back (:func:`torch_al.embeddings.last_linear`
    finds the same layer for reading its input). The classifier head of LeNet, SmallResNet and
    ``nn.Sequential`` MLPs; ``method`` names the caller in the error."""
    found = None
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    if found is None:
        raise ValueError(f"{method} replaces the model's last nn.Linear, but {type(model).__name__} has none")
    return found
