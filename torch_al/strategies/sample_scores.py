"""Uncertainty scores over K samples of the predictive distribution, one function per formula.

The K samples are T stochastic passes of MC dropout (Gal et al., ICML 2017) or the E members of an
ensemble (Beluch et al., CVPR 2018): both compute the same scores from a Tensor[N, K, C] of
probabilities p_k(c | x_n), so both call these functions. Entropies use the natural log with
0 log 0 = 0; votes are argmaxes, ties to the lower class.
"""

import torch
from torch import Tensor, nn


def entropy(probabilities: Tensor) -> Tensor:
    """H[p] = −Σ_c p_c log p_c over the last dim: Tensor[..., C] → Tensor[...]."""
    return torch.special.entr(probabilities).sum(-1)


def mean_entropy(probabilities: Tensor) -> Tensor:
    """Entropy of the mean prediction, H[p̄] with p̄ = mean_k p_k: Tensor[N, K, C] → Tensor[N]."""
    return entropy(probabilities.mean(1))


def bald(probabilities: Tensor) -> Tensor:
    """Mutual information of the prediction and the sample (weights): H[p̄] − mean_k H[p_k]:
    Tensor[N, K, C] → Tensor[N]."""
    return mean_entropy(probabilities) - entropy(probabilities).mean(1)


def votes(probabilities: Tensor) -> Tensor:
    """V_c, the number of samples whose argmax is class c (ties to the lower class):
    Tensor[N, K, C] → int64 Tensor[N, C]."""
    return nn.functional.one_hot(probabilities.argmax(-1), probabilities.shape[-1]).sum(1)


def variation_ratio(probabilities: Tensor) -> Tensor:
    """1 − max_c V_c / K, the share of samples outside the modal vote: Tensor[N, K, C] → Tensor[N]."""
    return 1 - votes(probabilities).max(1).values.to(probabilities.dtype) / probabilities.shape[1]


def vote_entropy(probabilities: Tensor) -> Tensor:
    """Query-by-committee vote entropy −Σ_c (V_c/K) log(V_c/K): Tensor[N, K, C] → Tensor[N]."""
    return entropy(votes(probabilities).to(probabilities.dtype) / probabilities.shape[1])
