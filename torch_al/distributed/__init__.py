"""Exact selection over ``torch.distributed``: every rank scores a disjoint shard of the pool, and
the ranks merge what they found into exactly the answer of one process on the whole pool.

- :mod:`~torch_al.distributed.collectives`: the steps every rank takes together, and how one
  rank's failure reaches the others (every rank raises at once, none waits in a collective);
- :mod:`~torch_al.distributed.ranked`: sharding, and merging ranked lists (top-k, PFK's matching);
- :mod:`~torch_al.distributed.greedy` and :mod:`~torch_al.distributed.rank_arbiter`: the greedy
  selections, one pick decided over the ranks at a time;
- :mod:`~torch_al.distributed.pool_sync`: one pool state on every rank, saved from rank 0 only
  after every rank agrees;
- :mod:`~torch_al.distributed.select`: :func:`distributed_select`, which hands each strategy its
  :class:`Shard`; the strategy's form over ranks lives beside its rule, in its own module.
"""

from torch_al.distributed.collectives import RankFailedError
from torch_al.distributed.greedy import distributed_facility_location_greedy, distributed_kcenter_greedy, distributed_kmeanspp_factored
from torch_al.distributed.pool_sync import check_same_pool, labeled_set_hash, load_pool, save_pool
from torch_al.distributed.rank_arbiter import RankArbiter
from torch_al.distributed.ranked import Layout, distributed_pfk_topk, distributed_select_unique, distributed_topk, gather_ranked, merge_ranked, shard
from torch_al.distributed.select import Shard, distributed_select


def __getattr__(name: str):
    # BatchBALD's form over ranks lives with BatchBALD, whose module imports this package: reading
    # it on first use keeps either import order working.
    if name == "distributed_batchbald_select":
        from torch_al.strategies.bayesian.batchbald import distributed_batchbald_select

        return distributed_batchbald_select
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Layout",
    "RankArbiter",
    "RankFailedError",
    "Shard",
    "check_same_pool",
    "distributed_batchbald_select",
    "distributed_facility_location_greedy",
    "distributed_kcenter_greedy",
    "distributed_kmeanspp_factored",
    "distributed_pfk_topk",
    "distributed_select",
    "distributed_select_unique",
    "distributed_topk",
    "gather_ranked",
    "labeled_set_hash",
    "load_pool",
    "merge_ranked",
    "save_pool",
    "shard",
]
