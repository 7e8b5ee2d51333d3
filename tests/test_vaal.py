"""VAAL: the losses against their float64 formulas, the query against a float64 recomputation of
the trained discriminator's P(labeled | μ(x)), a discriminator that tells a kind of image missing
from the labeled set, reproducibility from (seed, round), zero labels, bad inputs and options."""

import json

import pytest
import torch
from al_scenario import outcome, run_until_stopped
from striped_images import striped_images, two_kind_pool
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActiveLearningLoop, ActivePool
from torch_al.experiment import RunConfig, run_experiment
from torch_al.seeding import derived_seed
from torch_al.strategies import VAAL, make_strategy
from torch_al.strategies.generative.networks import ConvVAE, LatentDiscriminator
from torch_al.strategies.generative.vaal import discriminator_loss, vae_loss

FAST = dict(iterations=40, batch_size=16, progress=False)
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: threads only add contention


def roc_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    difference = scores[positive].double().view(-1, 1) - scores[~positive].double().view(1, -1)
    return float((difference > 0).double().mean() + 0.5 * (difference == 0).double().mean())


def test_the_discriminator_tells_the_kind_the_labeled_set_lacks_and_the_query_takes_it():
    pool, is_b = two_kind_pool()
    strategy = VAAL(**FAST)
    query, scores = strategy.select(None, pool, 30, return_scores=True)
    held_out = torch.cat([striped_images(100, False, 7), striped_images(100, True, 8)])
    with torch.no_grad():
        p_labeled = torch.sigmoid(strategy.last_discriminator(strategy.last_vae.encode(held_out)[0]))
    assert roc_auc(p_labeled, torch.arange(200) < 100) > 0.8  # held-out kind A looks labeled, kind B does not
    unlabeled_share_of_b = is_b[pool.unlabeled_indices].float().mean()  # 100 / 260
    assert is_b[query].float().mean() > max(0.8, unlabeled_share_of_b)
    assert torch.all(scores[:-1] >= scores[1:])  # most informative first


@pytest.mark.parametrize("beta, adversary_weight", [(1.0, 1.0), (0.25, 3.0), (0.0, 0.0)])
def test_the_losses_are_the_formulas(beta, adversary_weight):
    torch.manual_seed(1)
    vae, discriminator = ConvVAE((2, 8, 12), latent_dim=5, width=4).double(), LatentDiscriminator(5, hidden=16, depth=2).double()
    labeled, unlabeled = torch.rand(3, 2, 8, 12, dtype=torch.float64), torch.rand(7, 2, 8, 12, dtype=torch.float64)
    loss = vae_loss(vae, discriminator, labeled, unlabeled, beta, adversary_weight, torch.Generator().manual_seed(5))

    noise = torch.randn(10, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    terms = []
    for rows, x in ((slice(0, 3), labeled), (slice(3, 10), unlabeled)):
        mu, log_var = vae.encode(x)
        x_hat = vae.decode(mu + noise[rows] * torch.sqrt(torch.exp(log_var)))
        reconstruction = ((x_hat - x) ** 2).sum((1, 2, 3)).mean()
        kl = (-0.5 * (1 + log_var - mu**2 - torch.exp(log_var)).sum(1)).mean()  # KL(N(μ, σ²) ‖ N(0, I))
        fooled = -torch.log(torch.sigmoid(discriminator(mu))).mean()  # the VAE wants "labeled" for both
        terms.append((reconstruction, kl, fooled))
    reference = [sum(term[k] for term in terms) for k in range(3)]
    for got, expected in zip(loss[:3], reference):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss.total, reference[0] + beta * reference[1] + adversary_weight * reference[2], rtol=1e-12, atol=1e-12)

    d_labeled, d_unlabeled = torch.sigmoid(discriminator(vae.encode(labeled)[0])), torch.sigmoid(discriminator(vae.encode(unlabeled)[0]))
    expected = -torch.log(d_labeled).mean() - torch.log(1 - d_unlabeled).mean()
    got = discriminator_loss(vae, discriminator, labeled, unlabeled)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    got.backward()
    assert all(p.grad is None for p in vae.parameters()) and all(p.grad is not None for p in discriminator.parameters())


def test_the_query_is_the_lowest_float64_p_labeled_of_the_trained_networks():
    pool, _ = two_kind_pool(seed=3)
    pool.label(list(range(200, 210)), [1] * 10)  # a few of kind B labeled too: the scores spread
    strategy = VAAL(**FAST)
    query, scores = strategy.select(None, pool, 50, return_scores=True)
    unlabeled = pool.unlabeled_indices
    images = pool.dataset.tensors[0][unlabeled].double()
    vae, discriminator = strategy.last_vae.double(), strategy.last_discriminator.double()
    with torch.no_grad():
        logit = discriminator(vae.encode(images)[0])
    reference = torch.sigmoid(logit).argsort(stable=True)  # lowest P(labeled | μ(x)) first
    picked = torch.searchsorted(unlabeled, query)  # each pick's row among the unlabeled
    # The picks' float64 logits are the reference's 50 lowest, in order, up to float32 rounding.
    torch.testing.assert_close(logit[picked], logit[reference[:50]], rtol=0, atol=1e-4)
    assert logit[reference[50]] - logit[reference[49]] > 1e-4 and sorted(query.tolist()) == sorted(unlabeled[reference[:50]].tolist())
    torch.testing.assert_close(scores.double(), -logit[picked], rtol=1e-4, atol=1e-4)


def test_ties_go_to_the_lower_global_index():
    images = torch.rand(1, 1, 8, 8).expand(40, 1, 8, 8).clone()  # every item alike: equal scores
    pool = ActivePool(TensorDataset(images, torch.zeros(40, dtype=torch.int64)))
    pool.label([3, 7], [0, 0])
    # One item a batch: a GEMM's result for a row can depend on the rows beside it (seen here with
    # oneDNN on AVX-512), so only batches of one make the scores of equal items tie exactly.
    assert VAAL(iterations=2, batch_size=1, progress=False).select(None, pool, 5).tolist() == [0, 1, 2, 4, 5]


def test_the_next_round_trains_new_networks_and_is_charged_for_them():
    pool, _ = two_kind_pool(seed=5)
    first = VAAL(seed=4, **FAST).select(None, pool, 20)
    pool.propose(first)
    pool.label(first, [1] * 20)
    next_round = VAAL(seed=4, **FAST)
    next_round.select(None, pool, 20)
    assert next_round.last_cost.forward == 3 * 40 * 32 + 240 == next_round.last_cost.backward + 240


@pytest.mark.parametrize("stage", ["oracle", "train"])
def test_a_killed_and_resumed_run_repeats_the_uninterrupted_one(tmp_path, stage):
    def make_loop(checkpoint_dir):
        pool = ActivePool(two_kind_pool()[0].dataset)
        strategy = VAAL(iterations=5, batch_size=8, seed=1, progress=False)
        untrained = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))  # VAAL does not read it
        return ActiveLearningLoop(pool, strategy, untrained, lambda model, pool, round_: None, 10, 3, initial=10, checkpoint_dir=checkpoint_dir, progress=False)

    uninterrupted = make_loop(tmp_path / "whole")
    expected = outcome(uninterrupted, uninterrupted.run())
    run_until_stopped(make_loop(tmp_path / "killed"), stage)  # round 2's query saved unlabeled, or round 2 labeled and untrained
    resumed = make_loop(tmp_path / "killed")
    assert outcome(resumed, resumed.run()) == expected


def test_with_zero_labels_the_query_is_uniform_from_seed_and_round_and_nothing_trains():
    pool, _ = two_kind_pool()
    pool = ActivePool(pool.dataset)
    strategy = VAAL(seed=2, **FAST)
    query, scores = strategy.select(None, pool, 12, return_scores=True)
    generator = torch.Generator().manual_seed(derived_seed(2, "vaal", 0))
    assert query.tolist() == torch.randperm(300, generator=generator)[:12].tolist() and scores is None
    assert (strategy.last_cost.forward, strategy.last_cost.backward) == (0, 0) and strategy.last_vae is None
    assert not torch.equal(query, VAAL(seed=3, **FAST).select(None, pool, 12))


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(latent_dim=0), "latent_dim must be an int >= 1, got 0"),
        (dict(iterations=0), "iterations must be an int >= 1, got 0"),
        (dict(batch_size=True), "batch_size must be an int >= 1, got True"),
        (dict(beta=-0.5), r"beta must be a finite float >= 0, got -0.5"),
        (dict(adversary_weight=float("nan")), "adversary_weight must be a finite float"),
        (dict(lr=0.0), "VAAL: lr must be a finite float > 0, got 0.0"),
    ],
)
def test_bad_options_are_named(option, message):
    with pytest.raises(ValueError, match=message):
        VAAL(**option)


def test_make_strategy_and_a_two_round_fashion_mnist_run(tmp_path):
    strategy = make_strategy("vaal", seed=3, progress=False, batch_size=32, iterations=7)
    assert isinstance(strategy, VAAL) and (strategy.seed, strategy.batch_size, strategy.iterations) == (3, 32, 7)
    with pytest.raises(ValueError, match="vaal_iterations must be an int >= 1"):
        RunConfig(vaal_iterations=0)
    config = RunConfig(strategy=("vaal",), rounds=2, budget=10, epochs=1, pool_size=300, vaal_iterations=3, out=str(tmp_path), progress=False)
    records = run_experiment(config)["vaal"]
    assert [record["labeled"] for record in records] == [0, 10, 20]
    assert records[0]["select_forward"] == 0  # round 1: nothing labeled, a uniform draw
    assert records[1]["select_forward"] == 3 * 3 * 2 * 64 + 290 and records[1]["select_backward"] == 3 * 3 * 2 * 64
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["vaal_iterations"] == 3


@pytest.mark.needs_cuda
def test_it_trains_on_the_task_models_device():
    pool, is_b = two_kind_pool()
    model = nn.Linear(2, 2).cuda()  # only its device is read
    strategy = VAAL(**FAST)
    query = strategy.select(model, pool, 30)
    assert next(strategy.last_vae.parameters()).is_cuda and next(strategy.last_discriminator.parameters()).is_cuda
    assert torch.equal(query, VAAL(**FAST).select(model, pool, 30)) and is_b[query].float().mean() > 0.8
