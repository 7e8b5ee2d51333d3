"""BGADL: the query is BALD's; the generated images stay near their sources in the encoder's
space; through the loop the training set grows by 2P per round and the ledger by P, generated
items never reach the pool, and a killed and resumed run trains on the same sets; the
GeneratedItemsPool view alone; bad inputs and options; make_strategy and torch-al run."""

import hashlib

import pytest
import torch
from al_scenario import outcome, run_until_stopped
from striped_images import striped_images
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActiveLearningLoop, ActivePool, ActiveSampler, GeneratedItemsPool, PseudoLabeledPool, PseudoLabelSet
from torch_al.experiment import RunConfig, run_experiment
from torch_al.loop import CHECKPOINT_KIND
from torch_al.persistence import load_state
from torch_al.strategies import BALD, BGADL, make_strategy

FAST = dict(passes=8, generator_iterations=5, generator_batch_size=16, latent_dim=4, progress=False)
BUDGET, ROUNDS, INITIAL = 5, 3, 6
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: threads only add contention


def striped_dataset() -> TensorDataset:
    """60 horizontal (class 0) then 60 vertical (class 1) 1×8×8 images."""
    return TensorDataset(torch.cat([striped_images(60, False, 0), striped_images(60, True, 1)]), (torch.arange(120) >= 60).long())


def dropout_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))


def test_the_query_and_its_scores_are_balds_for_the_same_masks():
    pool = ActivePool(striped_dataset())
    pool.label([0, 70], [0, 1])
    model = dropout_model()
    torch.manual_seed(5)
    expected, expected_scores = BALD(passes=8, progress=False).select(model, pool, 10, return_scores=True)
    torch.manual_seed(5)
    strategy = BGADL(**FAST)
    query, scores = strategy.select(model, pool, 10, return_scores=True)
    assert torch.equal(query, expected) and torch.equal(scores, expected_scores)
    assert torch.equal(strategy.state_dict()["generated_sources"], query)
    assert strategy.state_dict()["generated_inputs"].shape == (10, 1, 8, 8)
    balds = 8 * 118 + 8  # T·N̂ and the prefix-once probe's 2 paths × 2 passes × 2 images
    assert strategy.last_cost.forward == balds + 5 * 16 + 10 and strategy.last_cost.backward == 5 * 16


def test_generated_images_stay_near_their_sources_in_the_encoders_space():
    """ε = 0.75 × the latent spread, the RMS distance of the pool's latent means μ(x) from their
    centre (two random items are ~1.4 spreads apart): every ‖μ(x') − μ(x*)‖ <= ε, their mean
    <= 0.4 spread; and x' has its source's kind of stripes, so the source's label fits it."""
    dataset = striped_dataset()
    pool = ActivePool(dataset)
    pool.label([0, 70], [0, 1])
    strategy = BGADL(**{**FAST, "generator_iterations": 150, "generator_batch_size": 32, "latent_dim": 8})
    query = strategy.select(dropout_model(), pool, 10)
    generated = strategy.state_dict()["generated_inputs"]
    vae = strategy.last_generator.eval()
    with torch.no_grad():
        means = vae.encode(dataset.tensors[0])[0].double()
        generated_means = vae.encode(generated)[0].double()
    spread = (means - means.mean(0)).pow(2).sum(1).mean().sqrt()
    shift = (generated_means - means[query]).norm(dim=1)
    assert shift.max() <= 0.75 * spread and shift.mean() <= 0.4 * spread
    assert not torch.equal(generated, dataset.tensors[0][query])  # a sample, not a copy
    assert torch.equal(stripe_kind(generated), dataset.tensors[1][query])  # y* is x''s label too


def stripe_kind(images: torch.Tensor) -> torch.Tensor:
    """0 for horizontal stripes (row means vary more than column means), 1 for vertical; Tensor[B]."""
    pixels = images[:, 0].double()
    return (pixels.mean(1).var(1) > pixels.mean(2).var(1)).long()


def test_the_view_serves_the_ledger_then_generated_items_with_their_sources_labels():
    pool = ActivePool(striped_dataset())
    pool.label([3, 80], [0, 1])
    inputs = torch.randn(3, 1, 8, 8)
    view = GeneratedItemsPool(pool, inputs, torch.tensor([80, 5, 3]))  # item 5 is not labeled yet
    assert len(view) == 123 and view.round == pool.round
    assert view.labeled_indices.tolist() == [3, 80, 120, 122] and view.generated_indices.tolist() == [120, 122]
    assert torch.equal(view[120][0], inputs[0]) and view[120][1] == 1 and view[122][1] == 0
    assert torch.equal(view[80][0], pool[80][0]) and view[80][1] == 1
    with pytest.raises(KeyError, match=r"\[5\] are not labeled"):
        view[121]
    pool.label([5], [1])  # the ledger is read at each access
    assert view.labeled_indices.tolist() == [3, 5, 80, 120, 121, 122] and view[121][1] == 1
    batches = list(DataLoader(view, sampler=ActiveSampler(view, seed=1), batch_size=4))
    served = torch.cat([x for x, _ in batches]).flatten(1)
    expected = torch.stack([view[i][0] for i in view.labeled_indices.tolist()]).flatten(1)
    assert sorted(map(tuple, served.tolist())) == sorted(map(tuple, expected.tolist()))
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == [0, 0, 1, 1, 1, 1]


def test_the_view_adds_generated_items_to_pseudo_labels():
    pool = ActivePool(striped_dataset())
    pool.label([3], [0])
    pseudo = PseudoLabeledPool(pool, PseudoLabelSet(torch.tensor([7]), torch.tensor([1]), 0.1))
    view = GeneratedItemsPool(pseudo, torch.zeros(1, 1, 8, 8), torch.tensor([3]))
    assert view.labeled_indices.tolist() == [3, 7, 120] and view[7][1] == 1 and view[120][1] == 0


@pytest.mark.parametrize(
    "inputs, sources, error, message",
    [
        (torch.zeros(2, 1, 8, 8), torch.tensor([1.0, 2.0]), TypeError, "sources must be a 1-D int64 Tensor"),
        (torch.zeros(3, 1, 8, 8), torch.tensor([1, 2]), ValueError, r"one row per source \(2\), got torch.Size\(\[3, 1, 8, 8\]\)"),
        (torch.zeros(2, 1, 8, 8), torch.tensor([1, 120]), ValueError, r"global indices in \[0, 120\), got values in \[1, 120\]"),
    ],
)
def test_the_view_names_bad_generated_items(inputs, sources, error, message):
    with pytest.raises(error, match=message):
        GeneratedItemsPool(ActivePool(striped_dataset()), inputs, sources)


def make_loop(checkpoint_dir, trained_on: dict) -> ActiveLearningLoop:
    """A 3-round BGADL run whose training records, per round, what it read: the view's indices
    and a digest of every (input, label) it served."""
    dataset = striped_dataset()
    pool = ActivePool(dataset)
    model = dropout_model()

    def train(model, training, round_):
        items = [training[i] for i in training.labeled_indices.tolist()]
        digest = hashlib.sha256(b"".join(x.numpy().tobytes() + bytes([y]) for x, y in items)).hexdigest()
        trained_on[round_] = (len(items), digest)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in DataLoader(training, sampler=ActiveSampler(training, seed=0), batch_size=8):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    strategy = BGADL(**{**FAST, "seed": 2})
    return ActiveLearningLoop(pool, strategy, model, train, BUDGET, ROUNDS, initial=INITIAL, checkpoint_dir=checkpoint_dir, progress=False)


def test_through_the_loop_the_training_set_grows_by_2p_and_the_ledger_by_p(tmp_path):
    trained_on: dict = {}
    loop = make_loop(tmp_path, trained_on)
    records = loop.run()
    assert [trained_on[r][0] for r in range(ROUNDS + 1)] == [INITIAL + 2 * BUDGET * r for r in range(ROUNDS + 1)]
    assert [record["labeled"] for record in records] == [INITIAL + BUDGET * r for r in range(ROUNDS + 1)]
    assert [record.get("training_items") for record in records] == [None] + [INITIAL + 2 * BUDGET * r for r in range(1, ROUNDS + 1)]
    ledger, pool_state = loop.pool.ledger, loop.pool.state_dict()
    assert ledger.index.numel() == INITIAL + BUDGET * ROUNDS and int(ledger.index.max()) < 120
    assert set(pool_state) == set(ActivePool(striped_dataset()).state_dict())  # nothing added to the pool's state
    assert torch.equal(pool_state["ledger_index"], ledger.index)
    sources = loop.strategy.state_dict()["generated_sources"]
    assert sorted(sources.tolist()) == sorted(ledger.index[ledger.round > 0].tolist())  # one image per bought label
    state = load_state(tmp_path / "state.pt", CHECKPOINT_KIND)
    assert torch.equal(state["pool/ledger_index"], ledger.index)
    assert torch.equal(state["strategy/generated_sources"], sources)
    assert torch.equal(state["strategy/generated_inputs"], loop.strategy.state_dict()["generated_inputs"])


@pytest.mark.parametrize("stage", ["oracle", "train"])
def test_a_killed_and_resumed_run_trains_on_the_same_sets_and_ends_equal(tmp_path, stage):
    whole: dict = {}
    uninterrupted = make_loop(tmp_path / "whole", whole)
    expected = outcome(uninterrupted, uninterrupted.run())
    interrupted: dict = {}
    run_until_stopped(make_loop(tmp_path / "killed", interrupted), stage)
    resumed = make_loop(tmp_path / "killed", interrupted)
    assert outcome(resumed, resumed.run()) == expected
    assert interrupted == whole
    assert torch.equal(resumed.strategy.state_dict()["generated_inputs"], uninterrupted.strategy.state_dict()["generated_inputs"])


def test_a_non_finite_input_and_a_missing_model_are_named_and_nothing_is_recorded():
    images = torch.rand(30, 1, 8, 8)
    images[17, 0, 2, 3] = float("nan")
    pool = ActivePool(TensorDataset(images, torch.zeros(30, dtype=torch.int64)))
    strategy = BGADL(**FAST)
    with pytest.raises(ValueError, match="BGADL: the model returned non-finite logits .* for pool item 17"):
        strategy.select(dropout_model(), pool, 3)  # BALD's passes meet it first
    pool.label([17], [0])  # BALD no longer reads it; the generator, trained on every item, does
    with pytest.raises(ValueError, match="BGADL: pool item 17 has non-finite input values"):
        strategy.select(dropout_model(), pool, 3)
    with pytest.raises(ValueError, match="BGADL scores with a model; got model=None"):
        strategy.select(None, pool, 3)
    assert pool.pending_query is None and pool.labeled_indices.tolist() == [17] and strategy.state_dict() == {}


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(generator_iterations=0), "generator_iterations must be an int >= 1, got 0"),
        (dict(generator_batch_size=True), "generator_batch_size must be an int >= 1, got True"),
        (dict(latent_dim=1.5), "latent_dim must be an int >= 1, got 1.5"),
        (dict(beta=-1.0), "beta must be a finite float >= 0, got -1.0"),
        (dict(generator_lr=0.0), "BGADL: generator_lr must be a finite float > 0, got 0.0"),
        (dict(passes=0), "passes and chunk must be ints >= 1"),
    ],
)
def test_bad_options_are_named(option, message):
    with pytest.raises(ValueError, match=message):
        BGADL(**option)


def test_a_bad_state_is_named():
    strategy = BGADL(**FAST)
    with pytest.raises(ValueError, match=r"must hold generated_inputs and generated_sources, got \['inputs'\]"):
        strategy.load_state_dict({"inputs": torch.zeros(1)})
    with pytest.raises(ValueError, match="generated_sources int64 Tensor"):
        strategy.load_state_dict({"generated_inputs": torch.zeros(2, 1, 8, 8), "generated_sources": torch.zeros(3, dtype=torch.int64)})


def test_make_strategy_and_a_one_round_fashion_mnist_run(tmp_path):
    strategy = make_strategy("bgadl", seed=3, progress=False, batch_size=32, passes=4, generator_iterations=9)
    assert isinstance(strategy, BGADL) and (strategy.seed, strategy.batch_size, strategy.passes, strategy.generator_iterations) == (3, 32, 4, 9)
    with pytest.raises(ValueError, match="generator_iterations must be an int >= 1"):
        RunConfig(generator_iterations=0)
    config = RunConfig(strategy=("bgadl",), rounds=1, budget=10, epochs=1, pool_size=200, passes=4, generator_iterations=3, out=str(tmp_path), progress=False)
    records = run_experiment(config)["bgadl"]
    assert [record["labeled"] for record in records] == [0, 10]
    assert records[1]["training_items"] == 20 and "training_items" not in records[0]


def test_a_source_queried_again_has_its_image_replaced():
    pool = ActivePool(striped_dataset())
    pool.label([0, 70], [0, 1])
    strategy = BGADL(**FAST)
    torch.manual_seed(1)
    first = strategy.select(dropout_model(), pool, 6)
    pool.propose(first)
    pool.discard_query()  # dropped unlabeled: the same round selects anew
    torch.manual_seed(1)
    second = strategy.select(dropout_model(), pool, 6)
    sources = strategy.state_dict()["generated_sources"]
    assert torch.equal(first, second) and torch.equal(sources, second)
    assert strategy.training_set(pool).labeled_indices.tolist() == [0, 70]  # no source is labeled yet


@pytest.mark.needs_cuda
def test_it_trains_and_generates_on_the_task_models_device():
    pool = ActivePool(striped_dataset())
    pool.label([0, 70], [0, 1])
    model = dropout_model().cuda()
    strategy = BGADL(**FAST)
    query = strategy.select(model, pool, 10)
    assert next(strategy.last_generator.parameters()).is_cuda and strategy.state_dict()["generated_inputs"].device.type == "cpu"
    assert query.device.type == "cpu" and strategy.state_dict()["generated_inputs"].isfinite().all()
