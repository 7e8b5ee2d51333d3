"""PCC / PFK / EBA strategies against a float64 reference of Algorithm 1 with R materialised."""

import sys

import pytest
import torch
import torch.nn.functional as F
from pfk_reference import COMBINES, reference_kernel
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool
from torch_al.datasets import imbalance, make_blobs
from torch_al.seeding import derived_seed
from torch_al.strategies import EBA, PCC, PFK, Random, make_strategy
from torch_al.strategies.distribution_matching.matching import first_center
from torch_al.strategies.distribution_matching.pseudo_labels import MONTE_CARLO_KINDS, monte_carlo_pseudo_labels

pytestmark = pytest.mark.skipif(not hasattr(torch.ops.torch_al, "pfk_topk"), reason="needs the compiled ops")
LAYERS = ("1", "3")  # the two hidden ReLUs of mlp()
SAMPLES = 4  # K of the Monte-Carlo estimators


def mlp(dim: int, classes: int, dtype=torch.float64) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, 12), nn.ReLU(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, classes)).to(dtype)


def hidden_and_loss(model, x, labels):
    """(h1, h2), logits and the summed cross-entropy, written out layer by layer."""
    h1 = torch.relu(model[0](x))
    h2 = torch.relu(model[2](h1))
    logits = model[4](h2)
    return (h1, h2), logits, F.cross_entropy(logits, logits.argmax(1) if labels is None else labels, reduction="sum")


def reference_descriptors(model, x, labels=None, steps=None):
    """z scales, and g scales (or, with ``steps``, the integrated-gradient attention K = steps)."""
    x = x.double().requires_grad_()
    hidden, logits, loss = hidden_and_loss(model, x, labels)
    labels = logits.argmax(1) if labels is None else labels
    if steps is None:
        return [h.detach() for h in hidden], list(torch.autograd.grad(loss, hidden)), logits.argmax(1)
    attention = [torch.zeros_like(h) for h in hidden]
    for k in range(1, steps + 1):
        path_hidden, _, path_loss = hidden_and_loss(model, x * k / steps, labels)
        for total, grad in zip(attention, torch.autograd.grad(path_loss, path_hidden)):
            total += grad / steps
    return [h.detach() for h in hidden], attention, logits.argmax(1)


def standardised(scales):
    return [(s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + 1e-10) for s in scales]


def eba_normalised(scales):
    return [F.normalize(torch.cat(scales, 1), dim=1)]


def reference_kcenter(points, count, first):
    chosen, distance = [first], (points - points[first]).norm(dim=1)
    while len(chosen) < count:
        chosen.append(int(distance.argmax()))  # argmax keeps the first (lowest) of equal maxima
        distance = torch.minimum(distance, (points - points[chosen[-1]]).norm(dim=1))
    return torch.tensor(chosen)


def reference_rank_fill(kernel, budget, k):
    """Top-k per row; rank by rank, rows by value (ties to the lower column); re-query when short."""
    taken: list[int] = []
    while len(taken) < budget:
        masked = kernel.clone()
        masked[:, taken] = -float("inf")
        values, columns = masked.sort(dim=1, descending=True, stable=True)
        for rank in range(min(k, kernel.shape[1] - len(taken))):  # only unmasked columns are candidates
            for _, column in sorted(zip((-values[:, rank]).tolist(), columns[:, rank].tolist())):
                if column not in taken:
                    taken.append(column)
    return taken[:budget]


def reference_selection(model, validation, pool_x, pool_y, labeled, budget, method, combine="product", estimator="argmax", k=32, seed=0):
    """Algorithm 1 in float64 with every kernel materialised."""
    val_x, val_y = validation
    steps = 3 if method == "eba" else None
    normalise = eba_normalised if method == "eba" else standardised
    val_z, _, predicted = reference_descriptors(model, val_x)
    missed = (predicted != val_y).nonzero().flatten()
    query_z = normalise([z[missed] for z in val_z])
    query_g = []
    if method != "pcc":
        val_labels = None if estimator == "argmax" else val_y[missed]
        query_g = normalise(reference_descriptors(model, val_x[missed], val_labels, steps)[1])
    if missed.numel() > budget:
        centers = reference_kcenter(torch.cat(query_z + query_g, 1), budget, first_center(seed, 0, missed.numel()))
        query_z, query_g = [s[centers] for s in query_z], [s[centers] for s in query_g]
    candidates = (~labeled).nonzero().flatten()
    pool_labels = None
    if estimator == "true":
        pool_labels = pool_y[candidates]
    elif estimator == "validation_match":
        nearest = reference_kernel(normalise(reference_descriptors(model, pool_x[candidates])[0]), normalise(val_z)).argmax(1)
        pool_labels = val_y[nearest]
    elif estimator in MONTE_CARLO_KINDS:  # tests/test_pseudo_labels.py checks these labels on their own
        loader = DataLoader(TensorDataset(pool_x[candidates]), batch_size=16)
        generator = torch.Generator().manual_seed(derived_seed(seed, "perturb", 0))
        pool_labels = monte_carlo_pseudo_labels(model, LAYERS, loader, SAMPLES, generator, estimator).labels
    pool_z, pool_g, _ = reference_descriptors(model, pool_x[candidates], pool_labels, steps)
    pool_g = [] if method == "pcc" else normalise(pool_g)
    kernel = reference_kernel(query_z, normalise(pool_z), query_g, pool_g, combine)
    return candidates[reference_rank_fill(kernel, budget, k)]


def blobs_problem(seed=0):
    x, y = make_blobs(150, num_classes=3, dim=5, spread=1.5, seed=seed)
    x = x.double()
    torch.manual_seed(seed)
    model = mlp(5, 3)
    pool = ActivePool(TensorDataset(x[60:], y[60:]))
    pool.label([0, 4, 9, 30], y[60:][[0, 4, 9, 30]])
    return model, (x[:60], y[:60]), pool, x[60:], y[60:]


CASES = [("pfk", combine, estimator) for combine in COMBINES for estimator in ("argmax", "true", "validation_match", *MONTE_CARLO_KINDS)]
CASES += [("pcc", "product", "argmax"), ("eba", "product", "argmax")]


def make(method, validation, combine, estimator, k, precision="exact"):
    common = dict(validation=validation, layers=LAYERS, k=k, batch_size=16, progress=False, precision=precision)
    if method == "pcc":
        return PCC(**common)
    if method == "eba":
        return EBA(steps=3, chunk=2, **common)
    return PFK(combine=combine, estimator=estimator, samples=SAMPLES, **common)


@pytest.mark.parametrize("budget, k", [(6, 32), (50, 1)])  # 41 misclassified rows: k-center reduction; all centers, re-queried
@pytest.mark.parametrize("method, combine, estimator", CASES)
def test_selection_matches_the_float64_reference(method, combine, estimator, budget, k):
    model, validation, pool, pool_x, pool_y = blobs_problem()
    strategy = make(method, validation, combine, estimator, k)
    picked = strategy.select(model, pool, budget)
    expected = reference_selection(model, validation, pool_x, pool_y, pool.labeled_mask, budget, method, combine, estimator, k)
    assert picked.tolist() == expected.tolist()
    assert len(set(picked.tolist())) == budget and not pool.labeled_mask[picked].any()


@pytest.mark.parametrize("method, combine, estimator", [("pfk", "product", "validation_match"), ("pcc", "product", "argmax"), ("eba", "product", "argmax")])
def test_fast_precision_reaches_every_matching_call(method, combine, estimator, monkeypatch):
    # float64 descriptors: the screen is exact, so "fast" must pick what the reference picks; the
    # spy shows the precision reached the ops (the nearest-validation labels and the fill).
    seen = []
    # Each spy sits where its caller reads the op: the estimators call pfk_topk through its module,
    # the matching module imported select_unique by name.
    for name, home in (("pfk_topk", "torch_al.ops.pfk_topk"), ("select_unique", "torch_al.strategies.distribution_matching.matching")):
        module = sys.modules[home]
        real = getattr(module, name)
        spy = lambda *args, _real=real, _name=name, **kwargs: seen.append((_name, kwargs.get("precision"))) or _real(*args, **kwargs)  # noqa: E731
        monkeypatch.setattr(module, name, spy)
    model, validation, pool, pool_x, pool_y = blobs_problem()
    strategy = make(method, validation, combine, estimator, 32, precision="fast")
    batches = -(-pool.unlabeled_indices.numel() // strategy.batch_size)
    picked = strategy.select(model, pool, 6)
    expected = reference_selection(model, validation, pool_x, pool_y, pool.labeled_mask, 6, method, combine, estimator, 32)
    assert picked.tolist() == expected.tolist()
    nearest = [("pfk_topk", "fast")] * batches if estimator == "validation_match" else []  # searched batch by batch
    assert seen == nearest + [("select_unique", "fast")]


def test_cost_counts_the_passes_of_algorithm_1():
    model, validation, pool, _, _ = blobs_problem()
    missed = int((model(validation[0]).argmax(1) != validation[1]).sum())
    unlabeled = 86
    expected = {
        "pfk-product-argmax": (60 + missed + unlabeled, missed + unlabeled),
        "pfk-product-match": (60 + missed + unlabeled, missed + unlabeled),  # the label search needs no pass of its own
        "pcc": (60 + unlabeled, 0),
    }
    for name, (forward, backward) in expected.items():
        strategy = make_strategy(name, validation=validation, layers=LAYERS, progress=False)
        strategy.select(model, pool, 5)
        assert (strategy.last_cost.forward, strategy.last_cost.backward) == (forward, backward), name
    eba = EBA(validation, LAYERS, steps=3, progress=False)
    eba.select(model, pool, 5)
    assert (eba.last_cost.forward, eba.last_cost.backward) == (60 + unlabeled + 3 * (missed + unlabeled), 3 * (missed + unlabeled))


def test_weak_supervision_picks_exactly_budget_distinct_unlabeled_points():
    model, validation, pool, _, _ = blobs_problem(seed=3)
    missed = int((model(validation[0]).argmax(1) != validation[1]).sum())
    for budget in (1, missed - 1, missed, missed + 5, 86):  # fewer, as many and more than the misclassified rows
        picked = PFK(validation, LAYERS, estimator="argmax", k=1, progress=False).select(model, pool, budget)
        assert picked.numel() == budget == len(set(picked.tolist())) and not pool.labeled_mask[picked].any()
    perfect = nn.Sequential(model, nn.Identity())  # nothing misclassified: all of V is matched
    everything_right = (validation[0], model(validation[0]).argmax(1))
    picked = PFK(everything_right, ("0.1", "0.3"), progress=False).select(perfect, pool, 7)
    assert len(set(picked.tolist())) == 7


def test_true_labels_select_rare_classes_more_often_than_random():
    x, y = make_blobs(6000, num_classes=4, dim=8, spread=2.0, seed=1)
    validation = (x[:400], y[:400])
    kept = imbalance(y, torch.arange(400, 6000), ratio=20, minority=(2, 3), seed=1)
    pool = ActivePool(TensorDataset(x[kept], y[kept]))
    generator = torch.Generator().manual_seed(1)
    first = torch.randperm(len(pool), generator=generator)[:40]
    pool.label(first, y[kept][first])
    torch.manual_seed(1)
    model = mlp(8, 4, torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    for _ in range(100):
        optimizer.zero_grad()
        F.cross_entropy(model(x[kept][first]), y[kept][first]).backward()
        optimizer.step()
    rare = lambda picked: torch.isin(y[kept][picked], torch.tensor([2, 3])).float().mean().item()  # noqa: E731
    pfk_rate = rare(PFK(validation, LAYERS, estimator="true", progress=False).select(model, pool, 60))
    random_rate = rare(Random(seed=1).select(None, pool, 60))
    assert pfk_rate > random_rate + 0.25, (pfk_rate, random_rate)


def test_errors_name_what_is_missing():
    model, validation, pool, _, _ = blobs_problem()
    with pytest.raises(ValueError, match="pass validation=\\(inputs, labels\\)"):
        make_strategy("pfk")
    with pytest.raises(ValueError, match="estimator must be one of"):
        PFK(validation, estimator="mode")
    with pytest.raises(ValueError, match="PCC: precision must be 'exact' or 'fast', got 'half'"):
        PCC(validation, precision="half")
    with pytest.raises(ValueError, match="name the descriptor layers"):
        PFK(validation, progress=False).select(model, pool, 3)
