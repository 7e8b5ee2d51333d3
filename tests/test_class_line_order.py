"""torch_al::class_line_order against a float64 torch reference: the same order, ties included."""

import pytest
import torch
from common_utils import cpu_and_cuda

import torch_al


def reference_line(probabilities: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k's one-vs-rest keys in float64, sorted by a stable descending torch.sort."""
    p = probabilities.double().cpu()
    top = p.max(1, keepdim=True).values
    keys = torch.where(p == top, 1 + p, p - top)[:, k]
    order = torch.sort(keys, descending=True, stable=True).indices
    return order, torch.empty_like(order).scatter_(0, order, torch.arange(order.numel()))


def tied_probabilities(n: int, classes: int, generator: torch.Generator, levels: int | None, dtype: torch.dtype) -> torch.Tensor:
    """Softmax rows; ``levels`` rounds the logits so that keys tie, rows repeat and rows have several maxima."""
    logits = torch.randn(n, classes, generator=generator, dtype=torch.float64) * 3
    if levels:
        logits = (logits * levels).round() / levels
    return logits.softmax(1).to(dtype)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, classes, levels", [(1, 1, None), (2, 3, None), (9, 2, 1), (300, 4, 2), (1000, 10, None), (5000, 3, 1), (70_000, 10, 4)])
def test_the_order_is_a_stable_descending_sort_of_the_keys(device, dtype, n, classes, levels):
    generator = torch.Generator().manual_seed(n + classes)
    probabilities = tied_probabilities(n, classes, generator, levels, dtype)
    for k in {0, classes // 2, classes - 1}:
        order, position = torch_al.class_line_order(probabilities.to(device), k)
        expected_order, expected_position = reference_line(probabilities, k)
        assert order.dtype == position.dtype == torch.int64 and order.device.type == device
        assert torch.equal(order.cpu(), expected_order) and torch.equal(position.cpu(), expected_position)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_scores_of_any_sign_equal_zeros_and_strided_input(device):
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(-3, 4, (400, 5), generator=generator).double() / 2  # negative, zero and −0.0 keys, many ties
    scores[::7, 2] = -0.0
    strided = scores.t().contiguous().t()  # not contiguous
    for k in range(5):
        order, position = torch_al.class_line_order(strided.to(device), k)
        assert torch.equal(order.cpu(), reference_line(scores, k)[0]) and torch.equal(position.cpu(), reference_line(scores, k)[1])


def test_an_empty_pool_has_an_empty_line():
    order, position = torch_al.class_line_order(torch.empty(0, 3), 1)
    assert order.shape == position.shape == (0,) and order.dtype == torch.int64


@pytest.mark.parametrize(
    "probabilities, k, message",
    [
        (torch.rand(5), 0, r"probabilities must be \(N, C\) with C >= 1 classes, got shape \[5\]"),
        (torch.rand(5, 0), 0, r"got shape \[5, 0\]"),
        (torch.rand(5, 3).half(), 0, "probabilities must be float32 or float64, got Half"),
        (torch.randint(0, 3, (5, 3)), 0, "got Long"),
        (torch.rand(5, 3), 3, r"k must be a class in \[0, 3\), got 3"),
        (torch.rand(5, 3), -1, r"k must be a class in \[0, 3\), got -1"),
        (torch.tensor([[0.5, float("nan")]]), 0, "probabilities must be finite"),
        (torch.tensor([[0.5, float("inf")]]), 1, "probabilities must be finite"),
    ],
)
@pytest.mark.parametrize("device", cpu_and_cuda())
def test_bad_input_is_named(device, probabilities, k, message):
    with pytest.raises(RuntimeError, match=message):
        torch_al.class_line_order(probabilities.to(device), k)


def test_opcheck():
    probabilities = torch.rand(60, 4).softmax(1)
    samples = [(probabilities, 0), (probabilities.double(), 3), (torch.empty(0, 2), 1), (probabilities.clone().requires_grad_(), 2)]
    for args in samples:
        torch.library.opcheck(torch.ops.torch_al.class_line_order.default, args)


def test_outputs_never_require_grad():
    order, position = torch_al.class_line_order(torch.rand(8, 3, requires_grad=True), 1)
    assert not order.requires_grad and not position.requires_grad


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    def line(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch_al.class_line_order(scores.softmax(1), 2)

    scores = torch.randn(200, 5)
    for got, want in zip(torch.compile(line, fullgraph=True, backend=backend)(scores), line(scores)):
        assert torch.equal(got, want)


def test_torchscript():
    @torch.jit.script
    def line(probabilities: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ops.torch_al.class_line_order(probabilities, k)

    probabilities = torch.rand(100, 3)
    assert all(torch.equal(a, b) for a, b in zip(line(probabilities, 1), reference_line(probabilities, 1)))
