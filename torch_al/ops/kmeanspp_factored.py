"""k-means++ seeding (D² sampling) over factored embeddings e_i = a_i ⊗ b_i: BADGE's selection."""

import torch
from torch import Tensor

from torch_al.checks import check_int
from torch_al.extension import assert_has_ops


def kmeanspp_factored(
    a: Tensor,
    b: Tensor,
    count: int,
    initial: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Picks ``count`` rows by k-means++ seeding over the embeddings e_i = a_i ⊗ b_i, never formed.

    The seeding of Arthur & Vassilvitskii, "k-means++: The Advantages of Careful Seeding" (SODA
    2007), as BADGE uses it (Ash et al., ICLR 2020): each pick is drawn with probability
    proportional to D²(i), the squared distance of e_i to its nearest center so far, computed from
    the factors as

        ‖e_i − e_j‖² = ‖a_i‖²‖b_i‖² + ‖a_j‖²‖b_j‖² − 2 (a_i·a_j)(b_i·b_j)   (clamped at 0)

    in float64, one pass over the N rows per pick (O(N (C + D)) work, O(N) extra memory; the
    N × C·D embeddings are never built). Exactly, with the draws ``u = torch.rand(count,
    generator=generator, dtype=torch.float64)``: pick t is the first row whose float64 running sum
    of w_i (w_i = D²(i) for rows not yet centers, 0 for centers) exceeds ``u[t] · Σ w``, so the
    result is a function of the inputs and the generator's state, the same on CPU and CUDA up to
    draws within float64 rounding of a row boundary. Rules where sampling is undefined:

    * no initial centers: the first pick is the row of largest ‖e_i‖ (BADGE's released code; the
      paper's k-means++ draws it uniformly), ties to the lower index, and ``u[0]`` goes unused;
    * every remaining D² is 0 (all rows duplicate a center, or all-zero embeddings): the
      lowest-index row not yet a center.

    A center (initial or picked) is at distance 0 and never picked again.

    Args:
        a (Tensor[N, C]): first factors (BADGE: p_i − onehot(ŷ_i)); float32 or float64, finite.
        b (Tensor[N, D]): second factors (BADGE: the last layer's input h_i); a's dtype and device.
        count (int): the number of picks P, ``0 <= P <= N −`` the number of initial centers.
        initial (Tensor[N] bool or Tensor[S] int64/int32, optional): rows that are centers from
            the start (e.g. the labeled set): a mask, or indices in ``[0, N)`` (repeats allowed).
            Their distances are computed by float64 matrix products in tiles (O(tile) memory).
        generator (torch.Generator, optional): the CPU generator of the draws (default: torch's
            global one).

    Returns:
        (indices, pick_sq): ``indices`` (Tensor[P], int64) in pick order; ``pick_sq`` (Tensor[P],
        float64) each pick's D² just before it was picked (``inf`` for a first pick without
        centers). Both on a's device.

    Raises:
        ValueError: ``count`` not an int >= 0.
        RuntimeError: bad shapes, dtypes or devices; NaN/inf in a or b (naming the first bad row);
            initial indices out of range; more picks than rows that are not initial centers. One
            host synchronisation for these checks.
    """
    assert_has_ops()
    count = check_int(count, "kmeanspp_factored: count", 0)
    uniforms = torch.rand(count, generator=generator, dtype=torch.float64).to(a.device)
    return torch.ops.torch_al.kmeanspp_factored(a, b, uniforms, initial)
