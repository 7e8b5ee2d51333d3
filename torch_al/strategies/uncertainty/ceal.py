"""CEAL: Wang, Zhang, Li, Zhang & Lin, "Cost-Effective Active Learning for Deep Image
Classification", IEEE TCSVT 2017. The P most uncertain unlabeled items go to the oracle; the
confident rest (entropy below a threshold that decays over the rounds) get their predicted class
as pseudo-labels for the next round's training only."""

import torch
from torch import Tensor

from torch_al.checks import check_real
from torch_al.pseudo_labeled_pool import PseudoLabelSet
from torch_al.strategies.base import ScoreStrategy, predict_probabilities
from torch_al.strategies.uncertainty.uncertainty_sampling import CRITERIA

_SCORES = {name: strategy(progress=False) for name, strategy in CRITERIA.items()}  # only their score(): one formula each


def ceal_pseudo_labels(probabilities: Tensor, candidates: Tensor, query: Tensor, threshold: float) -> PseudoLabelSet:
    """CEAL's high-confidence items: ``{i in candidates, i not in query, H(p_i) < threshold}``,
    each labeled ``argmax_c p_i`` (ties to the lower class). H is the entropy of
    :class:`~torch_al.strategies.Entropy` (natural log, 0 log 0 = 0), computed in the dtype of
    ``probabilities``; as H >= 0, a threshold <= 0 gives an empty set.

    Args:
        probabilities: floating Tensor[N, C], row i for item ``candidates[i]`` (any device).
        candidates: int64 Tensor[N], the global indices scored (CPU).
        query: int64 Tensor[P], this round's query (global indices; they go to the oracle instead).
        threshold: δ_t.

    Returns:
        :class:`PseudoLabelSet` with CPU tensors, in the order of ``candidates``.
    """
    if not isinstance(probabilities, Tensor) or probabilities.dim() != 2 or not probabilities.is_floating_point():
        raise ValueError(f"ceal_pseudo_labels: probabilities must be a floating Tensor[N, C], got {probabilities!r}")
    if not isinstance(candidates, Tensor) or candidates.shape != probabilities.shape[:1]:
        raise ValueError(f"ceal_pseudo_labels: candidates must be a Tensor[{probabilities.shape[0]}] (one per row), got {candidates!r}")
    threshold = check_real(threshold, "threshold")
    candidates, query = candidates.to("cpu", torch.int64), torch.as_tensor(query).to("cpu", torch.int64)
    confident = (_SCORES["entropy"].score(probabilities) < threshold).cpu()
    keep = confident & ~torch.isin(candidates, query)
    return PseudoLabelSet(candidates[keep], probabilities.argmax(1).cpu()[keep], threshold)


class CEAL(ScoreStrategy):
    """Uncertainty sampling plus high-confidence pseudo-labels, from one forward pass.

    ``select`` returns the ``budget`` items with the highest ``criterion`` score (ties to the lower
    global index), as :class:`Entropy`, :class:`Margin` or :class:`LeastConfidence` would, and sets
    ``last_pseudo_labels``: the other unlabeled items whose predictive entropy is below
    ``δ_t = delta0 − decay · t`` (t = ``pool.round``, the rounds completed: the first selection
    uses delta0), labeled with their predicted class. They are for the next round's training only
    (:class:`~torch_al.PseudoLabeledPool`; :class:`~torch_al.ActiveLearningLoop` does it) and are
    recomputed at every selection; nothing is written to the pool. Cost per round: N̂ forwards.

    Args:
        criterion: the query's uncertainty: ``"entropy"``, ``"margin"`` or ``"least_confidence"``.
        delta0: δ₀, the entropy threshold of the first selection (the paper's 0.005).
        decay: dr, subtracted from the threshold per completed round (the paper's 0.00033).
        batch_size: scoring batch size.
        progress: show a progress bar while scoring.
    """

    def __init__(self, criterion: str = "entropy", delta0: float = 0.005, decay: float = 0.00033, batch_size: int = 256, progress: bool = True) -> None:
        super().__init__(batch_size, progress)
        if not isinstance(criterion, str) or criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {tuple(CRITERIA)}, got {criterion!r}")
        self.criterion = criterion
        self.delta0 = check_real(delta0, "delta0", at_least=0)
        self.decay = check_real(decay, "decay", at_least=0)
        self._probabilities: Tensor | None = None

    def threshold(self, round_: int) -> float:
        """δ_t = delta0 − decay · t for a selection made when ``t`` rounds are complete."""
        return self.delta0 - self.decay * round_

    def score(self, probabilities: Tensor) -> Tensor:
        return _SCORES[self.criterion].score(probabilities)

    def scores(self, model, loader, check):
        # As ScoreStrategy.scores, keeping the probabilities: the pseudo-labels come from this same pass.
        self._probabilities = predict_probabilities(model, loader, self.progress, check)
        self.charge(forward=self._probabilities.shape[0])
        return self.score(self._probabilities)

    def query(self, model, pool, budget):
        try:
            indices, scores = super().query(model, pool, budget)
            self.last_pseudo_labels = ceal_pseudo_labels(self._probabilities, pool.unlabeled_indices, indices, self.threshold(pool.round))
        finally:
            self._probabilities = None  # N̂ × C floats: not kept between rounds
        return indices, scores

    def query_over_ranks(self, model, pool, budget, shard):
        """The query as a score strategy's (exact); each rank then finds the confident items of its
        shard, and every rank receives the union as ``last_pseudo_labels`` (ascending global
        indices, as on one process)."""
        threshold = self.threshold(pool.round)
        try:
            query = shard.top(lambda rows: self.item_scores(model, pool, rows), budget)
            mine = shard.on_every_rank(lambda: ceal_pseudo_labels(self._probabilities, shard.owned, query, threshold) if shard.owned.numel() else None)
        finally:
            self._probabilities = None
        held = [part for part in shard.all_gathered(None if mine is None else (mine.indices, mine.labels)) if part is not None]
        indices = torch.cat([part[0] for part in held]) if held else torch.empty(0, dtype=torch.int64)
        labels = torch.cat([part[1] for part in held]) if held else torch.empty(0, dtype=torch.int64)
        order = indices.argsort()
        self.last_pseudo_labels = PseudoLabelSet(indices[order], labels[order], threshold)
        return query
