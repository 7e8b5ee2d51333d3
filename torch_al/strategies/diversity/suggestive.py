"""Suggestive annotation: Yang, Zhang, Chen, Zhang & Chen, "Suggestive Annotation: A Deep Active
Learning Framework for Biomedical Image Segmentation", MICCAI 2017. The K most uncertain unlabeled
items, then the P of them that best represent the whole unlabeled pool (greedy facility location
on the cosine similarity of the model's descriptors)."""

import torch

from torch_al.checks import check_int
from torch_al.devices import model_device
from torch_al.distributed.greedy import distributed_facility_location_greedy
from torch_al.distributed.ranked import distributed_topk
from torch_al.embeddings import check_embedding_layer, embed_with_logits
from torch_al.nn.capture import Tokens
from torch_al.ops.facility_location_greedy import facility_location_greedy
from torch_al.sampler import inputs_loader
from torch_al.strategies.base import Strategy
from torch_al.strategies.uncertainty.uncertainty_sampling import CRITERIA

CANDIDATES_PER_PICK = 4  # the default K = 4P


class SuggestiveAnnotation(Strategy):
    """Uncertainty, then representativeness, from one forward pass over the unlabeled pool.

    1. The K most uncertain unlabeled items by ``criterion`` (ties to the lower global index);
       K = ``candidates``, by default 4P, clipped to the number of unlabeled items.
    2. Of those, P chosen greedily to maximise F(S) = Σ_{u ∈ unlabeled} max(0, max_{a ∈ S} cos(a, u))
       over the model's descriptors (the ``facility_location_greedy`` op, on the model's device):
       each pick adds the most still-unrepresented similarity mass. An all-zero descriptor is
       similar to nothing (it normalises to zero).

    Descriptors are the output of ``layer`` (flattened), by default the input of the model's last
    ``nn.Linear``, as in :class:`CoreSet`. Scores are the picks' marginal gains, in pick order.

    Args:
        candidates: K, an int >= 1 (None: 4 × budget); a budget larger than K is an error.
        criterion: ``"entropy"``, ``"margin"`` or ``"least_confidence"``.
        layer: descriptor layer name; default the input of the last ``nn.Linear``.
        batch_size: forward batch size.
        tokens: with a named ``layer``, read its output as (B, T, C) tokens pooled to (B, C):
            ``"mean"`` over the tokens or ``"first"`` (the class token); None flattens it.
    """

    def __init__(self, candidates: int | None = None, criterion: str = "entropy", layer: str | None = None, batch_size: int = 256, tokens: Tokens | None = None) -> None:
        check_embedding_layer("SuggestiveAnnotation", layer, tokens)
        if candidates is not None:
            check_int(candidates, "SuggestiveAnnotation: candidates", 1)
        if criterion not in CRITERIA:
            raise ValueError(f"SuggestiveAnnotation: criterion must be one of {sorted(CRITERIA)}, got {criterion!r}")
        self.candidates = candidates
        self.criterion = criterion
        self.layer = layer
        self.tokens = tokens
        self.batch_size = check_int(batch_size, "SuggestiveAnnotation: batch_size", 1)
        self._uncertainty = CRITERIA[criterion](progress=False)  # only its score(): one formula per criterion

    def query(self, model, pool, budget):
        unlabeled = pool.unlabeled_indices
        count = self.shortlist_size(budget, unlabeled.numel())
        uncertainty, unit = self.describe(model, pool, unlabeled)
        shortlist = torch.sort(uncertainty, descending=True, stable=True).indices[:count]
        picks, gains = facility_location_greedy(unit[shortlist], unit, budget)
        return unlabeled[shortlist[picks].cpu()], gains.cpu()

    def query_over_ranks(self, model, pool, budget, shard):
        """Each rank scores and describes its shard; the K most uncertain items over every rank
        have their descriptors gathered to every rank, then
        :func:`~torch_al.distributed.distributed_facility_location_greedy` covers the sharded pool
        (the same picks unless two gains agree to within rounding)."""
        count = self.shortlist_size(budget, int(pool.unlabeled_indices.numel()))
        uncertainty, unit = shard.on_every_rank(lambda: self.describe(model, pool, shard.owned) if shard.owned.numel() else (torch.empty(0), None))
        _, shortlist = distributed_topk(uncertainty.double().cpu(), shard.owned, count, shard.group)
        unit = shard.held_or_empty(unit, 1, model_device(model))
        # Each rank writes the shortlisted rows it holds; the others' zeros add nothing.
        candidates = unit.new_zeros(count, unit.shape[1])
        mine = torch.isin(shortlist, shard.owned)
        candidates[mine] = unit[torch.searchsorted(shard.owned.contiguous(), shortlist[mine])]
        picks, _ = distributed_facility_location_greedy(shard.all_reduced(candidates), unit, budget, group=shard.group)
        return shortlist[picks]

    def shortlist_size(self, budget: int, unlabeled: int) -> int:
        """K, clipped to the unlabeled items; a budget above an explicit K is an error."""
        if self.candidates is not None and budget > self.candidates:
            raise ValueError(f"SuggestiveAnnotation: budget {budget} is larger than candidates={self.candidates} (K must be >= the budget)")
        return min(self.candidates or CANDIDATES_PER_PICK * budget, unlabeled)

    def describe(self, model, pool, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """(uncertainty[n], unit descriptors[n, D]) of the pool items ``rows``, one forward each."""
        if model is None:
            raise ValueError("SuggestiveAnnotation scores and embeds with a model; got model=None")
        descriptors, logits = embed_with_logits(model, inputs_loader(pool, rows, self.batch_size), rows, type(self).__name__, self.layer, self.tokens)
        self.charge(forward=rows.numel())
        unit = torch.nn.functional.normalize(descriptors, dim=1)  # a zero row stays zero
        return self._uncertainty.score(logits.float().softmax(1)), unit
