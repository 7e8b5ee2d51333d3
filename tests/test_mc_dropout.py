"""MC-dropout strategies against the formulas of Gal et al. (ICML 2017), in float64."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.strategies import BALD, BatchBALD, MaxEntropy, VariationRatio, batchbald_select, make_strategy
from torch_al.strategies.bayesian.consistent_dropout import ConsistentMasks, dropout_modules


def reference_score(name: str, probabilities: torch.Tensor) -> torch.Tensor:
    """probabilities [N, T, C] → scores [N], written out from the definitions."""
    p = probabilities.double()
    entropy = lambda q: -(q * q.clamp_min(1e-300).log()).sum(-1)  # noqa: E731
    if name == "max-entropy":
        return entropy(p.mean(1))
    if name == "bald":
        return entropy(p.mean(1)) - entropy(p).mean(1)
    votes = torch.stack([torch.bincount(row.argmax(-1), minlength=p.shape[-1]) for row in p])
    return 1 - votes.max(1).values.double() / p.shape[1]


CLASSES = {"max-entropy": MaxEntropy, "bald": BALD, "variation-ratio": VariationRatio}


@pytest.mark.parametrize("name", CLASSES)
def test_scores_match_the_formulas(name):
    probabilities = (torch.randn(40, 7, 5, dtype=torch.float64) * 2).softmax(-1)
    probabilities[0] = probabilities[0, :1]  # all passes agree: BALD 0, variation ratio 0
    scores = CLASSES[name](progress=False).score(probabilities)
    torch.testing.assert_close(scores, reference_score(name, probabilities), atol=1e-12, rtol=1e-12)
    if name != "max-entropy":
        assert abs(float(scores[0])) < 1e-12


class Recorder(nn.Module):
    """A model with batch-norm and dropout that records every forward's input size and output."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        self.calls: list[tuple[int, torch.Tensor]] = []

    def forward(self, x):
        out = self.net(x)
        self.calls.append((x.shape[0], out.detach().clone()))
        return out


@pytest.mark.parametrize("prefix_once", [True, False])
@pytest.mark.parametrize("name", CLASSES)
def test_selection_is_the_top_of_the_formula_over_the_passes_the_model_ran(name, prefix_once):
    passes, chunk, batch = 6, 4, 16
    x = torch.randn(50, 4)
    pool = ActivePool(TensorDataset(x, torch.zeros(50, dtype=torch.int64)))
    pool.label([0, 3, 7], [0, 0, 0])
    model = Recorder()
    model.train()
    running_mean = model.net[1].running_mean.clone()
    strategy = make_strategy(name, passes=passes, chunk=chunk, batch_size=batch, progress=False, prefix_once=prefix_once)
    indices, scores = strategy.select(model, pool, 10, return_scores=True)

    # Each batch is loaded once; its T passes run as ceil(T/chunk) forwards of chunk·B rows from
    # the first dropout on (prefix-once: the model's input has B rows; after the 2 probe forwards).
    calls = model.calls[2:] if prefix_once else model.calls
    if prefix_once:
        assert [(rows, out.shape[0]) for rows, out in model.calls[:2]] == [(4, 4), (2, 4)]  # the probe
    batches = [min(batch, 47 - start) for start in range(0, 47, batch)]
    assert [out.shape[0] for _, out in calls] == [count * b for b in batches for count in (4, 2)]
    assert [rows for rows, _ in calls] == [(1 if prefix_once else count) * b for b in batches for count in (4, 2)]
    per_batch = [torch.cat([calls[2 * i][1].unflatten(0, (4, b)), calls[2 * i + 1][1].unflatten(0, (2, b))]) for i, b in enumerate(batches)]
    probabilities = torch.cat(per_batch, dim=1).transpose(0, 1).softmax(-1)  # [N̂, T, C]
    assert not torch.allclose(probabilities[:, 0], probabilities[:, 1])  # dropout was on
    reference = reference_score(name, probabilities)
    candidates = pool.unlabeled_indices
    order = reference.argsort(descending=True, stable=True)[:10]
    assert indices.tolist() == candidates[order].tolist()  # equal scores: the lower global index first
    torch.testing.assert_close(scores.double(), reference[order], atol=1e-5, rtol=1e-5)
    assert torch.equal(model.net[1].running_mean, running_mean)  # batch-norm stayed in eval mode
    assert model.training and model.net[3].training
    # Images through the dropout part: T·N̂, plus the probe's 2 images × 2 passes × 2 paths.
    assert strategy.last_cost.forward == passes * 47 + (8 if prefix_once else 0) and strategy.last_cost.backward == 0
    assert strategy.last_cost.seconds > 0


def test_a_model_without_dropout_is_an_error():
    pool = ActivePool(TensorDataset(torch.randn(5, 2), torch.zeros(5, dtype=torch.int64)))
    with pytest.raises(ValueError, match="BALD needs dropout"):
        BALD(passes=2, progress=False).select(nn.Linear(2, 3), pool, 2)
    with pytest.raises(ValueError, match="passes and chunk must be ints >= 1"):
        BALD(passes=0)


def _scores(strategy, model, pool, seed=0):
    torch.manual_seed(seed)
    return strategy.select(model, pool, len(pool.unlabeled_indices), return_scores=True)


class Pinned(nn.Module):
    """LeNet-like: a conv prefix, then Dropout2d, pooling, Dropout and two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.prefix = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.drop2 = nn.Dropout2d(0.5)
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 16), nn.ReLU())
        self.drop1 = nn.Dropout(0.3)
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        return self.out(self.drop1(self.head(self.drop2(self.prefix(x)))))


def _pool(n=37, shape=(1, 8, 8)):
    generator = torch.Generator().manual_seed(1)
    return ActivePool(TensorDataset(torch.randn(n, *shape, generator=generator), torch.zeros(n, dtype=torch.int64)))


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("chunk", [3, 7])
def test_prefix_once_draws_the_same_masks_as_full_replication(name, chunk, caplog):
    # Both paths apply pass t's masks to the rows of pass t, so the scores match to rounding.
    model, pool = Pinned().eval(), _pool()
    once = make_strategy(name, passes=7, chunk=chunk, batch_size=10, progress=False)
    full = make_strategy(name, passes=7, chunk=chunk, batch_size=10, progress=False, prefix_once=False)
    with caplog.at_level("WARNING", logger="torch_al"):
        indices, scores = _scores(once, model, pool)
    assert not caplog.records  # no fallback
    reference_indices, reference_scores = _scores(full, model, pool)
    torch.testing.assert_close(scores, reference_scores, atol=1e-5, rtol=1e-5)
    if name != "variation-ratio":  # ties in vote counts can reorder within rounding
        assert indices.tolist() == reference_indices.tolist()
    different_seed = _scores(make_strategy(name, passes=7, chunk=chunk, batch_size=10, progress=False, seed=1), model, pool)[1]
    assert not torch.allclose(different_seed.sort().values, scores.sort().values)  # the masks follow the strategy's seed
    assert once.last_cost.forward == 7 * 37 + 8 and full.last_cost.forward == 7 * 37


def test_prefix_once_runs_the_prefix_once_per_forward_and_on_the_first_dropout_in_execution_order():
    class Reordered(nn.Module):  # `late` is registered first but runs after `early`
        def __init__(self):
            super().__init__()
            self.late = nn.Dropout(0.3)
            self.prefix = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
            self.early = nn.Dropout2d(0.5)
            self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 16), nn.ReLU())
            self.out = nn.Linear(16, 5)

        def forward(self, x):
            return self.out(self.late(self.head(self.early(self.prefix(x)))))

    model, pool = Reordered().eval(), _pool()
    seen = []
    model.prefix[0].register_forward_hook(lambda m, args, out: seen.append(("conv", args[0].shape[0])))
    model.head[2].register_forward_hook(lambda m, args, out: seen.append(("linear", args[0].shape[0])))
    indices, scores = _scores(BALD(passes=5, batch_size=37, progress=False), model, pool)
    assert seen[4:] == [("conv", 37), ("linear", 5 * 37)]  # after the 2 probe forwards: one forward, chunk = T
    reference = _scores(BALD(passes=5, chunk=5, batch_size=37, progress=False, prefix_once=False), model, pool)[1]
    torch.testing.assert_close(scores, reference, atol=1e-5, rtol=1e-5)


class Residual(nn.Module):
    """A join across the dropout: out = fc(drop(h)) + skip(h) with h computed before the dropout."""

    def __init__(self, captured: bool = False) -> None:
        super().__init__()
        self.prefix = nn.Sequential(nn.Linear(6, 12), nn.ReLU())
        self.drop = nn.Dropout(0.5)
        self.fc, self.skip = nn.Linear(12, 4), nn.Linear(12, 4)
        self.captured = captured

    def forward(self, x):
        h = self.prefix(x)
        if self.captured:  # broadcasts the un-repeated rows: no error for a 1-image batch
            return self.fc(self.drop(h)) + h[:, :4]
        return self.fc(self.drop(h)) + self.skip(h)


@pytest.mark.parametrize("captured", [False, True])
@pytest.mark.parametrize("name", CLASSES)
def test_a_join_across_the_dropout_falls_back_to_full_replication(name, captured, caplog):
    model = Residual(captured).eval()
    pool = ActivePool(TensorDataset(torch.randn(23, 6), torch.zeros(23, dtype=torch.int64)))
    once = make_strategy(name, passes=6, chunk=4, batch_size=8, progress=False)
    with caplog.at_level("WARNING", logger="torch_al"):
        indices, scores = _scores(once, model, pool)
        _scores(once, model, pool)  # logged once
    assert len(caplog.records) == 1 and "full replication" in caplog.records[0].getMessage()
    reference_indices, reference = _scores(make_strategy(name, passes=6, chunk=4, batch_size=8, progress=False, prefix_once=False), model, pool)
    assert torch.equal(scores, reference) and torch.equal(indices, reference_indices)
    assert once.last_cost.forward == 6 * 23 + 8


def test_a_dropout_whose_output_is_mixed_across_rows_falls_back(caplog):
    class Pooled(nn.Module):  # the dropout's rows are averaged per pass with the batch size read before it
        def __init__(self):
            super().__init__()
            self.prefix, self.drop, self.fc = nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2)

        def forward(self, x):
            h = self.drop(self.prefix(x))
            return self.fc(h - h.unflatten(0, (-1, x.shape[0])).mean(1).repeat_interleave(x.shape[0], 0) * 0.5)

    model = Pooled().eval()
    pool = ActivePool(TensorDataset(torch.randn(9, 3), torch.zeros(9, dtype=torch.int64)))
    with caplog.at_level("WARNING", logger="torch_al"):
        scores = _scores(BALD(passes=4, chunk=2, batch_size=4, progress=False), model, pool)[1]
    assert len(caplog.records) == 1
    reference = _scores(BALD(passes=4, chunk=2, batch_size=4, progress=False, prefix_once=False), model, pool)[1]
    assert torch.equal(scores, reference)


def test_a_dropout_module_called_twice_is_repeated_at_its_first_call_only(caplog):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.drop, self.b, self.c = nn.Linear(5, 9), nn.Dropout(0.4), nn.Linear(9, 9), nn.Linear(9, 3)

        def forward(self, x):
            return self.c(self.drop(self.b(self.drop(self.a(x)))))

    model = Twice().eval()
    pool = ActivePool(TensorDataset(torch.randn(21, 5), torch.zeros(21, dtype=torch.int64)))
    with caplog.at_level("WARNING", logger="torch_al"):
        scores = _scores(BALD(passes=5, chunk=3, batch_size=6, progress=False), model, pool)[1]
    assert not caplog.records
    reference = _scores(BALD(passes=5, chunk=3, batch_size=6, progress=False, prefix_once=False), model, pool)[1]
    torch.testing.assert_close(scores, reference, atol=1e-6, rtol=1e-5)


def test_a_dropout_that_never_runs_falls_back_and_a_single_pass_needs_no_probe(caplog):
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.drop = nn.Linear(3, 2), nn.Dropout(0.5)

        def forward(self, x):
            return self.fc(x)

    pool = ActivePool(TensorDataset(torch.randn(6, 3), torch.zeros(6, dtype=torch.int64)))
    with caplog.at_level("WARNING", logger="torch_al"):
        scores = _scores(BALD(passes=3, progress=False), Unused(), pool)[1]
    assert len(caplog.records) == 1 and "no dropout module ran" in caplog.records[0].getMessage()
    assert torch.allclose(scores, torch.zeros(6), atol=1e-6)  # all passes equal: BALD 0
    strategy = BALD(passes=1, progress=False)
    _scores(strategy, Pinned().eval(), _pool(n=5))
    assert strategy.last_cost.forward == 5


# Consistent masks: pass t is one weight sample θ_t shared by every item of the pool.


def _probabilities(model, pool, passes=9, seed=0, **options):
    """[N̂, T, C] probabilities of the MC passes the strategy runs, in unlabeled order."""
    strategy = BatchBALD(passes=passes, progress=False, seed=seed, **options)
    rows = pool.unlabeled_indices
    return strategy.probabilities_of(model, pool, rows, 1)


def _pool_with_copies(n=37, copies=((3, 29), (3, 36), (10, 11))):
    """A pool whose item b is a copy of item a for each (a, b)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 8, 8, generator=generator)
    for a, b in copies:
        x[b] = x[a]
    return ActivePool(TensorDataset(x, torch.zeros(n, dtype=torch.int64)))


@pytest.mark.parametrize("prefix_once", [True, False])
@pytest.mark.parametrize("batch_size, chunk", [(1, None), (5, 2), (10, 3), (37, None), (36, 9)])
def test_copies_of_one_input_get_the_same_prediction_in_every_pass(batch_size, chunk, prefix_once):
    model, pool = Pinned().eval(), _pool_with_copies()
    probabilities = _probabilities(model, pool, batch_size=batch_size, chunk=chunk, prefix_once=prefix_once)
    for a, b in ((3, 29), (3, 36), (10, 11)):  # other batches, other positions in the loader
        torch.testing.assert_close(probabilities[b], probabilities[a], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(probabilities[3, 0], probabilities[3, 1])  # the passes differ
    # The same weight samples whatever the batching, chunking and path.
    reference = _probabilities(model, pool, batch_size=37, chunk=9, prefix_once=False)
    torch.testing.assert_close(probabilities, reference, atol=1e-5, rtol=1e-5)


def test_the_masks_follow_the_seed_and_the_round_not_torch_s_global_rng():
    model, pool = Pinned().eval(), _pool_with_copies()
    torch.manual_seed(0)
    first = _probabilities(model, pool)
    torch.manual_seed(1)
    assert torch.equal(_probabilities(model, pool), first)
    assert not torch.allclose(_probabilities(model, pool, seed=1), first)
    pool.label([0], [0])
    pool.propose(torch.tensor([1]))
    pool.label([1], [0])  # round 1: new weight samples
    assert not torch.allclose(_probabilities(model, pool)[:5], first[2:7])
    # The first T passes of a larger T are the same passes.
    torch.testing.assert_close(_probabilities(model, pool, passes=12)[:, :9], _probabilities(model, pool), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", [nn.Dropout, nn.AlphaDropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout])
def test_each_covered_module_applies_torch_s_rule_with_one_mask_per_pass(kind):
    shape = {nn.Dropout1d: (6, 5), nn.Dropout2d: (6, 3, 4), nn.Dropout3d: (6, 2, 3, 2), nn.FeatureAlphaDropout: (6, 3, 4)}.get(kind, (40,))
    module, p, passes, items = kind(0.4), 0.4, 5, 3
    x = torch.full((passes * items, *shape), 0.7, dtype=torch.float64)
    masks = ConsistentMasks(dropout_modules(nn.Sequential(module)), passes, seed=3)
    masks.passes(0, passes, items)
    with masks.applied():
        assert not module.training
        ours = module(x).unflatten(0, (passes, items))
    module.train()
    torch.manual_seed(0)
    theirs = module(x)
    assert ours.unique().tolist() == pytest.approx(theirs.unique().tolist())  # the kept and the dropped value
    assert all(torch.equal(ours[t, 0], ours[t, i]) for t in range(passes) for i in range(items))  # one mask per pass
    assert not torch.equal(ours[0, 0], ours[1, 0])
    if kind not in (nn.Dropout, nn.AlphaDropout):  # whole channels kept or dropped
        channels = ours[:, 0].flatten(2)
        assert torch.equal(channels.amin(2), channels.amax(2))
    kept = (ours[:, 0] == ours.max()).double().mean()
    assert abs(float(kept) - (1 - p)) < 0.25  # masks drawn at the module's rate
    masks.passes(2, 2, items)  # a chunk of passes 2 and 3 reads those passes' masks
    with masks.applied():
        assert torch.equal(module(x[: 2 * items]).unflatten(0, (2, items)), ours[2:4])


def test_a_module_called_twice_in_a_forward_draws_a_mask_per_call():
    module = nn.Dropout(0.5)
    masks = ConsistentMasks(dropout_modules(module), passes=2, seed=0)
    masks.passes(0, 2, 1)
    x = torch.ones(2, 64)
    with masks.applied():
        first, second = module(x), module(x)
        masks.passes(0, 2, 1)  # the next forward: the same masks again
        assert torch.equal(module(x), first) and torch.equal(module(x), second)
    assert not torch.equal(first, second)


def test_masks_take_t_times_the_features_per_module():
    model, pool = Pinned().eval(), _pool_with_copies()
    masks = ConsistentMasks(dropout_modules(model), passes=9, seed=0)
    masks.passes(0, 9, 2)
    with masks.applied(), torch.no_grad():
        model(pool.dataset[0][0].unsqueeze(0).repeat(18, 1, 1, 1))
    shapes = sorted(tuple(keep.shape) for _, module_masks in masks.modules for keep in module_masks.cache.values())
    assert shapes == [(9, 4, 1, 1), (9, 16)]  # Dropout2d: a mask per channel; Dropout: per feature


def test_an_uncovered_dropout_rule_and_a_dropout_not_batch_first_are_named_errors():
    class Custom(nn.Dropout):
        def forward(self, x):
            return x * 2

    class Inherited(nn.Dropout):  # torch's rule unchanged: covered
        pass

    pool = ActivePool(TensorDataset(torch.randn(6, 3), torch.zeros(6, dtype=torch.int64)))
    model = nn.Sequential(nn.Linear(3, 4), Custom(0.5), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"module '1' \(Custom\) overrides the dropout rule; consistent masks cover Dropout, Dropout1d"):
        BALD(passes=2, progress=False).select(model, pool, 2)
    assert [name for name, _ in dropout_modules(nn.Sequential(nn.Linear(3, 4), Inherited(0.5)))] == ["1"]

    class FeaturesFirst(nn.Module):  # the dropout sees (features, rows)
        def __init__(self):
            super().__init__()
            self.fc, self.drop, self.out = nn.Linear(3, 5), nn.Dropout(0.5), nn.Linear(5, 2)

        def forward(self, x):
            return self.out(self.drop(self.fc(x).T).T)

    with pytest.raises(ValueError, match=r"module 'drop' got input of shape \(5, 12\); consistent masks need one row per item and pass first \(2 passes × 6 items"):
        BALD(passes=2, progress=False, batch_size=6).select(FeaturesFirst(), pool, 2)


def test_the_per_item_marginal_is_unchanged_in_expectation():
    # Consistent masks change which items share a weight sample, not the distribution of an
    # item's prediction: with many passes, the mean prediction and BALD match per-item masks'.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)).eval()
    x = torch.randn(6, 4) * 2
    pool = ActivePool(TensorDataset(x, torch.zeros(6, dtype=torch.int64)))
    passes = 4000
    consistent = _probabilities(model, pool, passes=passes, batch_size=6).double()
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        per_item = model(x.repeat(passes, 1)).softmax(-1).unflatten(0, (passes, 6)).transpose(0, 1).double()
    model.eval()
    standard_error = per_item.std(1) / passes**0.5
    assert ((consistent.mean(1) - per_item.mean(1)).abs() < 4 * standard_error + 1e-9).all()
    bald = reference_score("bald", consistent)
    torch.testing.assert_close(bald, reference_score("bald", per_item), atol=0.01, rtol=0.05)


def test_batchbald_of_an_input_and_its_copy_is_their_joint_entropy_minus_twice_the_conditional():
    model, pool = Pinned().eval(), _pool_with_copies()
    probabilities = _probabilities(model, pool, passes=16).double()
    pair = probabilities[[3, 29]] / probabilities[[3, 29]].sum(-1, keepdim=True)  # rows summing to 1 in float64
    assert torch.equal(pair[0], pair[1])
    _, scores = batchbald_select(pair, 2)
    p = pair[0]  # [T, C]: both items see θ_t, so p(y, y') = mean_t p_t(y) p_t(y')
    joint = torch.einsum("tc,td->cd", p, p) / p.shape[0]
    joint_entropy = -(joint * joint.clamp_min(1e-300).log()).sum()
    conditional = -(p * p.clamp_min(1e-300).log()).sum(1).mean()
    torch.testing.assert_close(scores[1], joint_entropy - 2 * conditional, atol=1e-12, rtol=1e-12)
    assert scores[1] < 2 * scores[0]  # the copy adds less than a second, independent item would
