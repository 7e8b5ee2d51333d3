"""EMOC against a float64 reference that forms the per-item Jacobians ∇_θ f(x) and the gradients
∇_θ L(θ; (x', y')) explicitly with torch.func; the seeded sample; ties; bad input."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.models import LeNet
from torch_al.strategies import EMOC, make_strategy
from torch_al.strategies.uncertainty import emoc

LABELED = [0, 3, 7]


def flat(tensors: dict[str, torch.Tensor], leading: int) -> torch.Tensor:
    return torch.cat([t.reshape(*t.shape[:leading], -1) for t in tensors.values()], -1)


def reference_scores(model: nn.Module, candidates: torch.Tensor, sample: torch.Tensor, layers: list[str], label: str) -> torch.Tensor:
    """Per item x' of ``candidates``: Σ_y' w(y') mean_s Σ_c |(∇_θ f(x_s) ∇_θ CE(f(x'), y'))_c| over
    the items x_s of ``sample``, θ the layers' parameters, with the Jacobians and gradients formed
    explicitly, one row per item and per (item, label) (w = 1 at the argmax, or p(y'|x'))."""
    model = model.double().eval()
    theta = {f"{layer}.{name}": p.detach() for layer in layers for name, p in model.get_submodule(layer).named_parameters()}
    outputs = lambda params, item: functional_call(model, params, (item[None],))[0]  # noqa: E731
    loss = lambda params, item, y: F.cross_entropy(outputs(params, item)[None], y[None])  # noqa: E731
    jacobians = flat(vmap(jacrev(outputs), in_dims=(None, 0))(theta, sample.double()), 2)  # [S, C, |θ|]
    p = vmap(outputs, in_dims=(None, 0))(theta, candidates.double()).softmax(1).detach()  # [N, C]
    classes = p.shape[1]
    if label == "map":
        items, labels, weights = torch.arange(len(p)), p.argmax(1), torch.ones(len(p), dtype=p.dtype)
    else:
        items, labels, weights = torch.arange(len(p)).repeat_interleave(classes), torch.arange(classes).repeat(len(p)), p.flatten()
    gradients = flat(vmap(grad(loss), in_dims=(None, 0, 0))(theta, candidates.double()[items], labels), 1)  # [Q, |θ|]
    changes = torch.einsum("scp,qp->qsc", jacobians, gradients).abs().sum(2).mean(1)  # [Q]
    return torch.zeros(len(p), dtype=p.dtype).index_add(0, items, weights * changes)


def mlp(batch_norm: bool = False, log_softmax: bool = False, inplace: bool = False) -> nn.Sequential:
    torch.manual_seed(1)
    layers = [nn.Linear(5, 7), *([nn.BatchNorm1d(7)] if batch_norm else []), nn.ReLU(inplace=inplace), nn.Linear(7, 4)]
    return nn.Sequential(*layers, *([nn.LogSoftmax(1)] if log_softmax else []))


def make_pool(n: int = 40, features: int = 5, dtype=torch.float64) -> ActivePool:
    generator = torch.Generator().manual_seed(2)
    pool = ActivePool(TensorDataset(torch.randn(n, features, generator=generator, dtype=dtype) * 2, torch.zeros(n, dtype=torch.int64)))
    pool.label(LABELED, [0] * len(LABELED))
    return pool


def check_against_reference(model, pool, layers, label, budget=6, **options):
    strategy = EMOC(label=label, linear_layers=layers, sample_size=options.pop("sample_size", 9), batch_size=options.pop("batch_size", 8), progress=False, **options)
    picked, scores = strategy.select(model, pool, budget, return_scores=True)
    x = pool.dataset.tensors[0]
    candidates = pool.unlabeled_indices
    reference = reference_scores(model, x[candidates], x[strategy.sample_indices(pool)], layers or ["2"], label)
    order = reference.argsort(descending=True, stable=True)[:budget]
    assert picked.tolist() == candidates[order].tolist()
    torch.testing.assert_close(scores.double(), reference[order], rtol=1e-9, atol=1e-12)
    return strategy


@pytest.mark.parametrize("label", ["map", "expected"])
@pytest.mark.parametrize("layers", [None, ["0"], ["0", "2"]], ids=["last", "hidden", "both"])
def test_scores_equal_the_torch_func_reference(label, layers):
    model, pool = mlp().double(), make_pool()
    strategy = check_against_reference(model, pool, layers, label)
    n_hat, sample, classes = 37, 9, 4
    labels = 1 if label == "map" else classes
    backward = 0 if layers is None else classes * sample + labels * n_hat  # the last layer's output is the logits: J = I, no backward
    assert (strategy.last_cost.forward, strategy.last_cost.backward) == (sample + n_hat, backward)


def test_with_the_last_layer_the_score_is_uncertainty_times_alignment_with_the_sample():
    """docs/methods.md §23: with J = I, score(x') = ‖p(x') − e_ŷ‖₁ · mean_x |h(x)·h(x') + 1|, the
    factorisation behind EMOC's majority bias."""
    model, pool = mlp().double(), make_pool()
    strategy = EMOC(sample_size=9, progress=False)
    candidates = pool.unlabeled_indices
    x = pool.dataset.tensors[0]
    hidden = lambda rows: model[:2](x[rows])  # noqa: E731  (the last layer's input)
    with torch.no_grad():
        p = model(x[candidates]).softmax(1)
        uncertainty = (p - nn.functional.one_hot(p.argmax(1), p.shape[1])).abs().sum(1)
        alignment = (hidden(candidates) @ hidden(strategy.sample_indices(pool)).T + 1).abs().mean(1)
    torch.testing.assert_close(strategy.item_scores(model, pool, candidates).double(), uncertainty * alignment, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("label", ["map", "expected"])
def test_an_output_that_is_not_the_last_layer_itself_goes_through_autograd(label):
    model = mlp(log_softmax=True).double()  # f = log-probabilities: J of the last layer is not I
    strategy = check_against_reference(model, make_pool(), ["2"], label, sample_size=40, batch_size=16)
    assert strategy.last_cost.backward == 4 * 40 + (1 if label == "map" else 4) * 37


def test_blocks_of_sample_rows_give_the_same_scores(monkeypatch):
    model, pool = mlp().double(), make_pool()
    whole = EMOC(linear_layers=["0", "2"], label="expected", sample_size=30, progress=False).select(model, pool, 37, return_scores=True)
    monkeypatch.setattr(emoc, "_CHANGE_ELEMENTS", 1)  # one sample row per block
    blocks = EMOC(linear_layers=["0", "2"], label="expected", sample_size=30, progress=False).select(model, pool, 37, return_scores=True)
    assert blocks[0].tolist() == whole[0].tolist()
    torch.testing.assert_close(blocks[1], whole[1], rtol=1e-12, atol=0)


def test_batch_norm_runs_in_eval_mode_and_the_model_is_left_as_it_was():
    model = mlp(batch_norm=True).double()
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    model.train()
    check_against_reference(model.train(), make_pool(), ["0", "3"], "map", batch_size=5)  # the reference runs in eval mode
    assert model.training is False  # the reference's eval(); EMOC restores the mode it found:
    model.train()
    EMOC(linear_layers=["0"], progress=False).select(model, make_pool(), 2)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_an_in_place_op_after_a_chosen_layer_does_not_change_its_gradient():
    check_against_reference(mlp(inplace=True).double(), make_pool(), ["0", "2"], "expected")


@pytest.mark.parametrize("inplace", [False, True])
def test_a_frozen_model_scores_the_same(inplace):
    model, pool = mlp(inplace=inplace).double(), make_pool()
    expected = EMOC(linear_layers=["0", "2"], label="expected", progress=False).select(model, pool, 5, return_scores=True)
    model.requires_grad_(False)
    frozen = EMOC(linear_layers=["0", "2"], label="expected", progress=False).select(model, pool, 5, return_scores=True)
    assert frozen[0].tolist() == expected[0].tolist() and torch.equal(frozen[1], expected[1])


def test_float32_agrees_with_float64():
    model, pool = mlp(), make_pool(dtype=torch.float32)
    picked, scores = EMOC(linear_layers=["0", "2"], sample_size=20, batch_size=7, progress=False).select(model, pool, 37, return_scores=True)
    x = pool.dataset.tensors[0]
    reference = reference_scores(mlp(), x[picked], x[EMOC(sample_size=20).sample_indices(pool)], ["0", "2"], "map")
    torch.testing.assert_close(scores.double(), reference, rtol=1e-4, atol=1e-6)
    assert scores.dtype == torch.float32


def test_the_sample_is_seeded_by_seed_and_round_and_covers_the_whole_pool():
    pool = make_pool(n=200)
    first = EMOC(sample_size=50, seed=4).sample_indices(pool)
    assert first.tolist() == EMOC(sample_size=50, seed=4).sample_indices(pool).tolist() == sorted(set(first.tolist()))
    assert first.numel() == 50 and first.tolist() != EMOC(sample_size=50, seed=5).sample_indices(pool).tolist()
    assert EMOC(sample_size=500).sample_indices(pool).tolist() == list(range(200))  # labeled items too
    pool.propose([1, 2])
    pool.label([1, 2], [0, 0])
    assert EMOC(sample_size=50, seed=4).sample_indices(pool).tolist() != first.tolist()  # a new round, a new sample
    model = mlp().double()
    runs = [EMOC(sample_size=30, seed=4, progress=False).select(model, pool, 10, return_scores=True) for _ in range(2)]
    assert runs[0][0].tolist() == runs[1][0].tolist() and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("layers", [None, ["0", "2"]])
def test_ties_go_to_the_lower_global_index(layers):
    # Every item the same. In float64: float32 matrix products already differ in the last bit
    # between identical rows of one batch, in the model's own forward.
    pool = ActivePool(TensorDataset(torch.ones(8, 5, dtype=torch.float64), torch.zeros(8, dtype=torch.int64)))
    pool.label([1], [0])
    picked, scores = EMOC(linear_layers=layers, progress=False).select(mlp().double(), pool, 3, return_scores=True)
    assert picked.tolist() == [0, 2, 3] and scores.unique().numel() == 1


@pytest.mark.parametrize("label", ["map", "expected"])
def test_lenet_through_make_strategy(label):
    torch.manual_seed(3)
    model = LeNet().double()
    images = torch.randn(16, 1, 28, 28, dtype=torch.float64)
    pool = ActivePool(TensorDataset(images, torch.zeros(16, dtype=torch.int64)))
    pool.label([2, 5], [0, 1])
    strategy = make_strategy("emoc", label=label, linear_layers=["fc1", "fc2"], sample_size=6, seed=3, batch_size=5, progress=False)
    picked, scores = strategy.select(model, pool, 4, return_scores=True)
    candidates = pool.unlabeled_indices
    reference = reference_scores(model, images[candidates], images[strategy.sample_indices(pool)], ["fc1", "fc2"], label)
    order = reference.argsort(descending=True, stable=True)[:4]
    assert picked.tolist() == candidates[order].tolist()
    torch.testing.assert_close(scores.double(), reference[order], rtol=1e-9, atol=1e-12)
    default = make_strategy("emoc", seed=3, progress=False).select(LeNet(), ActivePool(TensorDataset(images.float(), torch.zeros(16))), 3)
    assert default.numel() == 3


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head, self.aside = nn.Linear(5, 5), nn.Linear(5, 4), nn.Linear(5, 4)

    def forward(self, x):
        self.aside(x)  # runs, but the logits do not depend on it
        return self.head(self.body(self.body(x)))


class Sequence3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix, self.head = nn.Linear(5, 5), nn.Linear(5, 4)

    def forward(self, x):
        return self.head(self.mix(x.reshape(len(x), 1, 5)).sum(1))


@pytest.mark.parametrize(
    "make_model, layers, message",
    [
        (mlp, ["fc9"], "EMOC: linear_layers names 'fc9', but the model has no module of that name"),
        (mlp, ["1"], "EMOC: linear_layers must name nn.Linear modules; '1' is a ReLU"),
        (lambda: nn.Sequential(nn.Unflatten(1, (1, 5)), nn.Conv1d(1, 4, 5), nn.Flatten()), None,
         r"EMOC: the model has no nn.Linear module \(an exported or TorchScript model keeps none: pass the eager model\); name the layers with linear_layers=\.\.\."),
        (Twice, ["body"], "EMOC: linear_layers layer 'body' must run once per forward; it ran 2 times"),
        (Twice, ["aside"], "EMOC: the logits do not depend on linear_layers layer 'aside': its parameters cannot change the outputs"),
        (Sequence3d, ["mix"], r"EMOC: linear_layers layer 'mix' must see inputs of shape \(B, features\) with B = 8, one row per item; got shape \(8, 1, 5\)"),
    ],
)
def test_bad_models_name_the_argument_and_record_nothing(make_model, layers, message):
    pool = make_pool(dtype=torch.float32)
    state = pool.state_dict()
    with pytest.raises(ValueError, match=f"^{message}$"):
        EMOC(linear_layers=layers, batch_size=8, progress=False).select(make_model(), pool, 3)
    assert_unchanged(pool, state)


def test_nan_logits_and_a_large_budget_record_nothing():
    pool = make_pool(dtype=torch.float32)
    pool.dataset.tensors[0][21, 2] = float("nan")
    state = pool.state_dict()
    with pytest.raises(ValueError, match=r"^EMOC: the model returned non-finite logits \(nan\) for pool item 21$"):
        EMOC(progress=False).select(mlp(), pool, 3)
    with pytest.raises(ValueError, match="budget 38 is larger than the 37 unlabeled items left in the pool"):
        EMOC(progress=False).select(mlp(), pool, 38)
    assert_unchanged(pool, state)


def assert_unchanged(pool: ActivePool, state: dict) -> None:
    for key, value in pool.state_dict().items():
        assert torch.equal(value, state[key]) if torch.is_tensor(value) else value == state[key], key


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"label": "mode"}, ValueError, r"label must be one of \('map', 'expected'\), got 'mode'"),
        ({"linear_layers": "fc2"}, TypeError, "linear_layers must be a sequence of module names, got 'fc2'"),
        ({"linear_layers": ["fc2", "fc2"]}, ValueError, "linear_layers must name at least one layer, each once"),
        ({"linear_layers": []}, ValueError, "linear_layers must name at least one layer, each once"),
        ({"sample_size": 0}, ValueError, "sample_size must be an int >= 1, got 0"),
        ({"batch_size": 2.0}, ValueError, "batch_size must be an int >= 1, got 2.0"),
    ],
)
def test_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        EMOC(**options)


def test_the_loop_runs_emoc_and_repeats_itself(tmp_path):
    from al_scenario import BUDGET, INITIAL, make_loop

    ledgers = []
    for run in range(2):
        loop = make_loop(tmp_path / str(run), strategy=EMOC(linear_layers=["0", "2"], sample_size=50, seed=1, progress=False), rounds=2)
        loop.run()
        ledgers.append(loop.pool.ledger.index.tolist())
    assert ledgers[0] == ledgers[1] and len(ledgers[0]) == INITIAL + 2 * BUDGET
