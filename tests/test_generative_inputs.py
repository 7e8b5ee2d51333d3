"""The image-only strategies (VAAL, M2-VAAL, BGADL) name a pool input they cannot take before any
training, and record nothing in the pool or in themselves."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import BGADL, M2VAAL, VAAL

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE_ONLY = {
    "VAAL": lambda: VAAL(iterations=2, batch_size=16, progress=False),
    "M2VAAL": lambda: M2VAAL(iterations=2, batch_size=16, num_classes=2, progress=False),
    "BGADL": lambda: BGADL(passes=8, generator_iterations=2, generator_batch_size=16, latent_dim=4, progress=False),
}


def task_model() -> nn.Module:
    """BGADL's query is BALD's, so it needs a model with dropout; the others ignore the model."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))


@pytest.mark.parametrize("name", IMAGE_ONLY)
@pytest.mark.parametrize(
    "inputs, message",
    [
        (torch.randn(30, 64), r"every pool input must be an image Tensor\[C, H, W\] with H and W multiples of 4 .*got an input of shape \(64,\)"),
        (torch.randn(30, 8, 8), r"got an input of shape \(8, 8\)"),
        (torch.randn(30, 1, 6, 8), r"got an input of shape \(1, 6, 8\)"),
        (torch.randint(0, 255, (30, 1, 8, 8), dtype=torch.uint8), r"every pool input must be a floating-point image .* item 0 is a torch.uint8 tensor"),
    ],
    ids=["vector", "no-channel", "odd-size", "uint8"],
)
def test_inputs_that_are_not_images_it_can_take_are_named_before_any_training(name, inputs, message):
    pool = ActivePool(TensorDataset(inputs, torch.zeros(30, dtype=torch.int64)))
    pool.label([1, 2], [0, 1])
    strategy = IMAGE_ONLY[name]()
    with pytest.raises(ValueError, match=f"{name}: .*{message}"):
        strategy.select(task_model(), pool, 3)
    assert strategy.last_cost.forward == 0 and pool.pending_query is None and pool.labeled_indices.tolist() == [1, 2]
    assert strategy.state_dict() == {} and strategy.training_set(pool) is pool
