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
