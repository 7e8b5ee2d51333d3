"""torch_al.distributed: sharding and exact cross-rank selection, against single-process runs.

The multi-rank tests start their own gloo process groups (world sizes 1, 2 and 3, one spawn per
world size running every case) and compare what every rank returns with the single-process op on
the whole pool. Descriptors and scores are small integers, so values are exact and ties abound.
"""

import os
import tempfile
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import torch_al
from pfk_reference import COMBINES, fixed_shape_problem
from torch_al import ActivePool
from torch_al.strategies import make_strategy
from torch_al.distributed import (
    check_same_pool,
    distributed_pfk_topk,
    distributed_select,
    distributed_select_unique,
    distributed_topk,
    labeled_set_hash,
    load_pool,
    merge_ranked,
    save_pool,
    shard,
)

POOL_SIZES = (0, 1, 7, 3001)
LAYOUTS = ("contiguous", "strided")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("items", [0, 1, 7, 3001])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_are_disjoint_and_cover_every_item(layout, items, world_size):
    indices = torch.randperm(items) * 3
    parts = [shard(indices, rank, world_size, layout) for rank in range(world_size)]
    assert sorted(torch.cat(parts).tolist()) == sorted(indices.tolist())
    assert max(p.numel() for p in parts) - min(p.numel() for p in parts) <= 1


def test_shard_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"indices must be an int64 Tensor\[N\], got shape \(3,\) dtype torch.float32"):
        shard(torch.zeros(3), 0, 1)
    with pytest.raises(ValueError, match="need 0 <= rank < world_size, got rank=2 world_size=2"):
        shard(torch.arange(3), 2, 2)
    with pytest.raises(ValueError, match="layout must be"):
        shard(torch.arange(3), 0, 2, "blocks")


def test_merge_ranked_orders_by_value_then_index_with_empty_entries_last():
    values = torch.tensor([[1.0, 3.0, 3.0, float("-inf"), float("-inf"), 2.0]])
    indices = torch.tensor([[4, 9, 2, -1, 7, 5]])
    merged_values, merged_indices = merge_ranked(values, indices, 7)
    assert merged_indices.tolist() == [[2, 9, 5, 4, 7, -1, -1]]
    assert merged_values[0, :4].tolist() == [3.0, 3.0, 2.0, 1.0] and merged_values[0, 4:].isneginf().all()


def problem_for(items: int, combine: str):
    generator = torch.Generator().manual_seed(items)
    problem = fixed_shape_problem(generator, 6, items)
    if combine == "pcc":
        problem = (problem[0], problem[1], [], [])
    mask = torch.rand(items, generator=generator) < 0.3
    scores = torch.randint(0, 5, (items,), generator=generator).float()
    return problem, mask, scores


def local_part(problem, mask, scores, owned):
    query_z, pool_z, query_g, pool_g = problem
    return (query_z, [p[owned] for p in pool_z], query_g, [p[owned] for p in pool_g]), mask[owned], scores[owned]


def selection_cases():
    """(pool size, kernel form, shard layout): every case runs on every world size."""
    for items in POOL_SIZES:
        for combine in ("pcc", *COMBINES):
            for layout in LAYOUTS:
                yield items, combine, layout


def single_process_results(items, combine, layout):
    problem, mask, scores = problem_for(items, combine)
    kernel = "product" if combine == "pcc" else combine
    selectable = int((~mask).sum())
    budget = min(selectable, 40)
    results = {"topk": tuple(t.tolist() for t in _reference_topk(scores, 25))}
    results["pfk_topk"] = tuple(t.tolist() for t in torch_al.pfk_topk(*problem, pool_mask=mask, k=5, combine=kernel))
    if items:
        # k = 2 makes the rank rule run out of candidates and re-query.
        results["rank"] = torch_al.select_unique(*problem[:2], budget, *problem[2:], mask, k=2, combine=kernel).tolist()
        results["column"] = torch_al.select_unique(*problem[:2], budget, *problem[2:], mask, combine=kernel, rule="column").tolist()
    return results


def _reference_topk(scores, count):
    order = sorted(range(scores.numel()), key=lambda i: (-scores[i].item(), i))[:count]
    return scores[order], torch.tensor(order, dtype=torch.int64)


def distributed_results(items, combine, layout, rank, world_size):
    problem, mask, scores = problem_for(items, combine)
    kernel = "product" if combine == "pcc" else combine
    owned = shard(torch.arange(items), rank, world_size, layout)
    local, local_mask, local_scores = local_part(problem, mask, scores, owned)
    budget = min(int((~mask).sum()), 40)
    results = {"topk": tuple(t.tolist() for t in distributed_topk(local_scores, owned, 25))}
    results["pfk_topk"] = tuple(
        t.tolist() for t in distributed_pfk_topk(*local, pool_mask=local_mask, k=5, combine=kernel, global_indices=owned)
    )
    if items:
        results["rank"] = distributed_select_unique(*local[:2], budget, *local[2:], local_mask, k=2, combine=kernel, global_indices=owned).tolist()
        results["column"] = distributed_select_unique(
            *local[:2], budget, *local[2:], local_mask, combine=kernel, rule="column", global_indices=owned
        ).tolist()
    return results


def all_masked_shard_results(rank, world_size):
    """Rank 0's whole shard is masked; the others still fill the budget."""
    problem, mask, _ = problem_for(3001, "product")
    owned = shard(torch.arange(3001), rank, world_size)
    mask = mask.clone()
    mask[shard(torch.arange(3001), 0, world_size)] = True
    local, local_mask, _ = local_part(problem, mask, torch.zeros(3001), owned)
    budget = min(int((~mask).sum()), 30)
    picked = distributed_select_unique(*local[:2], budget, *local[2:], local_mask, k=3, global_indices=owned)
    expected = torch_al.select_unique(*problem[:2], budget, *problem[2:], mask, k=3)
    return picked.tolist(), expected.tolist()


SCORE_STRATEGIES = ("entropy", "margin", "least-confidence", "random")


def strategy_problem(items: int):
    """A float64 linear model over a pool whose rows come in threes (equal scores: ties), a few
    of them labeled."""
    generator = torch.Generator().manual_seed(items)
    inputs = torch.randn((items + 2) // 3, 4, generator=generator, dtype=torch.float64).repeat_interleave(3, 0)[:items]
    pool = ActivePool(torch.utils.data.TensorDataset(inputs, torch.zeros(items, dtype=torch.int64)))
    labeled = list(range(0, items, 5))
    pool.label(labeled, torch.zeros(len(labeled), dtype=torch.int64))
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    return model, pool, min(50, items - len(labeled))


def strategy_results(rank, world_size):
    results = {}
    for items in (1, 7, 3001):
        model, pool, budget = strategy_problem(items)
        for name in SCORE_STRATEGIES:
            for layout in LAYOUTS:
                strategy = make_strategy(name, progress=False) if name != "random" else make_strategy(name)
                results[items, name, layout] = distributed_select(strategy, model, pool, budget, layout=layout).tolist()
    model, pool, budget = strategy_problem(7)
    try:
        distributed_select(make_strategy("coreset", progress=False), model, pool, 2)
    except TypeError as error:
        results["unsupported"] = str(error)
    return results


def single_process_strategy_results():
    results = {}
    for items in (1, 7, 3001):
        model, pool, budget = strategy_problem(items)
        for name in SCORE_STRATEGIES:
            strategy = make_strategy(name, progress=False) if name != "random" else make_strategy(name)
            picked = strategy.select(model, pool, budget).tolist()
            results.update({(items, name, layout): picked for layout in LAYOUTS})
    return results


def run_ranks(worker, world_size: int, tmp_path) -> list:
    """Runs worker(rank, world_size, folder) on world_size spawned gloo ranks and returns what each
    rank's call returned, in rank order."""
    init_file = tempfile.NamedTemporaryFile(dir=tmp_path, delete=False).name
    mp.spawn(_rank_main, args=(worker, world_size, init_file, str(tmp_path)), nprocs=world_size, join=True)
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]


def _rank_main(rank, worker, world_size, init_file, folder):
    # A rank that fails leaves the others waiting in a collective: the timeout turns that into an error.
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size, timeout=timedelta(seconds=120))
    try:
        torch.save(worker(rank, world_size, folder), os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def selection_worker(rank, world_size, folder):
    results = {case: distributed_results(*case, rank, world_size) for case in selection_cases()}
    results["all_masked_shard"] = all_masked_shard_results(rank, world_size)
    results["strategies"] = strategy_results(rank, world_size)
    return results


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_every_rank_returns_the_single_process_selection(world_size, tmp_path):
    per_rank = run_ranks(selection_worker, world_size, tmp_path)
    expected = {case: single_process_results(*case) for case in selection_cases()}
    expected_strategies = single_process_strategy_results()
    for rank, results in enumerate(per_rank):
        for case in selection_cases():
            assert results[case] == expected[case], (rank, case)
        picked, expected_picks = results["all_masked_shard"]
        assert picked == expected_picks
        strategies = results["strategies"]
        assert strategies.pop("unsupported").startswith("distributed_select: CoreSet has no distributed form yet")
        assert strategies == expected_strategies


def failure_worker(rank, world_size, folder):
    """The last rank fails in its local step (NaN scores; a NaN image in its shard): every rank
    must raise at once, none may wait for it."""
    scores = torch.full((4,), float("nan") if rank == world_size - 1 else 1.0)
    model, pool, budget = strategy_problem(30)
    pool.dataset.tensors[0][-1] = float("nan")  # the last item: in the last rank's contiguous shard
    errors = []
    for call in (
        lambda: distributed_topk(scores, torch.arange(4) + 4 * rank, 2),
        lambda: distributed_select(make_strategy("entropy", progress=False), model, pool, budget),
    ):
        try:
            call()
            errors.append(None)
        except Exception as error:  # noqa: BLE001 - recorded for the parent to check
            errors.append((type(error).__name__, str(error)))
    return errors


@pytest.mark.parametrize("world_size", [2, 3])
def test_a_rank_that_raises_makes_every_rank_raise_its_message(world_size, tmp_path):
    last = world_size - 1
    for rank, errors in enumerate(run_ranks(failure_worker, world_size, tmp_path)):
        (topk_type, topk_message), (select_type, select_message) = errors
        if rank == last:
            assert topk_type == "ValueError" and f"rank {last}'s scores contain NaN" in topk_message
            assert select_type == "ValueError" and "Entropy" in select_message
        else:
            assert topk_type == "RuntimeError" and topk_message.startswith(f"torch_al.distributed: rank {last} failed: ValueError: ")
            assert select_type == "RuntimeError" and f"rank {last} failed: ValueError: " in select_message and "Entropy" in select_message


def state_worker(rank, world_size, folder):
    """Rank 0 alone writes; every rank loads and agrees; then a rank whose labeled set differs
    makes every rank raise, naming both hashes."""
    _, pool, _ = strategy_problem(30)
    pool.label([1, 2], torch.tensor([1, 2]))
    save_pool(pool, os.path.join(folder, "state.pool"))
    _, fresh, _ = strategy_problem(30)
    outcome = {"loaded": check_same_pool(load_pool(fresh, os.path.join(folder, "state.pool"))) == labeled_set_hash(pool)}
    if rank == world_size - 1:
        fresh.label([3], torch.tensor([0]))
    try:
        save_pool(fresh, os.path.join(folder, "state.second"))
    except ValueError as error:
        outcome["mismatch"] = str(error)
    outcome["hash"] = labeled_set_hash(fresh)
    return outcome


@pytest.mark.parametrize("world_size", [2, 3])
def test_pool_state_is_written_by_rank_zero_and_checked_on_every_rank(world_size, tmp_path):
    outcomes = run_ranks(state_worker, world_size, tmp_path)
    last = world_size - 1
    for outcome in outcomes:
        assert outcome["loaded"]
        assert outcome["mismatch"] == (
            f"torch_al.distributed: rank {last}'s labeled set (hash {outcomes[last]['hash']}) differs from rank 0's "
            f"(hash {outcomes[0]['hash']}); load the same pool state on every rank"
        )
    assert not (tmp_path / "state.second").exists()  # nothing written when the ranks disagree
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("state.pool")) == ["state.pool"]  # one file, no temporaries
