"""Discriminative active learning: the picks against a float64 recomputation of ψ and of each
trained discriminator, the sub-query split and its training targets, one training step against a
hand-written class-weighted loss, the empty labeled set, errors, and a run through the experiment."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.cli import main
from torch_al.datasets import make_blobs
from torch_al.experiment import RunConfig, run_experiment
from torch_al.seeding import derived_seed
from torch_al.strategies import STRATEGIES, DiscriminativeAL, make_strategy
from torch_al.strategies.learned import discriminative
from torch_al.strategies.learned.discriminative import discriminator, gathered_rows, split_budget, standardised, train_discriminator, training_rows


def small_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))


def small_pool(n: int = 90, labeled: tuple[int, ...] = (0, 4, 9, 30, 31, 50)) -> tuple[ActivePool, torch.Tensor]:
    x = torch.randn(n, 5, generator=torch.Generator().manual_seed(2))
    pool = ActivePool(TensorDataset(x, torch.zeros(n, dtype=torch.int64)))
    if labeled:
        pool.label(list(labeled), [0] * len(labeled))
    return pool, x


def reference_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ψ: the input of the last linear layer, by running the layers before it in float64."""
    return copy.deepcopy(model).double()[:-1](x.double())


def reference_standardised(features: torch.Tensor) -> torch.Tensor:
    deviation = features.std(0, unbiased=False)
    return torch.where(deviation > 0, (features - features.mean(0)) / deviation, torch.zeros_like(features))


@pytest.fixture
def trainings(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor, nn.Module, torch.Tensor]]:
    """Records every discriminator training: (its rows' features, their targets, the trained
    classifier, the training rows' global indices)."""
    calls, drawn = [], []

    def rows_spy(*args):
        drawn.append(training_rows(*args))
        return drawn[-1]

    def spy(features, is_unlabeled, generator, **options):
        trained = train_discriminator(features, is_unlabeled, generator, **options)
        calls.append((features.clone(), is_unlabeled.clone(), trained.model, drawn[-1].clone()))
        return trained

    monkeypatch.setattr(discriminative, "training_rows", rows_spy)
    monkeypatch.setattr(discriminative, "train_discriminator", spy)
    return calls


def sub_query_slices(budget: int, sub_queries: int) -> list[slice]:
    sizes = split_budget(budget, sub_queries)
    ends = torch.tensor(sizes).cumsum(0).tolist()
    return [slice(end - size, end) for size, end in zip(sizes, ends)]


def test_split_budget_is_even_and_never_empty():
    assert split_budget(23, 5) == [5, 5, 5, 4, 4]
    assert split_budget(20, 5) == [4] * 5
    assert split_budget(3, 10) == [1, 1, 1]  # n > P: n = P
    assert split_budget(1, 1) == [1]


def test_picks_come_from_the_region_the_labeled_set_misses():
    x, y = make_blobs(600, num_classes=6, dim=8, spread=0.5, seed=3)
    pool = ActivePool(TensorDataset(x, y))
    covered = torch.nonzero(y < 3).squeeze(1)[:30]
    pool.label(covered, y[covered])
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6))  # ψ = x
    picks = DiscriminativeAL(sub_queries=3, hidden=32, discriminator_steps=40, seed=0).select(model, pool, 30)
    assert (y[picks] >= 3).float().mean() >= 0.9


def test_each_sub_query_trains_on_the_picks_so_far_as_labeled(trainings):
    pool, _ = small_pool()
    strategy = DiscriminativeAL(sub_queries=5, hidden=16, discriminator_steps=5, seed=1)
    query = strategy.select(small_model(), pool, 23)
    assert len(trainings) == 5
    expected_unlabeled = ~pool.labeled_mask
    for (_, targets, _, rows), part in zip(trainings, sub_query_slices(23, 5)):
        assert torch.equal(targets, expected_unlabeled[rows]) and (~targets).sum() == (~expected_unlabeled).sum()
        assert part.stop - part.start in (4, 5)
        expected_unlabeled[query[part]] = False
    assert strategy.last_cost.forward == len(pool) and strategy.last_cost.backward == 0


def test_more_sub_queries_than_budget_pick_one_item_each(trainings):
    pool, _ = small_pool()
    DiscriminativeAL(sub_queries=10, hidden=8, discriminator_steps=2).select(small_model(), pool, 3)
    assert len(trainings) == 3


def test_ranking_equals_a_float64_recomputation_of_each_discriminator(trainings):
    pool, x = small_pool()
    model = small_model()
    query, scores = DiscriminativeAL(sub_queries=4, hidden=16, discriminator_steps=20, seed=2).select(model, pool, 14, return_scores=True)
    psi = reference_features(model, x)
    for (features, targets, classifier, rows), part in zip(trainings, sub_query_slices(14, 4)):
        expected = reference_standardised(psi[rows])  # standardised over the training rows
        torch.testing.assert_close(features.double(), expected, rtol=1e-5, atol=1e-5)
        probability = torch.sigmoid(copy.deepcopy(classifier).double()(expected).squeeze(1))  # per training row
        picked = torch.searchsorted(rows, query[part])
        assert torch.equal(rows[picked], query[part]) and targets[picked].all()  # sampled unlabeled items
        torch.testing.assert_close(scores[part].double(), probability[picked], rtol=1e-5, atol=1e-6)
        passed_over = targets.clone()  # the candidates: the unlabeled items of the training sample
        passed_over[picked] = False
        assert probability[picked].min() >= probability[passed_over].max() - 1e-6  # the top of the candidates
        assert scores[part].tolist() == sorted(scores[part].tolist(), reverse=True)


def test_one_training_step_is_adam_on_the_class_weighted_loss():
    features = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
    is_unlabeled = torch.arange(40) >= 8
    state = torch.get_rng_state()
    trained = train_discriminator(features, is_unlabeled, torch.Generator().manual_seed(5), hidden=10, steps=1, batch_size=64, lr=0.01, stop_accuracy=1.0)
    assert torch.equal(torch.get_rng_state(), state)  # its draws are its generator's alone

    reference = discriminator(6, 10, torch.Generator().manual_seed(5)).double()
    targets = is_unlabeled.double()
    weights = torch.where(is_unlabeled, 40 / 32, 40 / 8).double()  # each class: half of the weight
    loss = (weights * F.binary_cross_entropy_with_logits(reference(features.double()).squeeze(1), targets, reduction="none")).mean()
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.01)
    loss.backward()
    optimizer.step()
    assert trained.steps == 1
    for ours, expected in zip(trained.model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours.double(), expected.detach(), rtol=1e-4, atol=1e-5)


def test_training_stops_once_the_balanced_accuracy_is_reached(monkeypatch):
    features = torch.cat([torch.full((10, 2), -3.0), torch.full((90, 2), 3.0)])  # trivially separable
    is_unlabeled = torch.arange(100) >= 10
    steps = []
    real_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: steps.append(1) or real_step(self, *a, **k))
    train_discriminator(features, is_unlabeled, torch.Generator().manual_seed(0), hidden=8, steps=500, batch_size=100, lr=0.05, stop_accuracy=0.98)
    assert 1 <= len(steps) < 500


def test_same_seed_same_selection_other_seed_other():
    pool, _ = small_pool()
    model = small_model()
    first, scores = DiscriminativeAL(sub_queries=3, hidden=16, discriminator_steps=10, seed=0).select(model, pool, 9, return_scores=True)
    again, scores_again = DiscriminativeAL(sub_queries=3, hidden=16, discriminator_steps=10, seed=0).select(model, pool, 9, return_scores=True)
    assert torch.equal(first, again) and torch.equal(scores, scores_again)
    _, other_scores = DiscriminativeAL(sub_queries=3, hidden=16, discriminator_steps=10, seed=1).select(model, pool, 9, return_scores=True)
    assert not torch.equal(scores, other_scores)


def test_nothing_labeled_draws_the_first_sub_query_at_random(trainings):
    pool, _ = small_pool(labeled=())
    query, scores = DiscriminativeAL(sub_queries=3, hidden=16, discriminator_steps=5, seed=4).select(small_model(), pool, 12, return_scores=True)
    generator = torch.Generator().manual_seed(derived_seed(4, "dal", 0, 0))
    assert query[:4].tolist() == torch.randperm(len(pool), generator=generator)[:4].tolist()
    assert scores[:4].tolist() == [1.0] * 4  # every item is unlabeled
    assert len(trainings) == 2
    assert torch.equal(~trainings[0][1], torch.isin(trainings[0][3], query[:4]))
    assert trainings[0][3].numel() == 4 + 40  # the 4 picks and 10 unlabeled items per pick
    assert query.unique().numel() == 12


def test_bad_input_is_named_and_nothing_is_recorded():
    pool, _ = small_pool()
    before = (pool.labeled_indices, pool.round)
    with pytest.raises(ValueError, match="DiscriminativeAL: the model has no layer named 'fc9'; its layers: 0, 1, 2"):
        DiscriminativeAL(layer="fc9").select(small_model(), pool, 3)
    with pytest.raises(ValueError, match="budget 85 is larger than the 84 unlabeled items"):
        DiscriminativeAL().select(small_model(), pool, 85)
    with pytest.raises(ValueError, match="DiscriminativeAL embeds the pool with a model; got model=None"):
        DiscriminativeAL().select(None, pool, 3)
    with pytest.raises(ValueError, match="DiscriminativeAL: the model has no nn.Linear; name the embedding layer with layer="):
        DiscriminativeAL().select(nn.Sequential(nn.Tanh()), pool, 3)
    assert pool.pending_query is None and torch.equal(pool.labeled_indices, before[0]) and pool.round == before[1]
    cases = [
        (dict(sub_queries=0), ValueError, "DiscriminativeAL: sub_queries must be an int >= 1, got 0"),
        (dict(sub_queries=2.0), ValueError, "sub_queries must be an int >= 1, got 2.0"),
        (dict(hidden=0), ValueError, "hidden must be an int >= 1"),
        (dict(discriminator_steps=0), ValueError, "discriminator_steps must be an int >= 1"),
        (dict(lr=0), ValueError, "DiscriminativeAL: lr must be a finite float > 0, got 0"),
        (dict(stop_accuracy=1.5), ValueError, "DiscriminativeAL: stop_accuracy must be a finite float > 0 and <= 1, got 1.5"),
        (dict(layer=3), TypeError, "layer must be a module name"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            DiscriminativeAL(**options)
    with pytest.raises(ValueError, match="sub_queries must be an int >= 1, got 0"):
        RunConfig(strategy=("dal",), sub_queries=0)
    with pytest.raises(ValueError, match="is_unlabeled must hold both classes, got 0 labeled and 4 unlabeled rows"):
        train_discriminator(torch.randn(4, 2), torch.ones(4, dtype=torch.bool), torch.Generator(), hidden=2, steps=1, batch_size=4, lr=0.1, stop_accuracy=1.0)


@pytest.mark.needs_cuda
def test_runs_on_the_model_device():
    x, y = make_blobs(600, num_classes=6, dim=8, spread=0.5, seed=3)
    pool = ActivePool(TensorDataset(x, y))
    covered = torch.nonzero(y < 3).squeeze(1)[:30]
    pool.label(covered, y[covered])
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6)).cuda()
    picks, scores = DiscriminativeAL(sub_queries=3, hidden=32, discriminator_steps=40, seed=0).select(model, pool, 30, return_scores=True)
    assert picks.device.type == "cpu" and scores.device.type == "cpu"
    assert (y[picks] >= 3).float().mean() >= 0.9


def test_a_named_layer_is_the_representation(trainings):
    pool, x = small_pool()
    model = small_model()
    DiscriminativeAL(layer="0", sub_queries=1, hidden=8, discriminator_steps=2).select(model, pool, 2)
    psi = copy.deepcopy(model).double()[0](x.double())
    torch.testing.assert_close(trainings[0][0].double(), reference_standardised(psi[trainings[0][3]]), rtol=1e-5, atol=1e-5)


def test_standardised_features_have_mean_0_and_deviation_1_per_column():
    features = torch.randn(50, 4, dtype=torch.float64) * torch.tensor([1.0, 100.0, 1e-3, 0.0], dtype=torch.float64) + 7
    torch.testing.assert_close(standardised(features), reference_standardised(features), rtol=1e-9, atol=1e-9)
    assert standardised(features)[:, 3].eq(0).all() and standardised(features.float()).dtype == torch.float32


def test_registered_built_by_name_and_run_by_the_experiment(tmp_path, capsys):
    assert STRATEGIES["dal"] is DiscriminativeAL
    strategy = make_strategy("dal", seed=3, batch_size=32, progress=False, sub_queries=4, validation=None)
    assert (strategy.seed, strategy.batch_size, strategy.sub_queries) == (3, 32, 4)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--sub-queries" in capsys.readouterr().out
    config = RunConfig(dataset="synthetic", strategy=("dal",), rounds=1, budget=10, epochs=1, pool_size=300, sub_queries=2, out=str(tmp_path), progress=False)
    results = run_experiment(config)
    assert [r["labeled"] for r in results["dal"]] == [0, 10]



def test_each_discriminator_trains_on_the_labeled_items_and_ten_times_as_many_unlabeled(trainings):
    pool, _ = small_pool(n=300)
    query = DiscriminativeAL(sub_queries=3, hidden=8, discriminator_steps=3, seed=5).select(small_model(), pool, 9)
    labeled = pool.labeled_mask.clone()
    for sub_query, ((_, targets, _, rows), part) in enumerate(zip(trainings, sub_query_slices(9, 3))):
        assert torch.equal(~targets, labeled[rows])
        assert labeled[rows].sum() == labeled.sum() and (~labeled[rows]).sum() == 10 * labeled.sum()  # 6, 9, 12 labeled
        generator = torch.Generator().manual_seed(derived_seed(5, "dal", 0, sub_query))
        assert torch.equal(rows, training_rows(~labeled, 10.0, 3, generator))  # the seeded subsample
        assert torch.isin(query[part], rows).all()  # picked from the sampled unlabeled items
        labeled[query[part]] = True
    everything = DiscriminativeAL(sub_queries=1, hidden=8, discriminator_steps=1, unlabeled_ratio=None)
    everything.select(small_model(), pool, 2)
    assert trainings[-1][3].numel() == len(pool)
    with pytest.raises(ValueError, match="unlabeled_ratio must be a finite float > 0, got 0"):
        DiscriminativeAL(unlabeled_ratio=0)


def test_training_rows_take_at_least_the_sub_query_and_at_most_every_unlabeled_item():
    is_unlabeled = torch.arange(50) >= 2
    assert training_rows(is_unlabeled, 10.0, 30, torch.Generator().manual_seed(0)).numel() == 2 + 30
    assert training_rows(is_unlabeled, 100.0, 1, torch.Generator().manual_seed(0)).tolist() == list(range(50))


def test_on_a_separable_pool_the_discriminators_reach_the_stop_accuracy_and_it_is_recorded(tmp_path):
    x, y = make_blobs(1200, num_classes=6, dim=8, spread=0.3, seed=3)
    pool = ActivePool(TensorDataset(x, y))
    covered = torch.nonzero(y < 3).squeeze(1)[:40]
    pool.label(covered, y[covered])
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6))  # ψ = x: labeled and unlabeled blobs apart
    strategy = DiscriminativeAL(sub_queries=4, hidden=32, seed=0)
    picks = strategy.select(model, pool, 20)
    details = strategy.last_cost.details
    assert details["discriminator_accuracy"] >= 0.98 and 4 <= details["discriminator_steps"] < 4 * strategy.discriminator_steps
    assert (y[picks] >= 3).float().mean() >= 0.75  # mostly the missed blobs (a trained-on unlabeled item can look sure too)
    capped = DiscriminativeAL(sub_queries=2, hidden=4, discriminator_steps=1, train_batch_size=256, seed=0)
    capped.select(model, pool, 4)
    assert capped.last_cost.details["discriminator_steps"] == 2 and capped.last_cost.details["discriminator_accuracy"] < 0.98
    config = RunConfig(dataset="synthetic", strategy=("dal",), rounds=2, budget=10, epochs=1, pool_size=300, sub_queries=2, out=str(tmp_path), progress=False)
    records = run_experiment(config)["dal"]
    for record in records[:-1]:  # round 0: a random first sub-query, then a discriminator against its picks
        assert 0 < record["select_discriminator_accuracy"] <= 1 and record["select_discriminator_steps"] >= 1


def test_gathered_rows_are_the_pool_rows_from_whichever_holder_holds_them():
    features = torch.randn(10, 3, dtype=torch.float64)
    rows = torch.tensor([1, 4, 7, 9])
    assert torch.equal(gathered_rows(features, torch.arange(10), rows), features[rows])
    halves = [gathered_rows(features[held], held, rows) for held in (torch.tensor([0, 1, 2, 7]), torch.tensor([3, 4, 5, 6, 8, 9]))]
    assert torch.equal(halves[0] + halves[1], features[rows])  # what the ranks' all-reduce adds: zeros where not held
    assert torch.equal(gathered_rows(features[:0], torch.arange(0), rows), torch.zeros(4, 3, dtype=torch.float64))
