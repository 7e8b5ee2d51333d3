"""MC-dropout uncertainty (Gal et al., ICML 2017): BALD, variation ratio and max entropy from T
stochastic forward passes with dropout on."""

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from torch_al.strategies.base import ScoreStrategy, model_device
from torch_al.validation import LogitsCheck


def _dropout_modules(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if isinstance(module, nn.modules.dropout._DropoutNd)]


class MonteCarloDropout(ScoreStrategy):
    """Scores from T stochastic passes p_t = softmax f(x; dropout mask t), t = 1..T.

    Each batch is loaded once and repeated T times along the batch dim, ``chunk`` passes per
    forward, so the T passes share one data load and every row draws its own dropout mask. Only
    the dropout modules run in training mode: batch-norm keeps its running statistics, as at test
    time. The model's modes are restored afterwards. Masks come from torch's global RNG (the
    loop seeds it per round). Scores are computed per batch, so memory is O(B·T·C), not O(N·T·C).

    Args:
        passes: T, the number of stochastic passes; the paper uses 128.
        chunk: passes per forward (the model sees chunk·B rows); clipped to T.
        batch_size: items per data load.
        progress: show a progress bar.
    """

    def __init__(self, passes: int = 128, chunk: int = 32, batch_size: int = 256, progress: bool = True) -> None:
        super().__init__(batch_size, progress)
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1 or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"{type(self).__name__}: passes and chunk must be ints >= 1, got {passes!r}, {chunk!r}")
        self.passes = passes
        self.chunk = chunk

    @torch.no_grad()
    def scores(self, model: nn.Module, loader: DataLoader, check: LogitsCheck) -> Tensor:
        dropouts = _dropout_modules(model)
        if not dropouts:
            raise ValueError(f"{type(self).__name__} needs dropout in the model: with none, all T passes are equal")
        device = model_device(model)
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        for module in dropouts:
            module.train()
        chunks, start = [], 0
        try:
            for x in tqdm(loader, desc="MC dropout", disable=not self.progress):
                logits = self._sample(model, x.to(device), check)
                check.finite(logits, start)  # once per batch, not once per forward: one host sync
                chunks.append(self.score(logits.float().softmax(-1)))
                start += x.shape[0]
        finally:
            for module, training in modes:
                module.training = training
        scores = torch.cat(chunks)
        self.charge(forward=self.passes * scores.shape[0])
        return scores

    def _sample(self, model: nn.Module, x: Tensor, check: LogitsCheck) -> Tensor:
        """Tensor[B, T, C] logits of T stochastic passes over one batch."""
        passes = []
        for start in range(0, self.passes, self.chunk):
            count = min(self.chunk, self.passes - start)
            repeated = x.unsqueeze(0).expand(count, *x.shape).flatten(0, 1)  # pass-major rows
            passes.append(check.shape(model(repeated), repeated.shape[0]).unflatten(0, (count, x.shape[0])))
        return torch.cat(passes).transpose(0, 1)


def _entropy(probabilities: Tensor) -> Tensor:
    return torch.special.entr(probabilities).sum(-1)


class MaxEntropy(MonteCarloDropout):
    """Entropy of the mean prediction, H[p̄] with p̄ = mean_t p_t."""

    def score(self, probabilities: Tensor) -> Tensor:  # [N, T, C] -> [N]
        return _entropy(probabilities.mean(1))


class BALD(MonteCarloDropout):
    """Mutual information between prediction and weights: H[p̄] − mean_t H[p_t]."""

    def score(self, probabilities: Tensor) -> Tensor:
        return _entropy(probabilities.mean(1)) - _entropy(probabilities).mean(1)


class VariationRatio(MonteCarloDropout):
    """1 − (number of passes predicting the modal class) / T."""

    def score(self, probabilities: Tensor) -> Tensor:
        votes = nn.functional.one_hot(probabilities.argmax(-1), probabilities.shape[-1]).sum(1)  # [N, C]
        return 1 - votes.max(1).values.to(probabilities.dtype) / probabilities.shape[1]
