"""Fake (meta) implementations of the torch_al ops: shapes and checks only, so torch.compile and
torch.export can trace them. Each mirrors the checks of its C++ `check_<op>_inputs`."""

import math

import torch

from torch_al.extension import has_ops


def _check_pool_features_input(op: str, x: torch.Tensor) -> None:
    torch._check(
        2 <= x.dim() <= 5,
        lambda: f"{op}: x must be (N, C) or (N, C, *spatial) with at most 3 spatial dims, "
        f"got shape {tuple(x.shape)}",
    )
    torch._check(
        x.dtype.is_floating_point,
        lambda: f"{op}: x must be a floating tensor (float16, bfloat16, float32 or float64), got {x.dtype}",
    )


def _check_kcenter_points(op: str, x: torch.Tensor, metric: str) -> None:
    """The checks kcenter_greedy and kcenter_greedy_step share (check_kcenter_points in C++)."""
    torch._check(x.dim() == 2, lambda: f"{op}: x must be 2-D (N, D), got shape {list(x.shape)}")
    torch._check(
        x.dtype.is_floating_point,
        lambda: f"{op}: x must be a floating tensor (float16, bfloat16, float32 or float64), got {x.dtype}",
    )
    torch._check(metric in ("euclidean", "cosine"), lambda: f"{op}: metric must be 'euclidean' or 'cosine', got '{metric}'")


def _check_like_candidates(op: str, name: str, rows: torch.Tensor, candidates: torch.Tensor) -> None:
    """facility_location_greedy's universe and initial rows: the candidates' dtype and device."""
    torch._check(
        rows.dtype == candidates.dtype,
        lambda: f"{op}: {name} must have the dtype of candidates, {candidates.dtype}, got {rows.dtype}",
    )
    torch._check(rows.device == candidates.device, lambda: f"{op}: {name} is on {rows.device} but candidates are on {candidates.device}")


if has_ops():

    @torch.library.register_fake("torch_al::pool_features")
    def _pool_features_fake(x: torch.Tensor) -> torch.Tensor:
        _check_pool_features_input("pool_features", x)
        return x.new_empty((x.shape[0], x.shape[1]))

    @torch.library.register_fake("torch_al::pool_features_into")
    def _pool_features_into_fake(x: torch.Tensor, out: torch.Tensor, rows: torch.Tensor | None, column: int) -> None:
        op = "pool_features_into"
        _check_pool_features_input(op, x)
        torch._check(out.dim() == 2, lambda: f"{op}: out must be a 2-D store (P, L), got shape {tuple(out.shape)}")
        torch._check(out.dtype == x.dtype, lambda: f"{op}: out dtype {out.dtype} must equal x dtype {x.dtype}")
        torch._check(out.device == x.device, lambda: f"{op}: out is on {out.device} but x is on {x.device}")
        if rows is None:
            torch._check(
                out.shape[0] == x.shape[0],
                lambda: f"{op}: without rows, out must have x's N={x.shape[0]} rows (narrow the store), got out of shape {list(out.shape)}",
            )
        else:
            torch._check(
                rows.dim() == 1 and rows.dtype == torch.int64,
                lambda: f"{op}: rows must be a 1-D int64 tensor, got shape {tuple(rows.shape)} dtype {rows.dtype}",
            )
            torch._check(rows.device == x.device, lambda: f"{op}: rows is on {rows.device} but x is on {x.device}")
            torch._check(
                rows.shape[0] == x.shape[0],
                lambda: f"{op}: rows has {rows.shape[0]} entries but x has N={x.shape[0]}",
            )
        torch._check(
            column >= 0 and column + x.shape[1] <= out.shape[1],
            lambda: f"{op}: columns [{column}, {column + x.shape[1]}) of x do not fit out of shape {tuple(out.shape)}",
        )

    def _check_pfk_topk_inputs(op, query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision) -> None:
        """Mirrors check_pfk_topk_inputs in csrc/ops/pfk/pfk_topk.cpp."""
        torch._check(len(query_z) > 0, lambda: f"{op}: query_z must hold at least one scale, got an empty list")
        scales = len(query_z)
        torch._check(len(pool_z) == scales, lambda: f"{op}: pool_z has {len(pool_z)} scales but query_z has {scales}")
        torch._check(
            len(query_g) == len(pool_g),
            lambda: f"{op}: query_g and pool_g must both be empty or both hold {scales} scales, "
            f"got {len(query_g)} and {len(pool_g)}",
        )
        torch._check(query_z[0].dim() == 2, lambda: f"{op}: query_z[0] must be (M, C), got shape {list(query_z[0].shape)}")
        torch._check(pool_z[0].dim() == 2, lambda: f"{op}: pool_z[0] must be (N, C), got shape {list(pool_z[0].shape)}")
        first = query_z[0]
        for name, tensors, rows, rows_name, widths_name, widths in (
            ("query_z", query_z, first.shape[0], "M", "query_z", None),
            ("pool_z", pool_z, pool_z[0].shape[0], "N", "query_z", query_z),
            ("query_g", query_g, first.shape[0], "M", "query_z", None),
            ("pool_g", pool_g, pool_z[0].shape[0], "N", "query_g", query_g),
        ):
            torch._check(
                len(tensors) in (0, scales) if name.endswith("_g") else len(tensors) == scales,
                lambda: f"{op}: {name} has {len(tensors)} scales but {widths_name} has {scales}",
            )
            for j, t in enumerate(tensors):
                torch._check(
                    t.dim() == 2 and t.shape[0] == rows,
                    lambda: f"{op}: {name}[{j}] must be ({rows_name}={rows}, C), got shape {list(t.shape)}",
                )
                if widths is not None:
                    torch._check(
                        t.shape[1] == widths[j].shape[1],
                        lambda: f"{op}: {name}[{j}] has {t.shape[1]} channels but {widths_name}[{j}] has {widths[j].shape[1]}",
                    )
        torch._check(
            first.dtype in (torch.float32, torch.float64),
            lambda: f"{op}: descriptors must be float32 or float64, got query_z[0] of dtype {first.dtype}",
        )
        for name, tensors in (("query_z", query_z), ("pool_z", pool_z), ("query_g", query_g), ("pool_g", pool_g)):
            for j, t in enumerate(tensors):
                torch._check(t.dtype == first.dtype, lambda: f"{op}: {name}[{j}] dtype {t.dtype} must equal query_z[0] dtype {first.dtype}")
                torch._check(t.device == first.device, lambda: f"{op}: {name}[{j}] is on {t.device} but query_z[0] is on {first.device}")
        if pool_mask is not None:
            torch._check(
                pool_mask.dim() == 1 and pool_mask.shape[0] == pool_z[0].shape[0],
                lambda: f"{op}: pool_mask must be (N={pool_z[0].shape[0]},), got shape {list(pool_mask.shape)}",
            )
            torch._check(pool_mask.dtype == torch.bool, lambda: f"{op}: pool_mask must be torch.bool, got {pool_mask.dtype}")
            torch._check(pool_mask.device == first.device, lambda: f"{op}: pool_mask is on {pool_mask.device} but query_z[0] is on {first.device}")
        torch._check(k >= 0, lambda: f"{op}: k must be >= 0, got {k}")
        torch._check(
            combine in ("product", "fisher", "sum"),
            lambda: f'{op}: combine must be one of "product", "fisher", "sum", got "{combine}"',
        )
        torch._check(precision in ("exact", "fast"), lambda: f'{op}: precision must be "exact" or "fast", got "{precision}"')

    @torch.library.register_fake("torch_al::pfk_topk")
    def _pfk_topk_fake(query_z, pool_z, query_g, pool_g, pool_mask, k, combine="product", precision="exact", check_finite=True):
        _check_pfk_topk_inputs("pfk_topk", query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision)
        rows = query_z[0].shape[0]
        return query_z[0].new_empty((rows, k)), query_z[0].new_empty((rows, k), dtype=torch.int64)

    @torch.library.register_fake("torch_al::pfk_column_topk")
    def _pfk_column_topk_fake(query_z, pool_z, query_g, pool_g, pool_mask, k, combine="product", precision="exact", check_finite=True):
        _check_pfk_topk_inputs("pfk_column_topk", query_z, pool_z, query_g, pool_g, pool_mask, k, combine, precision)
        return query_z[0].new_empty((k,)), query_z[0].new_empty((k,), dtype=torch.int64)

    @torch.library.register_fake("torch_al::select_unique_ranked")
    def _select_unique_ranked_fake(values, indices, count):
        op = "select_unique_ranked"
        torch._check(values.dim() == 2, lambda: f"{op}: values must be (M, k), got shape {tuple(values.shape)}")
        torch._check(values.dtype.is_floating_point, lambda: f"{op}: values must be a floating tensor, got {values.dtype}")
        torch._check(
            indices.shape == values.shape and indices.dtype == torch.int64,
            lambda: f"{op}: indices must be int64 of the shape of values {tuple(values.shape)}, "
            f"got shape {tuple(indices.shape)} dtype {indices.dtype}",
        )
        torch._check(indices.device == values.device, lambda: f"{op}: indices is on {indices.device} but values is on {values.device}")
        torch._check(count >= 0, lambda: f"{op}: count must be >= 0, got {count}")
        return indices.new_empty((count,))

    @torch.library.register_fake("torch_al::ig_accumulate")
    def _ig_accumulate_fake(grad: torch.Tensor, steps: int, acc: torch.Tensor) -> None:
        op = "ig_accumulate"
        torch._check_value(steps > 0, lambda: f"{op}: steps must be a positive number of path steps K, got {steps}")
        torch._check_value(
            3 <= grad.dim() <= 6,
            lambda: f"{op}: grad must be (S, B, C) or (S, B, C, *spatial) with at most 3 spatial dims, "
            f"got shape {tuple(grad.shape)}",
        )
        torch._check_type(
            grad.dtype.is_floating_point,
            lambda: f"{op}: grad must be a floating tensor (float16, bfloat16, float32 or float64), got {grad.dtype}",
        )
        torch._check(acc.device == grad.device, lambda: f"{op}: acc is on {acc.device} but grad is on {grad.device}")
        acc_dtype = torch.float64 if grad.dtype == torch.float64 else torch.float32
        torch._check_type(
            acc.dtype == acc_dtype, lambda: f"{op}: acc must be {acc_dtype} for {grad.dtype} grad, got {acc.dtype}"
        )
        torch._check_value(
            acc.dim() == 2 and acc.shape[0] == grad.shape[1] and acc.shape[1] == grad.shape[2],
            lambda: f"{op}: acc must be (B, C) = ({grad.shape[1]}, {grad.shape[2]}) for grad of shape "
            f"{tuple(grad.shape)}, got shape {tuple(acc.shape)}",
        )

    @torch.library.register_fake("torch_al::class_line_order")
    def _class_line_order_fake(probabilities: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        op = "class_line_order"
        torch._check(
            probabilities.dim() == 2 and probabilities.shape[1] >= 1,
            lambda: f"{op}: probabilities must be (N, C) with C >= 1 classes, got shape {list(probabilities.shape)}",
        )
        torch._check(
            probabilities.dtype in (torch.float32, torch.float64),
            lambda: f"{op}: probabilities must be float32 or float64, got {probabilities.dtype}",
        )
        torch._check(0 <= k < probabilities.shape[1], lambda: f"{op}: k must be a class in [0, {probabilities.shape[1]}), got {k}")
        n = probabilities.shape[0]
        return probabilities.new_empty((n,), dtype=torch.int64), probabilities.new_empty((n,), dtype=torch.int64)

    @torch.library.register_fake("torch_al::nearest_neighbours")
    def _nearest_neighbours_fake(
        query: torch.Tensor,
        pool: torch.Tensor,
        k: int,
        pool_mask: torch.Tensor | None = None,
        query_index: torch.Tensor | None = None,
        metric: str = "sqeuclidean",
        check_finite: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mirrors check_nearest_neighbours_inputs in csrc/ops/knn/nearest_neighbours.cpp."""
        op = "nearest_neighbours"
        for name, points, rows in (("query", query, "M"), ("pool", pool, "N")):
            torch._check(points.dim() == 2, lambda: f"{op}: {name} must be ({rows}, D), got shape {list(points.shape)}")
            torch._check(
                points.dtype in (torch.float32, torch.float64),
                lambda: f"{op}: {name} must be float32 or float64, got {points.dtype}",
            )
        torch._check(
            pool.shape[1] == query.shape[1],
            lambda: f"{op}: pool has {pool.shape[1]} dimensions but query has {query.shape[1]} "
            f"(shapes {list(pool.shape)} and {list(query.shape)})",
        )
        torch._check(pool.dtype == query.dtype, lambda: f"{op}: pool dtype {pool.dtype} must equal query dtype {query.dtype}")
        n = pool.shape[0]
        if pool_mask is not None:
            torch._check(
                pool_mask.dim() == 1 and pool_mask.shape[0] == n,
                lambda: f"{op}: pool_mask must be (N={n},), got shape {list(pool_mask.shape)}",
            )
            torch._check(pool_mask.dtype == torch.bool, lambda: f"{op}: pool_mask must be torch.bool (True = excluded), got {pool_mask.dtype}")
        if query_index is not None:
            torch._check(
                query_index.dim() == 1 and query_index.shape[0] == query.shape[0],
                lambda: f"{op}: query_index must be (M={query.shape[0]},), got shape {list(query_index.shape)}",
            )
            torch._check(
                query_index.dtype == torch.int64, lambda: f"{op}: query_index must be int64 (a pool row, or -1), got {query_index.dtype}"
            )
        torch._check(k >= 0, lambda: f"{op}: k must be >= 0, got {k}")
        torch._check(metric in ("sqeuclidean", "cosine"), lambda: f'{op}: metric must be "sqeuclidean" or "cosine", got "{metric}"')
        rows = query.shape[0]
        return query.new_empty((rows, k)), query.new_empty((rows, k), dtype=torch.int64)

    @torch.library.register_fake("torch_al::kcenter_greedy_step")
    def _kcenter_greedy_step_fake(
        x: torch.Tensor, centers: torch.Tensor, min_sq: torch.Tensor, selectable: torch.Tensor, metric: str = "euclidean"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        op = "kcenter_greedy_step"
        _check_kcenter_points(op, x, metric)
        n, dims = x.shape
        torch._check(
            centers.dim() == 2 and centers.shape[0] >= 1 and centers.shape[1] == dims,
            lambda: f"{op}: centers must be (S, D) with S >= 1 and D = {dims} (x's), got shape {list(centers.shape)}",
        )
        torch._check(centers.dtype == x.dtype, lambda: f"{op}: centers must have x's dtype {x.dtype}, got {centers.dtype}")
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        torch._check(
            min_sq.dim() == 1 and min_sq.shape[0] == n and min_sq.dtype == acc and min_sq.is_contiguous(),
            lambda: f"{op}: min_sq must be a contiguous {acc} tensor of N = {n} entries, got shape "
            f"{list(min_sq.shape)} dtype {min_sq.dtype}",
        )
        torch._check(
            selectable.dim() == 1 and selectable.shape[0] == n and selectable.dtype == torch.bool,
            lambda: f"{op}: selectable must be a bool tensor of N = {n} entries, got shape "
            f"{list(selectable.shape)} dtype {selectable.dtype}",
        )
        for name, tensor in (("centers", centers), ("min_sq", min_sq), ("selectable", selectable)):
            torch._check(tensor.device == x.device, lambda: f"{op}: {name} is on {tensor.device} but x is on {x.device}")
        return min_sq.new_empty(()), min_sq.new_empty((), dtype=torch.int64)

    @torch.library.register_fake("torch_al::kcenter_greedy")
    def _kcenter_greedy_fake(
        x: torch.Tensor,
        k: int,
        initial: torch.Tensor | None = None,
        first: int | None = None,
        metric: str = "euclidean",
        exclude: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        op = "kcenter_greedy"
        _check_kcenter_points(op, x, metric)
        torch._check(k >= 0, lambda: f"{op}: k must be >= 0, got {k}")
        n = x.shape[0]
        if initial is not None:
            torch._check(
                initial.device == x.device, lambda: f"{op}: initial is on {initial.device} but x is on {x.device}"
            )
            torch._check(
                initial.dim() == 1 and initial.dtype in (torch.bool, torch.int64, torch.int32),
                lambda: f"{op}: initial must be a 1-D bool mask of N entries or a 1-D int32/int64 index list, "
                f"got shape {list(initial.shape)} dtype {initial.dtype}",
            )
            torch._check(
                initial.dtype != torch.bool or initial.shape[0] == n,
                lambda: f"{op}: initial mask has {initial.shape[0]} entries but x has N={n}",
            )
        if exclude is not None:
            torch._check(
                exclude.device == x.device, lambda: f"{op}: exclude is on {exclude.device} but x is on {x.device}"
            )
            torch._check(
                exclude.dim() == 1 and exclude.dtype == torch.bool,
                lambda: f"{op}: exclude must be a 1-D bool mask, got shape {list(exclude.shape)} dtype {exclude.dtype}",
            )
            torch._check(exclude.shape[0] == n, lambda: f"{op}: exclude has {exclude.shape[0]} entries but x has N={n}")
        distance_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        return x.new_empty((k,), dtype=torch.int64), x.new_empty((n,), dtype=distance_dtype)

    @torch.library.register_fake("torch_al::coverage_greedy")
    def _coverage_greedy_fake(
        points: torch.Tensor,
        radius: float,
        count: int,
        initial: torch.Tensor | None = None,
        exclude: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mirrors check_coverage_greedy_inputs in csrc/ops/coverage/coverage_greedy.cpp."""
        op = "coverage_greedy"
        torch._check(points.dim() == 2, lambda: f"{op}: points must be (N, D), got shape {list(points.shape)}")
        torch._check(
            points.dtype in (torch.float32, torch.float64),
            lambda: f"{op}: points must be float32 or float64, got {points.dtype}",
        )
        torch._check(
            math.isfinite(radius) and radius >= 0, lambda: f"{op}: radius must be finite and >= 0, got {radius}"
        )
        torch._check(count >= 0, lambda: f"{op}: count must be >= 0, got {count}")
        n = points.shape[0]
        if initial is not None:
            torch._check(
                initial.dim() == 1 and initial.dtype in (torch.bool, torch.int64),
                lambda: f"{op}: initial must be a 1-D bool mask of N entries or a 1-D int64 index list, "
                f"got shape {list(initial.shape)} dtype {initial.dtype}",
            )
            torch._check(
                initial.dtype != torch.bool or initial.shape[0] == n,
                lambda: f"{op}: initial mask has {initial.shape[0]} entries but points has N={n}",
            )
            torch._check(
                initial.device == points.device,
                lambda: f"{op}: initial is on {initial.device} but points is on {points.device}",
            )
        if exclude is not None:
            torch._check(
                exclude.dim() == 1 and exclude.dtype == torch.bool,
                lambda: f"{op}: exclude must be a 1-D bool mask, got shape {list(exclude.shape)} dtype {exclude.dtype}",
            )
            torch._check(exclude.shape[0] == n, lambda: f"{op}: exclude has {exclude.shape[0]} entries but points has N={n}")
            torch._check(
                exclude.device == points.device,
                lambda: f"{op}: exclude is on {exclude.device} but points is on {points.device}",
            )
        return points.new_empty((count,), dtype=torch.int64), points.new_empty((count,), dtype=torch.int64)

    @torch.library.register_fake("torch_al::kmeanspp_factored")
    def _kmeanspp_factored_fake(
        a: torch.Tensor, b: torch.Tensor, uniforms: torch.Tensor, initial: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        op = "kmeanspp_factored"
        torch._check(a.dim() == 2, lambda: f"{op}: a must be 2-D (N, C), got shape {list(a.shape)}")
        torch._check(b.dim() == 2, lambda: f"{op}: b must be 2-D (N, D), got shape {list(b.shape)}")
        torch._check(
            a.shape[0] == b.shape[0],
            lambda: f"{op}: a and b must have the same number of rows N, got a of shape {list(a.shape)} "
            f"and b of shape {list(b.shape)}",
        )
        torch._check(a.dtype in (torch.float32, torch.float64), lambda: f"{op}: a must be float32 or float64, got {a.dtype}")
        torch._check(b.dtype == a.dtype, lambda: f"{op}: b dtype {b.dtype} must equal a dtype {a.dtype}")
        torch._check(b.device == a.device, lambda: f"{op}: b is on {b.device} but a is on {a.device}")
        torch._check(
            uniforms.dim() == 1 and uniforms.dtype == torch.float64,
            lambda: f"{op}: uniforms must be a 1-D float64 tensor (one draw per pick), "
            f"got shape {list(uniforms.shape)} dtype {uniforms.dtype}",
        )
        torch._check(uniforms.device == a.device, lambda: f"{op}: uniforms is on {uniforms.device} but a is on {a.device}")
        if initial is not None:
            torch._check(initial.device == a.device, lambda: f"{op}: initial is on {initial.device} but a is on {a.device}")
            torch._check(
                initial.dim() == 1 and initial.dtype in (torch.bool, torch.int64, torch.int32),
                lambda: f"{op}: initial must be a 1-D bool mask of N entries or a 1-D int32/int64 index list, "
                f"got shape {list(initial.shape)} dtype {initial.dtype}",
            )
            torch._check(
                initial.dtype != torch.bool or initial.shape[0] == a.shape[0],
                lambda: f"{op}: initial mask has {initial.shape[0]} entries but a has N={a.shape[0]}",
            )
        picks = uniforms.shape[0]
        return a.new_empty((picks,), dtype=torch.int64), a.new_empty((picks,), dtype=torch.float64)
    @torch.library.register_fake("torch_al::facility_location_greedy")
    def _facility_location_greedy_fake(
        candidates: torch.Tensor,
        universe: torch.Tensor,
        count: int,
        initial: torch.Tensor | None = None,
        kernel: str = "dot",
        gamma: float = 1.0,
        weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        op = "facility_location_greedy"
        torch._check(
            candidates.dim() == 2, lambda: f"{op}: candidates must be 2-D (K, D), got shape {list(candidates.shape)}"
        )
        torch._check(universe.dim() == 2, lambda: f"{op}: universe must be 2-D (N, D), got shape {list(universe.shape)}")
        torch._check(
            candidates.dtype in (torch.float32, torch.float64),
            lambda: f"{op}: candidates must be float32 or float64, got {candidates.dtype}",
        )
        _check_like_candidates(op, "universe", universe, candidates)
        torch._check(
            universe.shape[1] == candidates.shape[1],
            lambda: f"{op}: universe must have D={candidates.shape[1]} columns like candidates "
            f"{list(candidates.shape)}, got shape {list(universe.shape)}",
        )
        k = candidates.shape[0]
        torch._check(
            0 <= count <= k, lambda: f"{op}: count must lie in [0, K] with K={k} candidates, got {count}"
        )
        if initial is not None:
            torch._check(
                initial.dim() == 2 and initial.shape[1] == candidates.shape[1],
                lambda: f"{op}: initial must be (L, D={candidates.shape[1]}) rows, got shape {list(initial.shape)}",
            )
            _check_like_candidates(op, "initial", initial, candidates)
        torch._check(kernel in ("dot", "gaussian"), lambda: f'{op}: kernel must be "dot" or "gaussian", got "{kernel}"')
        torch._check(
            kernel == "dot" or (math.isfinite(gamma) and gamma > 0),
            lambda: f"{op}: gamma must be finite and > 0 for the gaussian kernel, got {gamma}",
        )
        if weights is not None:
            torch._check(
                weights.dim() == 1 and weights.shape[0] == universe.shape[0],
                lambda: f"{op}: weights must be 1-D with one entry per universe point (N={universe.shape[0]}), "
                f"got shape {list(weights.shape)}",
            )
            _check_like_candidates(op, "weights", weights, candidates)
        return candidates.new_empty((count,), dtype=torch.int64), candidates.new_empty((count,))
