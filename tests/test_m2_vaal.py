"""M2-VAAL and its latent-distance rules: M2's loss terms against their float64 formulas, rule 1
against a brute-force greedy, rule 2 against its formula, the discriminator's query against a
float64 recomputation, picks from the kind the labeled set lacks, reproducibility from
(seed, round), zero labels, bad inputs and options, the CLI names and a run through the experiment."""

import math

import pytest
import torch
from striped_images import labeled_both_kinds, striped_images, two_kind_pool
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.experiment import RunConfig, run_experiment
from torch_al.seeding import derived_seed
from torch_al.strategies import M2VAAL, make_strategy
from torch_al.strategies.generative.m2_vaal import anchor_distance_select, confidence_distance_scores, m2_discriminator_loss, m2_loss
from torch_al.strategies.generative.networks import M2VAE, LatentDiscriminator

FAST = dict(iterations=30, batch_size=16, num_classes=2, progress=False)
NAMES = {"m2-vaal": "discriminator", "m2-anchor-distance": "anchor-distance", "m2-confidence-distance": "confidence-distance"}
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: threads only add contention


def negative_elbo_reference(model: M2VAE, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, beta: float) -> torch.Tensor:
    """−ELBO of one image Tensor[C, H, W] and one class-probability row y Tensor[K]."""
    mu, log_var = model.posterior(model.encoder(x[None]), y[None])
    x_hat = model.decode(mu + noise[None] * torch.sqrt(torch.exp(log_var)), y[None])[0]
    kl = -0.5 * torch.sum(1 + log_var - mu**2 - torch.exp(log_var))
    return torch.sum((x_hat - x) ** 2) + beta * kl


@pytest.mark.parametrize("beta, alpha, adversary_weight", [(1.0, 1.0, 1.0), (0.5, 2.5, 3.0), (0.0, 0.0, 0.0)])
def test_the_m2_losses_are_the_formulas(beta, alpha, adversary_weight):
    torch.manual_seed(1)
    model = M2VAE((2, 8, 12), classes=3, latent_dim=5, width=4).double()
    discriminator = LatentDiscriminator(5 + 3, hidden=16, depth=2).double()
    labeled, unlabeled = torch.rand(3, 2, 8, 12, dtype=torch.float64), torch.rand(4, 2, 8, 12, dtype=torch.float64)
    labels = torch.tensor([2, 0, 2])
    loss = m2_loss(model, discriminator, labeled, labels, unlabeled, beta, alpha, adversary_weight, torch.Generator().manual_seed(5))

    noise = torch.randn(3 + 3 * 4, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    labeled_term = sum(negative_elbo_reference(model, labeled[i], eye[labels[i]], noise[i], beta) for i in range(3)) / 3
    q_labeled = torch.softmax(model.classify(labeled), 1)
    classification = -sum(torch.log(q_labeled[i, labels[i]]) for i in range(3)) / 3
    unlabeled_term, codes_unlabeled = 0.0, []
    for j in range(4):
        q = torch.softmax(model.classify(unlabeled[j : j + 1]), 1)[0]
        expected_elbo = sum(q[k] * negative_elbo_reference(model, unlabeled[j], eye[k], noise[3 + 4 * k + j], beta) for k in range(3))
        entropy = -torch.sum(q * torch.log(q))
        unlabeled_term = unlabeled_term + (expected_elbo - entropy) / 4
        codes_unlabeled.append(torch.cat([model.posterior(model.encoder(unlabeled[j : j + 1]), q[None])[0][0], q]))
    codes_labeled = torch.cat([model.posterior(model.encoder(labeled), q_labeled)[0], q_labeled], 1)
    codes_unlabeled = torch.stack(codes_unlabeled)
    d_labeled, d_unlabeled = torch.sigmoid(discriminator(codes_labeled)), torch.sigmoid(discriminator(codes_unlabeled))
    adversarial = -torch.log(d_labeled).mean() - torch.log(d_unlabeled).mean()  # both called "labeled"
    reference = (labeled_term, classification, unlabeled_term, adversarial)
    for got, expected in zip(loss[:4], reference):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    total = labeled_term + alpha * classification + unlabeled_term + adversary_weight * adversarial
    torch.testing.assert_close(loss.total, total, rtol=1e-12, atol=1e-12)
    no_adversary = m2_loss(model, None, labeled, labels, unlabeled, beta, alpha, adversary_weight, torch.Generator().manual_seed(5))
    assert float(no_adversary.adversarial) == 0.0
    torch.testing.assert_close(no_adversary.total, total - adversary_weight * adversarial, rtol=1e-12, atol=1e-12)

    expected = -torch.log(d_labeled).mean() - torch.log(1 - d_unlabeled).mean()
    got = m2_discriminator_loss(model, discriminator, labeled, unlabeled)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    got.backward()
    assert all(p.grad is None for p in model.parameters()) and all(p.grad is not None for p in discriminator.parameters())


def anchor_distance_reference(codes, predictions, anchor_codes, anchor_classes, budget) -> tuple[list[int], list[float]]:
    """Brute force: classes take turns in ascending order; each picks its unpicked row with the
    largest Python-summed distance to its anchors (first of equal maxima), which joins them."""
    anchors = [(a.double(), int(c)) for a, c in zip(anchor_codes, anchor_classes)]
    picked, scores = [], []
    while len(picked) < budget:
        for class_ in range(int(predictions.max()) + 1):
            if len(picked) == budget:
                break
            best, best_score = None, -math.inf
            for i in range(codes.shape[0]):
                if i in picked or int(predictions[i]) != class_:
                    continue
                score = sum(float(torch.dist(codes[i].double(), a)) for a, c in anchors if c == class_)
                if score > best_score:
                    best, best_score = i, score
            if best is not None:
                picked.append(best)
                scores.append(best_score)
                anchors.append((codes[best].double(), class_))
    return picked, scores


@pytest.mark.parametrize("seed", range(6))
def test_rule_1_is_the_brute_force_greedy(seed):
    generator = torch.Generator().manual_seed(seed)
    n, dim, classes, m = 20 + 7 * seed, 2 + seed % 4, 2 + seed % 3, [0, 1, 4, 9, 12, 3][seed]
    codes = torch.randn(n, dim, generator=generator)
    predictions = torch.randint(0, classes, (n,), generator=generator)
    anchor_classes = torch.randint(0, classes - 1, (m,), generator=generator)  # the last class has no anchor
    anchor_codes = torch.randn(m, dim, generator=generator)
    for budget in (1, n // 3, n):
        rows, scores = anchor_distance_select(codes, predictions, anchor_codes, anchor_classes, budget)
        expected_rows, expected_scores = anchor_distance_reference(codes, predictions, anchor_codes, anchor_classes, budget)
        assert rows.tolist() == expected_rows
        torch.testing.assert_close(scores, torch.tensor(expected_scores, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_rule_1_ties_go_to_the_lower_row_and_a_class_without_anchors_starts_at_its_lowest_row():
    codes = torch.tensor([[2.0], [-2.0], [1.0], [-2.0], [5.0], [7.0], [6.0]])
    predictions = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    rows, scores = anchor_distance_select(codes, predictions, torch.tensor([[0.0]]), torch.tensor([0]), 6)
    # class 0: sums to the anchor 0 are 2, 2, 1, 2 → row 0; class 1 has none → row 4; class 0 with
    # anchors {0, 2}: 6, 2, 6 → row 1; class 1 with {5}: 2, 1 → row 5; class 0: 5, 6 → row 3; class 1: row 6
    assert rows.tolist() == [0, 4, 1, 5, 3, 6]
    assert scores.tolist() == [2.0, 0.0, 6.0, 2.0, 6.0, 2.0]


def confidence_distance_reference(codes, probabilities, anchor_codes, anchor_classes) -> list[float]:
    predictions = [int(torch.argmax(p)) for p in probabilities]
    mean_distance = []
    for i, class_ in enumerate(predictions):
        distances = [float(torch.dist(codes[i].double(), a.double())) for a, c in zip(anchor_codes, anchor_classes) if int(c) == class_]
        mean_distance.append(sum(distances) / len(distances) if distances else None)
    scores = []
    for i, class_ in enumerate(predictions):
        if mean_distance[i] is None:
            normalised = 1.0
        else:
            largest = max(mean_distance[j] for j in range(len(predictions)) if predictions[j] == class_)
            normalised = mean_distance[i] / largest if largest > 0 else 0.0
        scores.append((1 - float(probabilities[i].double().max())) * normalised)
    return scores


@pytest.mark.parametrize("seed", range(4))
def test_rule_2_is_its_formula(seed):
    generator = torch.Generator().manual_seed(seed)
    n, dim, classes = 25 + 5 * seed, 3 + seed, 4
    codes = torch.randn(n, dim, generator=generator)
    probabilities = torch.softmax(2 * torch.randn(n, classes, generator=generator), 1)
    anchor_classes = torch.tensor([0, 0, 1, 2, 2, 2])  # class 3: no anchor
    anchor_codes = torch.randn(6, dim, generator=generator)
    codes[0] = anchor_codes[0]  # a row on an anchor
    got = confidence_distance_scores(codes, probabilities, anchor_codes, anchor_classes)
    expected = torch.tensor(confidence_distance_reference(codes, probabilities, anchor_codes, anchor_classes), dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    alone = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.6, 0.4]])  # its class's only row, on its only anchor: 0/0 → 0
    assert confidence_distance_scores(*alone, torch.tensor([[0.0, 0.0]]), torch.tensor([0])).tolist() == [0.0]


def test_the_m2_vaal_query_is_the_lowest_float64_discriminator_logit():
    pool, _ = labeled_both_kinds(seed=3)
    strategy = M2VAAL(**FAST)
    query, scores = strategy.select(None, pool, 40, return_scores=True)
    unlabeled = pool.unlabeled_indices
    model, discriminator = strategy.last_vae.double(), strategy.last_discriminator.double()
    with torch.no_grad():
        logit = discriminator(model.latent(pool.dataset.tensors[0][unlabeled].double()))
    reference = logit.argsort(stable=True)
    picked = torch.searchsorted(unlabeled, query)
    torch.testing.assert_close(logit[picked], logit[reference[:40]], rtol=0, atol=1e-4)
    assert logit[reference[40]] - logit[reference[39]] > 1e-4 and sorted(query.tolist()) == sorted(unlabeled[reference[:40]].tolist())
    torch.testing.assert_close(scores.double(), -logit[picked], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rule", ["anchor-distance", "confidence-distance"])
def test_the_distance_rules_read_the_trained_models_latents_and_correct_anchors(rule):
    pool, _ = labeled_both_kinds(seed=4)
    strategy = M2VAAL(rule=rule, **FAST)
    query, scores = strategy.select(None, pool, 25, return_scores=True)
    assert strategy.last_discriminator is None and strategy.adversary_weight == 0.0
    images, unlabeled, labeled = pool.dataset.tensors[0].double(), pool.unlabeled_indices, pool.labeled_indices
    model = strategy.last_vae.double()
    with torch.no_grad():
        codes, labeled_codes = model.latent(images[unlabeled]), model.latent(images[labeled])
    labels = pool.labels_of(labeled)
    correct = labeled_codes[:, -2:].argmax(1) == labels
    if rule == "anchor-distance":
        rows, expected = anchor_distance_select(codes, codes[:, -2:].argmax(1), labeled_codes[correct], labels[correct], 25)
        assert unlabeled[rows].tolist() == query.tolist()
    else:
        expected = confidence_distance_scores(codes, codes[:, -2:], labeled_codes[correct], labels[correct])
        picked = torch.searchsorted(unlabeled, query)
        torch.testing.assert_close(expected[picked], expected.sort(descending=True).values[:25], rtol=0, atol=1e-5)
        expected = expected[picked]
    torch.testing.assert_close(scores.double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["m2-vaal", "m2-confidence-distance"])
def test_the_picks_favour_the_kind_the_labeled_set_lacks(name):
    pool, is_b = labeled_both_kinds()
    query = make_strategy(name, seed=0, **FAST).select(None, pool, 30)
    assert is_b[query].float().mean() > max(0.8, float(is_b[pool.unlabeled_indices].float().mean()))  # 95 of 255 unlabeled


def test_anchor_distance_takes_turns_over_the_predicted_classes():
    pool, is_b = labeled_both_kinds()
    strategy = make_strategy("m2-anchor-distance", seed=0, **FAST)
    query = strategy.select(None, pool, 30)
    with torch.no_grad():
        predicted = strategy.last_vae.classify(pool.dataset.tensors[0][query]).argmax(1)
    assert predicted.tolist() == [0, 1] * 15 and is_b[query].float().mean() >= 0.5  # 95 of 255 unlabeled are of kind B


@pytest.mark.parametrize("name, discriminator", [("m2-vaal", True), ("m2-anchor-distance", False)])
def test_the_cost_counts_every_class_decoding(name, discriminator):
    pool, _ = labeled_both_kinds()
    strategy = make_strategy(name, **FAST)
    strategy.select(None, pool, 10)
    training = 30 * (2 * 3 * 16 + (2 * 16 if discriminator else 0))  # K = 2: each unlabeled item decoded twice
    scoring = 255 if discriminator else 255 + 45
    assert (strategy.last_cost.forward, strategy.last_cost.backward) == (training + scoring, training)
    assert strategy.last_classifier_weight == pytest.approx(0.1 * 300 / 45)  # Kingma's α = 0.1·N, per labeled item


@pytest.mark.parametrize("name", NAMES)
def test_with_zero_labels_the_query_is_uniform_from_seed_and_round_and_nothing_trains(name):
    pool = ActivePool(two_kind_pool()[0].dataset)
    strategy = make_strategy(name, seed=2, **FAST)
    query, scores = strategy.select(None, pool, 12, return_scores=True)
    generator = torch.Generator().manual_seed(derived_seed(2, "m2-vaal", 0))
    assert query.tolist() == torch.randperm(300, generator=generator)[:12].tolist() and scores is None
    assert (strategy.last_cost.forward, strategy.last_cost.backward) == (0, 0) and strategy.last_vae is None


def test_a_label_past_num_classes_is_named_and_nothing_is_recorded():
    pool = ActivePool(TensorDataset(striped_images(30, False, 0), torch.zeros(30, dtype=torch.int64)))
    pool.label([1, 2], [0, 4])
    with pytest.raises(ValueError, match="M2VAAL: num_classes=2, but the labeled set holds label 4"):
        M2VAAL(**FAST).select(None, pool, 3)
    assert pool.pending_query is None


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(rule="farthest"), "M2VAAL: rule must be one of discriminator, anchor-distance, confidence-distance; got 'farthest'"),
        (dict(classifier_weight=-1.0), "M2VAAL: classifier_weight must be a finite float >= 0, got -1.0"),
        (dict(num_classes=1), "M2VAAL: num_classes must be an int >= 2, got 1"),
        (dict(adversary_weight=float("nan")), "M2VAAL: adversary_weight must be a finite float"),
        (dict(iterations=0), "M2VAAL: iterations must be an int >= 1, got 0"),
        (dict(lr=0.0), "M2VAAL: lr must be a finite float > 0, got 0.0"),
    ],
)
def test_bad_options_are_named(option, message):
    with pytest.raises(ValueError, match=message):
        M2VAAL(**option)


def test_make_strategy_names_and_a_two_round_fashion_mnist_run(tmp_path):
    for name, rule in NAMES.items():
        strategy = make_strategy(name, seed=3, progress=False, batch_size=32, iterations=7)
        assert isinstance(strategy, M2VAAL) and (strategy.rule, strategy.seed, strategy.batch_size, strategy.iterations) == (rule, 3, 32, 7)
        assert strategy.adversary_weight == (1.0 if rule == "discriminator" else 0.0)
    config = RunConfig(strategy=("m2-confidence-distance",), rounds=2, budget=10, epochs=1, pool_size=300, vaal_iterations=2, out=str(tmp_path), progress=False)
    records = run_experiment(config)["m2-confidence-distance"]
    assert [record["labeled"] for record in records] == [0, 10, 20]
    assert records[0]["select_forward"] == 0  # round 1: nothing labeled, a uniform draw
    assert records[1]["select_forward"] - records[1]["select_backward"] == 290 + 10  # unlabeled + labeled scored
    assert records[1]["select_backward"] % (2 * 2 * 64) == 0 and records[1]["select_backward"] >= 2 * 2 * 3 * 64


@pytest.mark.needs_cuda
@pytest.mark.parametrize("name", NAMES)
def test_it_trains_on_the_task_models_device(name):
    pool, is_b = labeled_both_kinds()
    model = torch.nn.Linear(2, 2).cuda()  # only its device is read
    strategy = make_strategy(name, **FAST)
    query = strategy.select(model, pool, 30)
    assert next(strategy.last_vae.parameters()).is_cuda
    assert torch.equal(query, make_strategy(name, **FAST).select(model, pool, 30)) and is_b[query].float().mean() >= 0.5
