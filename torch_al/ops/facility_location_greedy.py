"""Greedy facility location: the representativeness step of Suggestive annotation (Yang et al.)."""

from typing import Optional

import torch
from torch import Tensor, nn

from torch_al.extension import assert_has_ops


def facility_location_greedy(
    candidates: Tensor,
    universe: Tensor,
    count: int,
    initial: Optional[Tensor] = None,
    kernel: str = "dot",
    gamma: float = 1.0,
    weights: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """Picks ``count`` candidates greedily maximising a facility-location objective.

    Implements the representativeness selection of Yang et al., "Suggestive Annotation: A Deep
    Active Learning Framework for Biomedical Image Segmentation" (MICCAI 2017): with
    s(a, u) = <a, u> (pass L2-normalised rows for cosine similarity),

        F(S) = sum over u in universe of max(0, max over a in S of s(a, u))

    and each pick is the candidate with the largest marginal gain F(S + a) - F(S), ties to the
    lower candidate index. With ``initial`` rows the greedy starts from S = initial (they cover
    from the start and are never picked). ``kernel="gaussian"`` uses s(a, u) = exp(-gamma
    ||a - u||^2) instead of the dot product: F is then MaxHerding's generalised coverage (Bae et
    al., "Generalized Coverage for More Robust Low-Budget Active Learning", ECCV 2024). ``weights``
    w[u] >= 0 weigh each universe point's term, F(S) = sum over u of w[u] max(0, max over a in S of
    s(a, u)): with uncertainties as weights and the gaussian kernel, F is UHerding's uncertainty
    coverage (Bae et al., "Uncertainty Herding: One Active Learning Method for All Label Budgets",
    ICLR 2025). The floor at 0 makes F(empty set) = 0 and F monotone submodular; a row of zeros
    (what normalising a zero descriptor gives) is similar to nothing and covers nothing.

    Keeps every candidate's gain up to date incrementally: a pick changes only the terms of the
    universe points whose cover it raises, so each candidate's float64 running sum of its terms
    (its "mass") is updated over those points alone, K x |raised points| similarities per pick
    (about half the universe for the first pick, a sliver for later ones) instead of K x N. Picks
    use the masses only as upper bounds (the rounding of both the float64 updates and of the
    fixed-order sum a fresh gain takes is bounded rigorously): each pick's gain is a fresh sum over
    the whole universe, taken for the few candidates whose bound reaches the best fresh gain, so
    the picks and gains are exactly those of the plain greedy over the fresh gains, ties to the
    lower candidate index, bit for bit those of the earlier lazy greedy, whatever the data. A fresh
    gain is a fixed-order sum of terms max(0, s(a, u) - cover[u]) with s a chain of fused
    multiply-adds in increasing d (tiles of 256 points, 32 lanes, tiles in order); the plain greedy
    in any other summation order may pick differently only where its own top two gains lie within
    that rounding of each other. Memory is O((K + N) * D): the K x N similarity is never formed.
    Cost: K * N * D multiply-adds for the initial masses, then per pick a cover pass over the
    universe (N * D), K * |raised points| * D for the masses and N * D per fresh gain (about four
    per pick). CPU and CUDA give the same picks and gains bit for bit (under "gaussian" up to the
    last bit of each backend's exponential); on CUDA the greedy runs on the host and each pick
    costs two host syncs (plus one per fresh-gain batch, one per 1024 candidates for the initial
    masses and one for the finiteness checks).

    Args:
        candidates (Tensor[K, D]): the rows that may be picked; float32 or float64, finite.
        universe (Tensor[N, D]): the points to cover (N may be 0: every gain is then 0); same
            dtype and device as candidates, finite.
        count (int): the number of picks P, ``0 <= P <= K``.
        initial (Tensor[L, D], optional): rows already in the set (e.g. the labeled items).
        kernel (str): ``"dot"`` or ``"gaussian"``.
        gamma (float): the gaussian kernel's scale, finite and > 0.
        weights (Tensor[N], optional): each universe point's weight, finite and >= 0 (default 1);
            same dtype and device as candidates. A term is w[u] times the point's gain, rounded
            once, so the picks stay exactly the plain greedy's.

    Returns:
        (picks, gains): ``picks`` (Tensor[P], int64) candidate indices in pick order; ``gains``
        (Tensor[P], the dtype of the inputs) the marginal gain of each pick, non-increasing, summing
        to F of the picked set.

    Raises:
        RuntimeError: a bad shape, dtype or device, a D that differs between the inputs, a count
            out of range (naming what was given and expected), NaN/inf in any input (naming the
            first bad row) or a negative weight (this check costs one host sync).
    """
    if not torch.jit.is_scripting():
        assert_has_ops()
    return torch.ops.torch_al.facility_location_greedy(candidates, universe, count, initial, kernel, gamma, weights)


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
