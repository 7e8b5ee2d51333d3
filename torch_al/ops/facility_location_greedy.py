"""Greedy facility location: the representativeness step of Suggestive annotation (Yang et al.)."""

import torch
from torch import Tensor, nn

from torch_al.extension import assert_has_ops


def facility_location_greedy(candidates: Tensor, universe: Tensor, count: int) -> tuple[Tensor, Tensor]:
    """Picks ``count`` candidates greedily maximising a facility-location objective.

    Implements the representativeness selection of Yang et al., "Suggestive Annotation: A Deep
    Active Learning Framework for Biomedical Image Segmentation" (MICCAI 2017): with
    s(a, u) = <a, u> (pass L2-normalised rows for cosine similarity),

        F(S) = sum over u in universe of max(0, max over a in S of s(a, u))

    and each pick is the candidate with the largest marginal gain F(S + a) - F(S), ties to the
    lower candidate index. The floor at 0 makes F(empty set) = 0 and F monotone submodular; a row
    of zeros (what normalising a zero descriptor gives) is similar to nothing and covers nothing.

    Runs the lazy greedy (Minoux): stale gains are upper bounds in a heap ordered by (gain
    descending, index ascending) and are re-evaluated only when they reach the top, a few at once;
    the picks are exactly those of the plain greedy, because every similarity is recomputed with
    the same bits (fused multiply-adds in increasing d) and a gain can then only shrink. Gains
    are streamed over tiles of 256 universe points, so memory is O((K + N) * D) and the K x N
    similarity is never formed. The first round evaluates all K candidates (K * N * D
    multiply-adds); each pick then costs one cover pass over the universe plus the rounds that
    re-evaluate the stale bounds above the best current gain, N * D multiply-adds per candidate:
    few where a pick changes few gains, up to most of the candidates for the first picks when
    every similarity is positive (see benchmarks/bench_facility_location_greedy.py). CPU and CUDA
    give the same picks and gains bit for bit; on CUDA the heap lives on the host and each
    re-evaluation round costs one host sync (plus one per 1024 candidates for the first round and
    one for the finiteness checks).

    Args:
        candidates (Tensor[K, D]): the rows that may be picked; float32 or float64, finite.
        universe (Tensor[N, D]): the points to cover (N may be 0: every gain is then 0); same
            dtype and device as candidates, finite.
        count (int): the number of picks P, ``0 <= P <= K``.

    Returns:
        (picks, gains): ``picks`` (Tensor[P], int64) candidate indices in pick order; ``gains``
        (Tensor[P], the dtype of the inputs) the marginal gain of each pick, non-increasing, summing
        to F of the picked set.

    Raises:
        RuntimeError: a bad shape, dtype or device, a D that differs between the inputs, a count
            out of range (naming what was given and expected), NaN/inf in either input (naming the
            first bad row; this check costs one host sync).
    """
    assert_has_ops()
    return torch.ops.torch_al.facility_location_greedy(candidates, universe, count)


class FacilityLocationGreedy(nn.Module):
    """:func:`facility_location_greedy` with its count bound; scriptable.

    Args:
        count (int): the number of picks per call.
    """

    def __init__(self, count: int) -> None:
        super().__init__()
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"FacilityLocationGreedy: count must be an int >= 0, got {count!r}")
        self.count = count

    def forward(self, candidates: Tensor, universe: Tensor) -> tuple[Tensor, Tensor]:
        """candidates (Tensor[K, D]), universe (Tensor[N, D]) -> (picks[count], gains[count])."""
        return torch.ops.torch_al.facility_location_greedy(candidates, universe, self.count)

    def extra_repr(self) -> str:
        return f"count={self.count}"
