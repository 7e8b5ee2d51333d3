"""Fake (meta) implementations of the torch_al ops: shapes and checks only, so torch.compile and
torch.export can trace them. Each mirrors the checks of its C++ `check_<op>_inputs`."""

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


if has_ops():

    @torch.library.register_fake("torch_al::pool_features")
    def _pool_features_fake(x: torch.Tensor) -> torch.Tensor:
        _check_pool_features_input("pool_features", x)
        return x.new_empty((x.shape[0], x.shape[1]))

    @torch.library.register_fake("torch_al::pool_features_into")
    def _pool_features_into_fake(x: torch.Tensor, out: torch.Tensor, rows: torch.Tensor, column: int) -> None:
        op = "pool_features_into"
        _check_pool_features_input(op, x)
        torch._check(out.dim() == 2, lambda: f"{op}: out must be a 2-D store (P, L), got shape {tuple(out.shape)}")
        torch._check(out.dtype == x.dtype, lambda: f"{op}: out dtype {out.dtype} must equal x dtype {x.dtype}")
        torch._check(out.device == x.device, lambda: f"{op}: out is on {out.device} but x is on {x.device}")
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
        torch._check(x.dim() == 2, lambda: f"{op}: x must be 2-D (N, D), got shape {list(x.shape)}")
        torch._check(
            x.dtype.is_floating_point,
            lambda: f"{op}: x must be a floating tensor (float16, bfloat16, float32 or float64), got {x.dtype}",
        )
        torch._check(k >= 0, lambda: f"{op}: k must be >= 0, got {k}")
        torch._check(
            metric in ("euclidean", "cosine"), lambda: f"{op}: metric must be 'euclidean' or 'cosine', got '{metric}'"
        )
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
