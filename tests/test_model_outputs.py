"""Models whose outputs are not (N, C) logits: every strategy that reads them says what it got.
Strategies are asked through ``next_sub_batch``: the whole query for most, the first sub-batch of
a round for those that ask within it (GALAXY, DIRECT, pfk-direct)."""

import inspect
import re

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool
from torch_al.attention import compute_attention
from torch_al.checks import LogitsCheck, check_logits
from torch_al.strategies import STRATEGIES, Committee, Ensemble, Staged, make_strategy, predict_probabilities

HAS_OPS = all(hasattr(torch.ops.torch_al, op) for op in ("pfk_topk", "kcenter_greedy", "facility_location_greedy"))
LAYERS = ("body.1", "body.4")  # the two hidden ReLUs of Net
MARKER = 1e4  # an input whose first feature is MARKER gets NaN logits
MARKED = 37  # its global index; items 0..9 are labeled, so its position among the unlabeled is 27
MODEL_FREE = ("random", "vaal", "m2-vaal", "m2-anchor-distance", "m2-confidence-distance")  # they never call the task model (VAAL, M2-VAAL train networks of their own)
TRAINED_WITH_THE_MODEL = ("learning-loss",)  # selects only after training its module (tests/test_learning_loss.py)
IMAGES_ONLY = ("bgadl",)  # rejects these flat inputs first; its scoring is BALD's, checked here as "bald" (tests/test_bgadl.py)
READS_MODEL = [name for name in STRATEGIES if name not in MODEL_FREE + TRAINED_WITH_THE_MODEL + IMAGES_ONLY]
READS_EMBEDDINGS_ONLY = ("coreset", "dal", "typiclust", "probcover", "maxherding")
READS_LOGITS = [name for name in READS_MODEL if name not in READS_EMBEDDINGS_ONLY]


def strategy_params(names):
    needs_ops = lambda name: name in ("coreset", "suggestive", "badge", "typiclust", "probcover", "maxherding", "uherding") or name.startswith(("pcc", "pfk", "eba"))  # noqa: E731
    return [pytest.param(name, marks=pytest.mark.skipif(needs_ops(name) and not HAS_OPS, reason="needs the compiled ops")) for name in names]


class Net(nn.Module):
    """Dropout (MC dropout), descriptor layers (PCC/PFK/EBA) and a last Linear (CoreSet); ``output``
    says what forward returns. Records the shape of the last thing it returned."""

    def __init__(self, output: str = "logits") -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)
        self.output = output
        self.returned: tuple[int, ...] | None = None

    def forward(self, x):
        hidden = self.body(x)
        if self.output == "nan":  # NaN embeddings (the head's input) and logits for marked items only
            hidden = torch.where(x[:, :1] > MARKER / 2, torch.full_like(hidden, float("nan")), hidden)
        logits = self.head(hidden)
        outputs = {
            "logits": logits,
            "nan": logits,
            "flat": logits[:, 0],
            "one-class": logits[:, :1],
            "tuple": (logits, hidden),
            "dict": {"logits": logits},
            "labels": logits.argmax(1, keepdim=True).expand(-1, 3),
            "short": logits[1:],
            "inf": torch.where(x[:, :1] > MARKER / 2, float("-inf"), logits),
        }[self.output]
        self.returned = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else None
        return outputs


def problem(marked: tuple[int, ...] = ()):
    """A pool of 60 items, 10 labeled, the ``marked`` ones (global indices) with MARKER inputs,
    plus a validation set of 20."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(80, 4, generator=generator), torch.randint(0, 3, (80,), generator=generator)
    x[[20 + index for index in marked], 0] = MARKER
    pool = ActivePool(TensorDataset(x[20:], y[20:]))
    pool.label(list(range(10)), y[20:30])
    return pool, (x[:20], y[:20])


SMALL = dict(layers=LAYERS, passes=4, chunk=2, steps=2, samples=2)  # for the strategies that take them


def build(name: str, validation):
    accepted = inspect.signature(STRATEGIES[name]).parameters
    small = {key: value for key, value in SMALL.items() if key in accepted}
    return make_strategy(name, validation=validation, batch_size=8, progress=False, **small)


def is_ensemble(name: str) -> bool:
    return isinstance(build(name, problem()[1]), Ensemble)


def class_name(name: str) -> str:
    """Who the message names: the strategy, for the ensembles the member (the first one here), for
    a round in stages the stage that read the model (the first)."""
    strategy = build(name, problem()[1])
    if isinstance(strategy, Staged):
        return type(strategy.first).__name__
    return type(strategy).__name__ + (" member 0" if is_ensemble(name) else "")


def model_for(name: str, output: str) -> nn.Module:
    """A Net, or for the ensemble strategies a committee of two (both misbehave alike)."""
    return Committee([Net(output), Net(output)]) if is_ensemble(name) else Net(output)


def returned(model: nn.Module) -> tuple[int, ...] | None:
    return model.members[0].returned if isinstance(model, Committee) else model.returned


@pytest.mark.parametrize("name", strategy_params(READS_LOGITS))
def test_flat_outputs_name_the_shape(name):
    pool, validation = problem()
    model = model_for(name, "flat")
    with pytest.raises(ValueError) as error:
        build(name, validation).next_sub_batch(model, pool, 3)
    expected = f"{class_name(name)}: the model must return logits of shape (N, C); got shape {returned(model)}"
    assert str(error.value) == expected
    assert len(returned(model)) == 1


@pytest.mark.parametrize("name", strategy_params(READS_LOGITS))
def test_tuple_outputs_name_the_type(name):
    pool, validation = problem()
    with pytest.raises(ValueError) as error:
        build(name, validation).next_sub_batch(model_for(name, "tuple"), pool, 3)
    assert str(error.value) == f"{class_name(name)}: the model must return logits of shape (N, C) as a Tensor; got a tuple"


@pytest.mark.parametrize("name", strategy_params(READS_MODEL))
def test_nan_names_the_global_index_of_the_first_bad_item(name):
    pool, validation = problem(marked=(MARKED,))
    position = int((pool.unlabeled_indices == MARKED).nonzero())
    assert position != MARKED  # the message must name the pool's index, not the position
    what = "embeddings" if name in READS_EMBEDDINGS_ONLY else "logits"  # the strategies that read both check the logits first
    with pytest.raises(ValueError) as error:
        build(name, validation).next_sub_batch(model_for(name, "nan"), pool, 3)
    assert str(error.value) == f"{class_name(name)}: the model returned non-finite {what} (nan) for pool item {MARKED}"


@pytest.mark.parametrize("name", strategy_params(["entropy", "bald", "pfk", "eba"]))
@pytest.mark.parametrize(
    "output, message",
    [
        ("one-class", r"must return logits of shape \(N, C\) with C >= 2 \(one logit per class\); got shape \((8|16), 1\)"),
        ("dict", r"must return logits of shape \(N, C\) as a Tensor; got a dict"),
        ("labels", r"must return floating-point logits of shape \(N, C\); got dtype torch.int64"),
        ("short", r"must return logits of shape \(N, C\) with N = (8|16), the batch size; got shape \((7|15), 3\)"),
    ],
)
def test_other_bad_outputs(name, output, message):
    pool, validation = problem()
    with pytest.raises(ValueError, match=f"^{class_name(name)}: the model {message}$"):
        build(name, validation).select(Net(output), pool, 3)


def test_inf_is_named_and_the_first_bad_item_wins():
    pool, validation = problem(marked=(MARKED, 50))  # 50 is a later bad item, in another batch
    with pytest.raises(ValueError, match=f"^Margin: the model returned non-finite logits \\(inf\\) for pool item {MARKED}$"):
        build("margin", validation).select(Net("inf"), pool, 3)


@pytest.mark.skipif(not HAS_OPS, reason="needs the compiled ops")
def test_a_bad_validation_item_is_named_as_such():
    pool, (x, y) = problem()
    x = x.clone()
    x[13, 0] = MARKER
    with pytest.raises(ValueError, match=r"^PFK: the model returned non-finite logits \(nan\) for validation item 13$"):
        build("pfk", (x, y)).select(Net("nan"), pool, 3)


@pytest.mark.skipif(not HAS_OPS, reason="needs the compiled ops")
def test_attention_checks_the_unscaled_rows_by_global_index():
    x = torch.randn(12, 4)
    x[9, 0] = MARKER
    loader = DataLoader(TensorDataset(x), batch_size=4)
    check = LogitsCheck("EBA", torch.arange(100, 112))
    with pytest.raises(ValueError, match=r"^EBA: the model returned non-finite logits \(nan\) for pool item 109$"):
        compute_attention(Net("nan"), loader, LAYERS, steps=4, chunk=3, progress=False, check=check)
    with pytest.raises(ValueError, match=r"^EBA: the model must return logits of shape \(N, C\) as a Tensor; got a tuple$"):
        compute_attention(Net("tuple"), loader, LAYERS, steps=4, chunk=3, progress=False, check=check)


def test_predict_probabilities_names_loader_rows_by_default():
    x = torch.randn(10, 4)
    x[6, 0] = MARKER
    with pytest.raises(ValueError, match=re.escape("predict_probabilities: the model returned non-finite logits (nan) for loader row 6")):
        predict_probabilities(Net("nan"), DataLoader(x, batch_size=4), progress=False)


def test_check_logits_passes_good_logits_through_and_searches_only_on_failure():
    logits = torch.randn(5, 3)
    assert check_logits("Entropy", logits, 5, torch.arange(10, 15)) is logits
    logits[3, 1] = float("nan")
    logits[4, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^Entropy: the model returned non-finite logits \(nan\) for pool item 13$"):
        check_logits("Entropy", logits, 5, torch.arange(10, 15))
    with pytest.raises(ValueError, match=r"^Entropy: the model must return logits of shape \(N, C\); got shape \(\)$"):
        check_logits("Entropy", torch.tensor(1.0), 5)


@pytest.mark.parametrize("name", strategy_params(READS_MODEL))
def test_valid_outputs_still_select(name):
    pool, validation = problem()
    picked = build(name, validation).next_sub_batch(model_for(name, "logits"), pool, 5).indices  # the whole query, or a round's first sub-batch
    assert 0 < picked.numel() <= 5 and picked.numel() == len(set(picked.tolist())) and not pool.labeled_mask[picked].any()
