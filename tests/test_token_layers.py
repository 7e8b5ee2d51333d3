"""Transformer backbones nobody here wrote — a Hugging Face ViT and a timm ViT, built from configs
with random weights — through the descriptor capture and every strategy that names layers: token
outputs (B, T, C) pooled over the tokens or at the class token, layers that return tuples or
model outputs, and a model that returns a ``ModelOutput``."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torch_al import ActivePool
from torch_al.attention import compute_attention
from torch_al.cli import main
from torch_al.descriptors import compute_descriptors, standardise
from torch_al.embeddings import embed
from torch_al.experiment import RunConfig
from torch_al.models import tiny_vit
from torch_al.nn import DescriptorCapture
from torch_al.nn.capture import capture_layout, layer_tensor
from torch_al.strategies import PFK, CoreSet, Entropy, LearningLoss, make_strategy

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
HAS_OPS = all(hasattr(torch.ops.torch_al, op) for op in ("pfk_topk", "kcenter_greedy"))
needs_ops = pytest.mark.skipif(not HAS_OPS, reason="needs the compiled ops")


def hugging_face_vit() -> nn.Module:
    torch.manual_seed(0)
    return tiny_vit(width=32, heads=2).double().eval()


def timm_vit() -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=2)
    return model.double().eval()


BACKBONES = {
    "hugging-face": (hugging_face_vit, ["vit.layers.0", "vit.layers.1"]),
    "timm": (timm_vit, ["blocks.0", "blocks.1"]),
}


def logits_of(outputs):
    return outputs.logits if hasattr(outputs, "logits") else outputs


def reference_descriptors(model: nn.Module, layers: list[str], x: torch.Tensor, labels: torch.Tensor, tokens: str):
    """The layers' outputs and the summed loss's gradients with respect to them, straight from
    autograd, pooled over the tokens (dim 1) or taken at token 0."""
    modules = dict(model.named_modules())
    outputs = {}
    handles = [modules[name].register_forward_hook(lambda m, i, out, name=name: outputs.__setitem__(name, layer_tensor(name, out))) for name in layers]
    try:
        loss = F.cross_entropy(logits_of(model(x)), labels, reduction="sum")
    finally:
        for handle in handles:
            handle.remove()
    gradients = torch.autograd.grad(loss, [outputs[name] for name in layers])
    pool = (lambda t: t.mean(1)) if tokens == "mean" else (lambda t: t[:, 0])
    return torch.cat([pool(outputs[name].detach()) for name in layers], 1), torch.cat([pool(g) for g in gradients], 1)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("tokens", ["mean", "first"])
def test_token_descriptors_equal_autograd_on_the_layer_outputs(backbone, tokens):
    make, layers = BACKBONES[backbone]
    model = make()
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    labels = torch.tensor([0, 3, 9, 1, 1, 5])
    described = compute_descriptors(model, DataLoader(TensorDataset(x), batch_size=4), layers, "both", labels, channel_dim=-1, tokens=tokens, progress=False)
    features, gradients = reference_descriptors(model, layers, x, labels, tokens)
    assert described.columns == {layers[0]: slice(0, 32), layers[1]: slice(32, 64)}
    torch.testing.assert_close(described.features, features)
    torch.testing.assert_close(described.gradients, gradients)


@pytest.mark.parametrize("tokens", ["mean", "first"])
def test_one_step_attention_of_token_layers_is_their_gradient_descriptor(tokens):
    # EBA's integrated gradients with K = 1 is the plain gradient at the input itself.
    model = hugging_face_vit()
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    labels = torch.tensor([2, 2, 7, 0, 9])
    layers = list(model.descriptor_layers)
    attention = compute_attention(model, DataLoader(TensorDataset(x), batch_size=2), layers, steps=1, labels=labels, channel_dim=-1, tokens=tokens, progress=False)
    torch.testing.assert_close(attention.attention, reference_descriptors(model, layers, x, labels, tokens)[1])


def test_a_layer_returning_a_tuple_is_read_at_its_first_item():
    # A Hugging Face attention block returns (output, weights); its output is the o_proj's (no dropout in eval).
    model = hugging_face_vit()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    attention = dict(model.named_modules())["vit.layers.0.attention"]
    assert isinstance(attention(torch.rand(3, 17, 32, dtype=torch.float64)), tuple)
    with DescriptorCapture(model, ["vit.layers.0.attention", "vit.layers.0.attention.o_proj"], capture="features", channel_dim=-1) as capture:
        model(x)
    assert torch.equal(capture.features["vit.layers.0.attention"], capture.features["vit.layers.0.attention.o_proj"])


class OddOutputs(nn.Module):
    """A block whose output is not a Tensor, and a 4-d convolution for ``tokens="first"``."""

    def __init__(self, returns: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.block = nn.Identity()
        self.head = nn.Linear(3, 2)
        self.returns = returns

    def forward(self, x):
        hidden = self.conv(x)
        odd = {"names": ["a"]} if self.returns == "dict" else (None, hidden) if self.returns == "tuple" else hidden
        self.block(odd)
        return self.head(hidden.mean((2, 3)))


@pytest.mark.parametrize(("returns", "message"), [("dict", "returned a dict whose first item is a list"), ("tuple", "returned a tuple whose first item is a NoneType")])
def test_a_layer_returning_no_tensor_first_is_named(returns, message):
    model = OddOutputs(returns)
    with DescriptorCapture(model, ["block"], capture="features") as capture, pytest.raises(TypeError, match=f"layer 'block' {message}"):
        model(torch.rand(2, 1, 5, 5))
    assert capture.features == {}


def test_first_token_of_a_convolution_is_an_error_naming_the_layer_and_shape():
    model = OddOutputs("tensor")
    with DescriptorCapture(model, ["conv"], capture="both", tokens="first") as _, pytest.raises(ValueError, match=r"layer 'conv': tokens='first' .* got shape \(2, 3, 3, 3\)"):
        model(torch.rand(2, 1, 5, 5))
    with pytest.raises(ValueError, match="tokens must be one of"):
        DescriptorCapture(model, ["conv"], tokens="cls")


@needs_ops
@pytest.mark.parametrize("tokens", ["mean", "first"])
def test_pfk_on_a_hugging_face_vit_describes_its_tokens(tokens):
    model = hugging_face_vit()
    x = torch.rand(40, 1, 28, 28, dtype=torch.float64)
    labels = torch.arange(40) % 10
    layers = list(model.descriptor_layers)
    pfk = make_strategy("pfk", validation=(x[:10], labels[:10]), tokens=tokens, progress=False)
    assert isinstance(pfk, PFK) and capture_layout(pfk.tokens, model) == {"channel_dim": -1, "tokens": tokens}
    described = pfk.describe(model, layers, DataLoader(TensorDataset(x), batch_size=16), labels, features=True, gradients=True)
    features, gradients = reference_descriptors(model, layers, x, labels, tokens)
    columns = {layers[0]: slice(0, 32), layers[1]: slice(32, 64)}
    for got, reference in ((described.features, features), (described.gradients, gradients)):
        for scale, expected in zip(got, standardise(reference, columns)):
            torch.testing.assert_close(scale, expected)
    picked = pfk.select(model, ActivePool(TensorDataset(x, labels)), 5)
    assert picked.numel() == 5 and picked.unique().numel() == 5


@needs_ops
def test_the_models_descriptor_tokens_is_the_default_and_the_option_overrides_it():
    model = hugging_face_vit()
    assert model.descriptor_tokens == "mean"
    validation = (torch.rand(4, 1, 28, 28, dtype=torch.float64), torch.arange(4))
    assert capture_layout(PFK(validation).tokens, model) == {"channel_dim": -1, "tokens": "mean"}
    assert capture_layout(PFK(validation, tokens="first").tokens, model) == {"channel_dim": -1, "tokens": "first"}
    assert capture_layout(PFK(validation).tokens, nn.Linear(2, 2)) == {"channel_dim": 1, "tokens": "mean"}
    with pytest.raises(ValueError, match="tokens must be None .* or one of \\('mean', 'first'\\)"):
        make_strategy("eba", validation=validation, tokens="cls")
    model.descriptor_tokens = "last"
    with pytest.raises(ValueError, match="ViTForImageClassification.descriptor_tokens must be"):
        PFK(validation).select(model, ActivePool(TensorDataset(validation[0], validation[1])), 1)


def test_strategies_read_a_model_output_s_logits():
    model = hugging_face_vit()
    x = torch.rand(12, 1, 28, 28, dtype=torch.float64)
    pool = ActivePool(TensorDataset(x, torch.arange(12) % 10))
    picked, scores = Entropy(progress=False).select(model, pool, 3, return_scores=True)
    with torch.no_grad():
        probabilities = model(x).logits.softmax(1)
    entropy = -(probabilities * probabilities.log()).sum(1)
    assert torch.equal(picked, entropy.topk(3).indices)
    torch.testing.assert_close(scores, entropy.topk(3).values.to(scores.dtype))


@needs_ops
@pytest.mark.parametrize("tokens", ["mean", "first"])
def test_a_named_token_layer_is_pooled_for_the_embedding_strategies(tokens):
    model = timm_vit()
    x = torch.rand(10, 1, 28, 28, dtype=torch.float64)
    embeddings = embed(model, DataLoader(x, batch_size=4), "blocks.1", tokens=tokens)
    outputs = {}
    handle = model.blocks[1].register_forward_hook(lambda m, i, out: outputs.__setitem__("out", out))
    with torch.no_grad():
        model(x)
    handle.remove()
    reference = outputs["out"].mean(1) if tokens == "mean" else outputs["out"][:, 0]
    torch.testing.assert_close(embeddings, reference.float())
    flattened = embed(model, DataLoader(x, batch_size=4), "blocks.1")
    assert flattened.shape == (10, 17 * 32)
    pool = ActivePool(TensorDataset(x, torch.arange(10)))
    assert CoreSet(layer="blocks.1", tokens=tokens).select(model, pool, 3).numel() == 3
    with pytest.raises(ValueError, match="CoreSet: tokens='mean' pools a named layer's token outputs; name the layer"):
        CoreSet(tokens="mean")
    with pytest.raises(ValueError, match="TypiClust: tokens must be None"):
        make_strategy("typiclust", layer="blocks.1", tokens="max")


def test_learning_loss_trains_on_token_layers():
    model = hugging_face_vit().float()
    strategy = LearningLoss(layers=["vit.layers.0", "vit.layers.1"], tokens="first")
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    parameters = strategy.extra_parameters(model, x)
    assert [branch[0].in_features for branch in strategy.module.branches] == [32, 32]
    loss = strategy.training_loss(model, x, y, epoch=0, epochs=1)
    loss.backward()
    assert all(p.grad is not None for p in parameters)
    assert torch.isfinite(strategy.predicted_losses(model, x)).all()


@needs_ops
def test_torch_al_run_trains_a_hugging_face_vit_and_selects_with_pfk_on_its_class_tokens(tmp_path, capsys):
    arguments = "run --dataset digits --model vit --strategy pfk entropy --tokens first --rounds 1 --budget 10 --initial 20 --epochs 1 --pool-size 200 --no-progress"
    assert main([*arguments.split(), "--out", str(tmp_path)]) == 0
    assert "round  1  labels    30" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["tokens"] == "first" and metrics["config"]["model"] == "vit"
    pfk = metrics["results"]["pfk"]
    assert [record["labeled"] for record in pfk] == [20, 30]
    assert pfk[0]["select_backward"] > 0  # the selection after round 0 took the tokens' gradients
    with pytest.raises(ValueError, match="tokens must be one of"):
        RunConfig(tokens="cls")


def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=3, max_position_embeddings=16)
    return transformers.BertForSequenceClassification(config).double().eval()


@pytest.mark.parametrize("tokens", ["mean", "first"])
def test_a_text_model_s_token_ids_get_descriptors_at_the_hooked_blocks(tokens):
    # Token ids have no gradient: the backward stops at the blocks' outputs, same values.
    model = tiny_bert()
    ids = torch.randint(0, 40, (7, 10), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    layers = ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    described = compute_descriptors(model, DataLoader(TensorDataset(ids), batch_size=3), layers, "both", labels, channel_dim=-1, tokens=tokens, progress=False)
    features, gradients = reference_descriptors(model, layers, ids, labels, tokens)
    torch.testing.assert_close(described.features, features)
    torch.testing.assert_close(described.gradients, gradients)


@needs_ops
def test_pfk_and_entropy_select_on_text_and_eba_says_why_it_cannot():
    model = tiny_bert()
    ids = torch.randint(0, 40, (60, 10), generator=torch.Generator().manual_seed(2))
    labels = torch.arange(60) % 3
    pool = ActivePool(TensorDataset(ids[20:], labels[20:]))
    layers = ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    pfk = PFK(validation=(ids[:20], labels[:20]), layers=layers, tokens="first", progress=False)
    assert pfk.select(model, pool, 5).unique().numel() == 5 and pfk.last_cost.backward > 0
    assert Entropy(progress=False).select(model, pool, 5).numel() == 5
    eba = make_strategy("eba", validation=(ids[:20], labels[:20]), layers=layers, tokens="first", steps=2, progress=False)
    with pytest.raises(ValueError, match=r"inputs of dtype torch.int64 \(token ids\?\) have no path between them: EBA needs floating-point inputs"):
        eba.select(model, pool, 5)


@needs_ops
def test_torch_al_select_hooks_the_class_tokens_of_an_exported_timm_vit(tmp_path, capsys):
    model = timm_vit().float()
    inputs, labels = torch.rand(90, 1, 28, 28), torch.randint(0, 10, (90,))
    torch.save(inputs[30:], tmp_path / "inputs.pt")
    torch.save((inputs[:30], labels[:30]), tmp_path / "validation.pt")
    torch.export.save(torch.export.export(model, (inputs[:2],), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}), tmp_path / "model.pt2")
    select = ["select", "--state", str(tmp_path / "pool.pt"), "--data", str(tmp_path / "inputs.pt"), "--model", str(tmp_path / "model.pt2"), "--budget", "6",
              "--strategy", "pfk", "--validation", str(tmp_path / "validation.pt"), "--layers", "blocks.0", "blocks.1", "--tokens", "first"]  # fmt: skip
    assert main(select) == 0
    expected = PFK((inputs[:30], labels[:30]), layers=["blocks.0", "blocks.1"], tokens="first", progress=False).select(model, ActivePool(TensorDataset(inputs[30:])), 6)
    assert json.loads(capsys.readouterr().out)["query"] == expected.tolist()
