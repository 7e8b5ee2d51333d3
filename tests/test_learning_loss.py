"""Learning loss (Yoo & Kweon, CVPR 2019): the ranking loss, the module, the joint objective with
its stopped gradient, the selection rule, the checkpointed state and a resumed loop."""

import pytest
import torch
import torch.nn.functional as F
from al_scenario import learning_loss, make_loop, outcome, run_until_stopped
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.experiment import RunConfig, run_experiment
from torch_al.strategies import Entropy, LearningLoss, LossPredictionModule, make_strategy, pairwise_ranking_loss


def reference_ranking_loss(predicted, target, margin):
    """The paper's formula, pair by pair, in float64."""
    batch = predicted.numel()
    terms = []
    for i in range(batch // 2):
        j = batch - 1 - i
        sign = 1.0 if target[i] > target[j] else -1.0
        terms.append(max(0.0, -sign * (float(predicted[i]) - float(predicted[j])) + margin))
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize("batch", [1, 2, 7, 25, 64])
def test_ranking_loss_equals_the_pairwise_formula(batch):
    generator = torch.Generator().manual_seed(batch)
    predicted, target = torch.randn(batch, generator=generator, dtype=torch.float64), torch.rand(batch, generator=generator, dtype=torch.float64)
    target[0] = target[-1]  # a tie: A = -1
    for margin in (1.0, 0.1):
        assert pairwise_ranking_loss(predicted, target, margin).item() == pytest.approx(reference_ranking_loss(predicted, target, margin), abs=1e-12)
    predicted.requires_grad_(True)
    pairwise_ranking_loss(predicted, target.requires_grad_(True)).backward()
    assert predicted.grad is not None and target.grad is None  # the true losses are targets, not trained
    with pytest.raises(ValueError, match=r"Tensor\[B\] of one shape, got \(3,\) and \(4,\)"):
        pairwise_ranking_loss(torch.zeros(3), torch.zeros(4))


def test_the_module_pools_each_layer_then_combines():
    torch.manual_seed(0)
    module = LossPredictionModule([3, 5], width=4).double()
    conv, dense = torch.randn(6, 3, 4, 4, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    first, second = module.branches[0][0], module.branches[1][0]
    hidden = torch.cat([F.relu(first(conv.mean((2, 3)))), F.relu(second(dense))], 1)
    torch.testing.assert_close(module([conv, dense]), module.head(hidden).squeeze(1))


def small_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    model.descriptor_layers = ("1", "3")
    return model


def test_the_objective_is_cross_entropy_plus_the_weighted_ranking_loss_and_stops_its_gradient():
    model, x, y = small_model(), torch.randn(10, 2), torch.randint(0, 2, (10,))
    strategy = LearningLoss(weight=0.5, stop_gradient=0.6, progress=False)
    extra = strategy.extra_parameters(model, x[:1])
    assert extra == list(strategy.module.parameters()) and strategy.module.branches[0][0].in_features == 32
    hidden1 = model[1](model[0](x))
    hidden3 = model[3](model[2](hidden1))
    losses = F.cross_entropy(model[4](hidden3), y, reduction="none")
    expected = losses.mean() + 0.5 * pairwise_ranking_loss(strategy.module([hidden1, hidden3]), losses)
    torch.testing.assert_close(strategy.training_loss(model, x, y, epoch=0, epochs=10), expected)

    def model_gradients(epoch):
        model.zero_grad()
        strategy.training_loss(model, x, y, epoch, epochs=10).backward()
        return [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    cross_entropy_only = [p.grad.clone() for p in model.parameters()]
    assert not all(torch.allclose(a, b) for a, b in zip(model_gradients(5), cross_entropy_only))  # epoch 5 < ⌈0.6·10⌉
    for a, b in zip(model_gradients(6), cross_entropy_only):  # from epoch 6 the module trains alone
        torch.testing.assert_close(a, b)
    assert strategy.module.head.weight.grad is not None and strategy.trained_batches == 3


def train_jointly(model, strategy, x, y, epochs=20, batch=64):
    optimizer = torch.optim.SGD([*model.parameters(), *strategy.extra_parameters(model, x[:1])], lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        for rows in torch.randperm(x.shape[0], generator=generator).split(batch):
            optimizer.zero_grad()
            strategy.training_loss(model, x[rows], y[rows], epoch, epochs).backward()
            optimizer.step()


def spearman(a, b):
    rank = lambda v: v.argsort().argsort().double()  # noqa: E731
    return torch.corrcoef(torch.stack([rank(a), rank(b)]))[0, 1].item()


def test_predicted_losses_rank_held_out_losses():
    """A learnable loss: labels from a fixed boundary, so an item's loss depends on where it lies."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1200, 2, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model, strategy = small_model(), LearningLoss(progress=False)
    train_jointly(model, strategy, x[:600], y[:600])
    model.eval()
    with torch.no_grad():
        true = F.cross_entropy(model(x[600:]), y[600:], reduction="none")
    rho = spearman(strategy.predicted_losses(model, x[600:]), true)
    assert rho > 0.5, rho


def test_selection_is_the_highest_predicted_loss_and_costs_one_forward_per_item():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(300, 2, generator=generator)
    y = (x[:, 0] > 0).long()
    pool = ActivePool(TensorDataset(x, y))
    pool.label(torch.arange(0, 300, 3), y[::3])
    model, strategy = small_model(), LearningLoss(batch_size=64, progress=False)
    train_jointly(model, strategy, x[::3], y[::3], epochs=5)
    indices, scores = strategy.select(model, pool, 20, return_scores=True)
    assert model.training and strategy.module.training  # modes put back
    unlabeled = pool.unlabeled_indices
    model.eval()
    strategy.module.eval()
    with torch.no_grad():
        hidden1 = model[1](model[0](x[unlabeled]))
        reference = strategy.module([hidden1, model[3](model[2](hidden1))])
    order = torch.sort(reference, descending=True, stable=True).indices[:20]
    assert indices.tolist() == unlabeled[order].tolist()
    torch.testing.assert_close(scores, reference[order])
    assert strategy.last_cost.forward == unlabeled.numel() and strategy.last_cost.backward == 0


def test_with_nothing_labeled_the_query_is_seeded_random_and_an_untrained_module_is_an_error():
    x = torch.randn(50, 2)
    pool = ActivePool(TensorDataset(x, (x[:, 0] > 0).long()))
    first = LearningLoss(seed=3, progress=False).select(small_model(), pool, 5)
    assert first.tolist() == LearningLoss(seed=3, progress=False).select(small_model(), pool, 5).tolist()
    assert first.tolist() != LearningLoss(seed=4, progress=False).select(small_model(), pool, 5).tolist()
    pool.label(first, torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="never trained; train the model with strategy.training_loss"):
        LearningLoss(progress=False).select(small_model(), pool, 5)
    assert pool.pending_query is None and pool.labeled_indices.numel() == 5


def test_state_round_trips_and_other_strategies_keep_none():
    model, strategy = small_model(), LearningLoss(width=8, progress=False)
    train_jointly(model, strategy, torch.randn(64, 2), torch.randint(0, 2, (64,)), epochs=1)
    restored = LearningLoss(width=8, progress=False)
    restored.load_state_dict(strategy.state_dict())
    probe = torch.randn(9, 2)
    strategy.module.eval(), restored.module.eval()
    torch.testing.assert_close(restored.predicted_losses(model, probe), strategy.predicted_losses(model, probe))
    assert restored.trained_batches == strategy.trained_batches == 1  # 64 items, one batch of 64
    assert Entropy().state_dict() == {}
    with pytest.raises(ValueError, match="Entropy keeps no state"):
        Entropy().load_state_dict(strategy.state_dict())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    loop = make_loop(tmp_path_factory.mktemp("learning_loss"), strategy=learning_loss())
    return outcome(loop, loop.run())


@pytest.mark.parametrize("stage", ["oracle", "train"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, uninterrupted, stage):
    loop = make_loop(tmp_path, strategy=learning_loss())
    run_until_stopped(loop, stage)
    resumed = make_loop(tmp_path, strategy=learning_loss())
    assert outcome(resumed, resumed.run()) == uninterrupted  # the module's weights came back from the checkpoint
    assert resumed.strategy.trained_batches == LearningLoss.trained_batches.fget(resumed.strategy) > 0


def test_the_experiment_trains_the_module_and_the_cli_name_builds_it(tmp_path):
    config = RunConfig(dataset="digits", strategy=("learning-loss",), rounds=2, budget=10, initial=20, epochs=2, pool_size=200, progress=False, out=str(tmp_path))
    results = run_experiment(config)["learning-loss"]
    assert [r["labeled"] for r in results] == [20, 30, 40] and results[0]["select_forward"] == 180
    assert isinstance(make_strategy("learning-loss", seed=1, layers=("act2",)), LearningLoss)


def test_bad_arguments_and_layers_are_named():
    for options, error, message in [
        (dict(width=0), ValueError, "LearningLoss: width must be an int >= 1, got 0"),
        (dict(margin=-1.0), ValueError, "LearningLoss: margin must be a finite float >= 0, got -1.0"),
        (dict(weight="1"), TypeError, r"LearningLoss: weight must be a float, got '1' \(str\)"),
        (dict(stop_gradient=1.5), ValueError, r"stop_gradient is a fraction of the epochs in \[0, 1\], got 1.5"),
    ]:
        with pytest.raises(error, match=message):
            LearningLoss(**options)
    model, x = small_model(), torch.randn(4, 2)
    with pytest.raises(ValueError, match="call extra_parameters"):
        LearningLoss().training_loss(model, x, torch.zeros(4, dtype=torch.int64), 0, 1)
    with pytest.raises(ValueError, match="layer 'nope' is not in the model"):
        LearningLoss(layers=["nope"]).extra_parameters(model, x)
    with pytest.raises(ValueError, match="give layers=.*Linear has no descriptor_layers"):
        LearningLoss().extra_parameters(nn.Linear(2, 2), x)


def test_a_non_finite_prediction_names_the_pool_item():
    x = torch.randn(40, 2)
    pool = ActivePool(TensorDataset(x, (x[:, 0] > 0).long()))
    pool.label(torch.arange(10), (x[:10, 0] > 0).long())
    model, strategy = small_model(), LearningLoss(progress=False)
    train_jointly(model, strategy, x[:10], (x[:10, 0] > 0).long(), epochs=1)
    x[23, 1] = float("nan")
    with pytest.raises(ValueError, match=r"predicted losses are not finite for pool items \[23\]"):
        strategy.select(model, pool, 5)
    assert pool.pending_query is None
