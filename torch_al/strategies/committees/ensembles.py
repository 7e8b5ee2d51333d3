"""Ensembles and query by committee: Beluch, Genewein, Nürnberger & Köhler, "The power of
ensembles for active learning in image classification", CVPR 2018; vote entropy after Seung,
Opper & Sompolinsky, COLT 1992, as Dagan & Engelson (ICML 1995) score it.

E independently initialised and trained members p_e(y | x) stand in for the T dropout masks of MC
dropout: entropy of the mean, BALD and variation ratio are the formulas of
:mod:`torch_al.strategies.sample_scores` over the members; vote entropy scores their argmax votes.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from torch_al.checks import LogitsCheck, check_int
from torch_al.devices import model_device
from torch_al.seeding import derived_seed
from torch_al.strategies import sample_scores
from torch_al.strategies.base import ScoreStrategy


class Committee(nn.Module):
    """E >= 2 task models (members) that vote together.

    ``forward(x)`` returns log p̄, the log of the members' mean softmax, Tensor[B, C]: logits whose
    softmax is the ensemble's prediction p̄ = mean_e softmax f_e(x), so code that treats the
    committee as one classifier (``argmax``, an evaluator) gets the ensemble's mean-probability
    prediction. Train the members one by one (:class:`~torch_al.ActiveLearningLoop` does), not
    the committee: a loss on log p̄ would train one mixture, not E independent models.
    ``member_logits(x)`` gives every member's logits, Tensor[E, B, C]. The state dict holds every
    member's weights (``members.<e>.<name>``).

    Args:
        members: the E >= 2 models, each mapping Tensor[B, ...] inputs to Tensor[B, C] logits.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        members = list(members) if isinstance(members, (Sequence, nn.ModuleList)) else members
        if not isinstance(members, list) or not all(isinstance(member, nn.Module) for member in members):
            raise TypeError(f"Committee: members must be a sequence of nn.Module, got {type(members).__name__} {members!r:.80}")
        if len(members) < 2:
            raise ValueError(f"Committee: members must hold E >= 2 models (one model has nothing to disagree with), got {len(members)}")
        repeated = [e for e, member in enumerate(members) if any(member is other for other in members[:e])]
        if repeated:
            raise ValueError(f"Committee: members must be E distinct models; member {repeated[0]} is an earlier member again")
        self.members = nn.ModuleList(members)

    @classmethod
    def build(cls, make_member: Callable[[], nn.Module], members: int = 5, seed: int = 0) -> "Committee":
        """E members from ``make_member()``, each initialised independently: member e is built
        after ``torch.manual_seed(derived_seed(seed, "member", e))``, in a forked RNG, so the
        committee depends on ``seed`` alone and torch's global RNG is left as it was.

        Args:
            make_member: builds one untrained member (e.g. ``lambda: LeNet()``).
            members: E, an int >= 2 (default 5, as in Beluch et al.).
            seed: the committee's seed.
        """
        check_int(members, "members", 2)
        built = []
        for member in range(members):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derived_seed(seed, "member", member))
                built.append(make_member())
        return cls(built)

    def member_logits(self, x: Tensor) -> Tensor:
        """Tensor[B, ...] → every member's logits, Tensor[E, B, C]."""
        return torch.stack([member(x) for member in self.members])

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, ...] → log p̄, Tensor[B, C]."""
        return torch.logsumexp(self.member_logits(x).log_softmax(-1), 0) - math.log(len(self.members))


class Ensemble(ScoreStrategy):
    """Scores from the softmax outputs p_e = softmax f_e(x) of a :class:`Committee`'s E members.

    ``select(model, ...)`` takes the committee as ``model``; a plain model is a TypeError. Each
    batch is loaded once and every member runs on it in eval mode (modes restored afterwards);
    each member's logits are checked (a NaN names the member and the pool item, and nothing is
    recorded in the pool). Scores are computed per batch, memory O(B·E·C). Ties go to the lower
    global index. Cost per round: E·N̂ forwards, no backward (and E trainings, by the loop).

    Args:
        batch_size: items per data load.
        progress: show a progress bar.
    """

    @torch.no_grad()
    def scores(self, model: nn.Module, loader: DataLoader, check: LogitsCheck) -> Tensor:
        members = self._members(model)
        checks = [replace(check, name=f"{check.name} member {e}") for e in range(len(members))]
        device = model_device(model)
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        chunks, start = [], 0
        try:
            for x in tqdm(loader, desc="ensemble", disable=not self.progress):
                x = x.to(device)
                logits = [member_check(member(x), start, x.shape[0]) for member, member_check in zip(members, checks)]
                classes = {member_logits.shape[1] for member_logits in logits}
                if len(classes) > 1:
                    raise ValueError(f"{check.name}: the committee's members give different numbers of classes: {[t.shape[1] for t in logits]}")
                probabilities = torch.stack(logits, 1).float().softmax(-1)  # [B, E, C]
                chunks.append(self.score(probabilities))
                start += x.shape[0]
        finally:
            for module, training in modes:
                module.training = training
        scores = torch.cat(chunks)
        self.charge(forward=len(members) * scores.shape[0])
        return scores

    def _members(self, model: nn.Module) -> nn.ModuleList:
        if not isinstance(model, Committee):
            raise TypeError(
                f"{type(self).__name__}: model must be a torch_al.strategies.Committee of E >= 2 independently trained members "
                f"(Committee(members) or Committee.build(make_member, members=E)), got {type(model).__name__}"
            )
        return model.members


class EnsembleEntropy(Ensemble):
    """Entropy of the members' mean prediction, H[p̄] with p̄ = mean_e p_e."""

    def score(self, probabilities: Tensor) -> Tensor:  # [N, E, C] -> [N]
        return sample_scores.mean_entropy(probabilities)


class EnsembleBALD(Ensemble):
    """Mutual information of the prediction and the member: H[p̄] − mean_e H[p_e]."""

    def score(self, probabilities: Tensor) -> Tensor:
        return sample_scores.bald(probabilities)


class EnsembleVariationRatio(Ensemble):
    """1 − (number of members predicting the modal class) / E."""

    def score(self, probabilities: Tensor) -> Tensor:
        return sample_scores.variation_ratio(probabilities)


class VoteEntropy(Ensemble):
    """Query by committee: −Σ_c (V_c/E) log(V_c/E), V_c the members whose argmax is c."""

    def score(self, probabilities: Tensor) -> Tensor:
        return sample_scores.vote_entropy(probabilities)
