"""Learning loss: Yoo & Kweon, "Learning Loss for Active Learning", CVPR 2019. A small module
predicts each item's training loss from the task model's intermediate features; it trains beside
the model with a pairwise ranking loss, and the items with the highest predicted loss are queried."""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from torch_al.checks import check_int, check_real, output_logits
from torch_al.devices import model_device
from torch_al.nn.capture import Tokens, capture_layout, channels_second, check_tokens, layer_tensor, resolve_layers
from torch_al.sampler import inputs_loader
from torch_al.strategies.cold_start import DrawsUntilLabeled

PAPER_STOP_FRACTION = 120 / 200  # the paper stops the module's gradient into the model after epoch 120 of 200


class LossPredictionModule(nn.Module):
    """Per chosen layer: global average pooling → Linear(C_l, width) → ReLU; the L results
    concatenated → Linear(L·width, 1): one predicted loss per item.

    Args:
        channels: C_l of each layer, in the order the features are given.
        width: units per layer (the paper's 128).
    """

    def __init__(self, channels: Sequence[int], width: int = 128) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(nn.Linear(c, width), nn.ReLU()) for c in channels)
        self.head = nn.Linear(len(self.branches) * width, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """features: one Tensor[B, C_l, *spatial] (or [B, C_l]) per layer → Tensor[B]."""
        pooled = [branch(feature.flatten(2).mean(2) if feature.dim() > 2 else feature) for branch, feature in zip(self.branches, features)]
        return self.head(torch.cat(pooled, 1)).squeeze(1)


def pairwise_ranking_loss(predicted: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    """The paper's loss-prediction loss: item i of a batch of B is paired with item B − 1 − i
    (i < ⌊B/2⌋; the middle item of an odd batch is left out), and each pair (i, j) costs
    max(0, −A·(l̂_i − l̂_j) + ξ), A = +1 if l_i > l_j else −1; the mean over pairs (0 without a pair).

    Args:
        predicted: Tensor[B], the predicted losses l̂.
        target: Tensor[B], the true losses l (no gradient flows into them).
        margin: ξ.
    """
    if predicted.dim() != 1 or predicted.shape != target.shape:
        raise ValueError(f"pairwise_ranking_loss: predicted and target must be Tensor[B] of one shape, got {tuple(predicted.shape)} and {tuple(target.shape)}")
    pairs = predicted.shape[0] // 2
    if pairs == 0:
        return predicted.sum() * 0  # keeps the graph: a one-item batch trains the task alone
    target = target.detach()
    sign = torch.where(target[:pairs] > target.flip(0)[:pairs], 1.0, -1.0).to(predicted.dtype)
    return F.relu(margin - sign * (predicted[:pairs] - predicted.flip(0)[:pairs])).mean()


class _LayerFeatures:
    """Forward hooks keeping each chosen layer's output of the last forward, channels second
    (``layout``: :func:`~torch_al.nn.capture.capture_layout`), detached on request."""

    def __init__(self, layers: dict[str, nn.Module], layout: dict, detach: bool = False) -> None:
        self.outputs: dict[str, Tensor] = {}
        self.layout = layout
        self.detach = detach
        self._handles = [module.register_forward_hook(self._keeper(name)) for name, module in layers.items()]
        self._names = list(layers)

    def _keeper(self, name: str):
        def keep(module, inputs, output):
            output = layer_tensor(name, output)
            if output.dim() < 2:
                raise ValueError(f"LearningLoss: layer {name!r} must output a Tensor[B, C, ...], got shape {tuple(output.shape)}")
            output = channels_second(name, output, **self.layout)
            self.outputs[name] = output.detach() if self.detach else output

        return keep

    def ordered(self) -> list[Tensor]:
        missing = [name for name in self._names if name not in self.outputs]
        if missing:
            raise ValueError(f"LearningLoss: layers {missing} did not run in the model's forward")
        return [self.outputs[name] for name in self._names]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()


class LearningLoss(DrawsUntilLabeled):
    """Queries the unlabeled items whose loss a trained loss-prediction module predicts highest.

    The module trains *with* the task model: a training loop calls :meth:`training_loss` instead
    of its cross entropy, and optimises :meth:`extra_parameters` beside the model's parameters
    (:func:`torch_al.experiment.make_trainer` and ``torch-al run`` do both). The objective is
    mean cross entropy + ``weight`` · :func:`pairwise_ranking_loss` of the predicted against the
    (detached) per-item cross entropy; from epoch ``⌈stop_gradient · epochs⌉`` of each round's
    training on, the features reach the module detached, so its gradient no longer shapes the
    model (the paper: after epoch 120 of 200). The module's weights are :meth:`state_dict`, which
    :class:`~torch_al.ActiveLearningLoop` checkpoints beside the model.

    Selection: one forward of each unlabeled item; the ``budget`` highest predictions, ties to the
    lower global index. With no labeled item there is no loss to learn: that query is uniform at
    random from (seed, round), as the paper's random initial set; with labeled items but a module
    that never trained, selecting is an error (a training loop did not use :meth:`training_loss`).
    Cost: N̂ forwards.

    Args:
        layers: the model's layers whose outputs feed the module (names from ``named_modules()``);
            default the model's ``descriptor_layers`` (LeNet: act1, act2, act3).
        width: units per layer in the module (the paper's 128).
        margin: ξ of the ranking loss (the paper's 1).
        weight: λ, the ranking loss's weight (the paper's 1).
        stop_gradient: fraction of each round's epochs after which the features are detached.
        seed: seeds the query made with no labeled item.
        batch_size, progress: scoring batch size and progress bar.
        tokens: how the layers' outputs are read, as in :class:`~torch_al.PFK`: None (the model's
            ``descriptor_tokens``, else channels second), ``"mean"`` or ``"first"`` for (B, T, C)
            token sequences.
    """

    draw_stream = "learning-loss"  # the (seed, stream, round) of the draw made with nothing labeled

    def __init__(
        self,
        layers: Sequence[str] | None = None,
        width: int = 128,
        margin: float = 1.0,
        weight: float = 1.0,
        stop_gradient: float = PAPER_STOP_FRACTION,
        seed: int = 0,
        batch_size: int = 256,
        progress: bool = True,
        tokens: Tokens | None = None,
    ) -> None:
        check_tokens(tokens)
        self.tokens = tokens
        self.layers = None if layers is None else tuple(layers)
        self.width = check_int(width, "LearningLoss: width", 1)
        self.margin = check_real(margin, "LearningLoss: margin", at_least=0)
        self.weight = check_real(weight, "LearningLoss: weight", at_least=0)
        self.stop_gradient = check_real(stop_gradient, "LearningLoss: stop_gradient", at_least=0)
        if self.stop_gradient > 1:
            raise ValueError(f"LearningLoss: stop_gradient is a fraction of the epochs in [0, 1], got {stop_gradient}")
        self.seed, self.batch_size, self.progress = seed, batch_size, progress
        self._module: LossPredictionModule | None = None
        self._trained_batches = 0
        self._resolved: tuple[nn.Module, dict[str, nn.Module]] | None = None

    @property
    def module(self) -> LossPredictionModule | None:
        """The loss-prediction module (None until :meth:`extra_parameters` or :meth:`load_state_dict` builds it)."""
        return self._module

    @property
    def trained_batches(self) -> int:
        """Training batches the module has seen through :meth:`training_loss`, over all rounds."""
        return self._trained_batches

    def chosen_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """The feature layers of ``model``, resolved once per model: training calls this every batch."""
        if self._resolved is not None and self._resolved[0] is model:
            return self._resolved[1]
        names = self.layers if self.layers is not None else getattr(model, "descriptor_layers", None)
        if names is None:
            raise ValueError(f"LearningLoss: give layers=[...] (names from model.named_modules()); {type(model).__name__} has no descriptor_layers")
        self._resolved = (model, resolve_layers(model, list(names)))
        return self._resolved[1]

    def extra_parameters(self, model: nn.Module, inputs: Tensor) -> list[nn.Parameter]:
        """The module's parameters, to optimise with the model's; builds the module on the first
        call from one no-grad forward of ``inputs`` (a batch, to read each layer's channels)."""
        if self.module is None:
            layers = self.chosen_layers(model)
            with _LayerFeatures(layers, capture_layout(self.tokens, model), detach=True) as features, torch.no_grad():
                model(inputs.to(model_device(model)))
            self._module = LossPredictionModule([feature.shape[1] for feature in features.ordered()], self.width)
        self.module.to(model_device(model))
        return list(self.module.parameters())

    def training_loss(self, model: nn.Module, inputs: Tensor, targets: Tensor, epoch: int, epochs: int) -> Tensor:
        """Mean cross entropy of the batch + λ · the ranking loss of the module's predictions
        (call :meth:`extra_parameters` first)."""
        if self.module is None:
            raise ValueError("LearningLoss.training_loss: call extra_parameters(model, inputs) first and optimise what it returns")
        detach = epoch >= math.ceil(self.stop_gradient * epochs)
        with _LayerFeatures(self.chosen_layers(model), capture_layout(self.tokens, model), detach) as features:
            logits = output_logits(model(inputs))
        self.module.train()
        losses = F.cross_entropy(logits, targets, reduction="none")
        self._trained_batches += 1
        return losses.mean() + self.weight * pairwise_ranking_loss(self.module(features.ordered()), losses, self.margin)

    @torch.no_grad()
    def predicted_losses(self, model: nn.Module, inputs: Tensor) -> Tensor:
        """The module's predictions for a batch → Tensor[B] (model and module in eval mode)."""
        with _LayerFeatures(self.chosen_layers(model), capture_layout(self.tokens, model)) as features:
            model(inputs)
        return self.module(features.ordered())

    def query(self, model, pool, budget):
        if model is None:
            raise ValueError(f"{type(self).__name__} scores with a model; got model=None")
        return super().query(model, pool, budget)

    def item_scores(self, model: nn.Module, pool, rows: Tensor) -> Tensor:
        """The module's predicted losses (float32, CPU) of the pool items ``rows``: one forward each."""
        if self.module is None or self.trained_batches == 0:
            raise ValueError("LearningLoss: the loss-prediction module never trained; train the model with strategy.training_loss and strategy.extra_parameters")
        device, was_training = model_device(model), (model.training, self.module.training)
        model.eval(), self.module.eval()
        try:
            loader = inputs_loader(pool, rows, self.batch_size)
            scores = torch.cat([self.predicted_losses(model, x.to(device)).float().cpu() for x in tqdm(loader, desc="learning loss", disable=not self.progress)])
        finally:
            model.train(was_training[0]), self.module.train(was_training[1])
        self.charge(forward=rows.numel())
        if not scores.isfinite().all():
            bad = rows[~scores.isfinite()][:5].tolist()
            raise ValueError(f"LearningLoss: predicted losses are not finite for pool items {bad}")
        return scores

    def state_dict(self) -> dict[str, Tensor]:
        if self.module is None:
            return {}
        state = {f"module.{key}": value for key, value in self.module.state_dict().items()}
        state["trained_batches"] = torch.tensor(self.trained_batches)
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            self._module, self._trained_batches = None, 0
            return
        weights = {key.removeprefix("module."): value for key, value in state.items() if key.startswith("module.")}
        channels = [weights[f"branches.{i}.0.weight"].shape[1] for i in range((len(weights) - 2) // 2)]  # a weight and a bias per Linear
        self._module = LossPredictionModule(channels, weights["head.weight"].shape[1] // len(channels))
        self.module.load_state_dict(weights)
        self.module.to(weights["head.weight"].device)
        self._trained_batches = int(state["trained_batches"])
