"""k-means++ seeding (D² sampling) over explicit embeddings, in float64, with the rules of
torch_al.kmeanspp_factored spelled out one by one: the reference of its tests and BADGE's."""

import torch

INF = float("inf")


def dense_kmeanspp(e: torch.Tensor, uniforms: torch.Tensor, initial: torch.Tensor | None = None):
    """e Tensor[N, E], uniforms Tensor[P], initial bool Tensor[N] or None -> (picks[P], pick D²[P]).
    Distances from differences (a duplicate of a center is at distance exactly 0)."""
    e = e.double().cpu()
    n = e.shape[0]
    selectable = torch.ones(n, dtype=torch.bool) if initial is None else ~initial.cpu()
    min_sq = torch.full((n,), INF, dtype=torch.float64)
    for c in (~selectable).nonzero().flatten().tolist():
        min_sq = torch.minimum(min_sq, ((e - e[c]) ** 2).sum(1))
    picks, pick_sq = [], []
    for t, u in enumerate(uniforms.tolist()):
        if t == 0 and bool(selectable.all()):
            pick = int((e**2).sum(1).argmax())  # the largest embedding; argmax takes the first maximum
        else:
            weights = torch.where(selectable, min_sq, 0.0)
            cumulative = weights.cumsum(0)
            total = float(cumulative[-1])
            if total == 0:
                pick = int(selectable.nonzero()[0])
            else:
                pick = int(torch.searchsorted(cumulative, torch.tensor([u * total], dtype=torch.float64), right=True))
                pick = pick if pick < n else int((weights > 0).nonzero()[-1])
        picks.append(pick)
        pick_sq.append(float(min_sq[pick]))
        selectable[pick] = False
        min_sq = torch.minimum(min_sq, ((e - e[pick]) ** 2).sum(1))
    return torch.tensor(picks, dtype=torch.int64), torch.tensor(pick_sq, dtype=torch.float64)
