"""What the generative strategies share: VAAL, M2-VAAL and BGADL name a pool input they cannot take
before any training and record nothing; VAAL and M2-VAAL repeat a selection from (seed, round)
without reading or moving torch's global RNG."""

import pytest
import torch
from striped_images import labeled_both_kinds, two_kind_pool
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


TRAINED_FROM_SEED = {
    "VAAL": (lambda seed: VAAL(seed=seed, iterations=40, batch_size=16, progress=False), two_kind_pool),
    "M2VAAL": (lambda seed: M2VAAL(seed=seed, iterations=30, batch_size=16, num_classes=2, progress=False), labeled_both_kinds),
}


@pytest.mark.parametrize("name", TRAINED_FROM_SEED)
def test_the_same_seed_and_round_repeat_the_query_and_another_seed_changes_it(name):
    build, labeled_pool = TRAINED_FROM_SEED[name]
    pool, _ = labeled_pool(seed=5)
    state = torch.get_rng_state()
    first, first_scores = build(4).select(None, pool, 20, return_scores=True)
    assert torch.equal(torch.get_rng_state(), state)  # torch's global RNG is left alone
    torch.manual_seed(123)  # and is not read
    again, again_scores = build(4).select(None, pool, 20, return_scores=True)
    assert torch.equal(first, again) and torch.equal(first_scores, again_scores)
    _, other_scores = build(5).select(None, pool, 20, return_scores=True)
    assert not torch.equal(first_scores, other_scores)


@pytest.mark.parametrize("name", TRAINED_FROM_SEED)
def test_a_non_finite_input_is_named_and_nothing_is_recorded(name):
    images = torch.rand(30, 1, 8, 8)
    images[17, 0, 2, 3] = float("nan")
    pool = ActivePool(TensorDataset(images, torch.zeros(30, dtype=torch.int64)))
    pool.label([1, 2], [0, 1])
    with pytest.raises(ValueError, match=f"{name}: pool item 17 has non-finite input values"):
        IMAGE_ONLY[name]().select(None, pool, 3)
    assert pool.pending_query is None
