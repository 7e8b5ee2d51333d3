"""Exports PFK batch selection as TorchScript and checks a C++ program selects the same points.

    python examples/export_pfk_selection.py --out DIR [--cpp-binary build/.../pfk_selection]

Writes DIR/pfk_selection.pt (the scripted module) and DIR/inputs.pt (descriptor stores, mask and
budget), prints the indices Python selects and, given the binary of examples/cpp, runs it on the
same files and asserts it prints the same indices.
"""

import argparse
import os
import subprocess
from typing import List

import torch
from torch import Tensor

import torch_al


class PfkSelection(torch.nn.Module):
    """Multi-scale PFK (product combine) matching and rank-by-rank batch fill."""

    def __init__(self, k: int = 4):
        super().__init__()
        self.k = k

    def forward(
        self,
        query_z: List[Tensor],
        pool_z: List[Tensor],
        query_g: List[Tensor],
        pool_g: List[Tensor],
        pool_mask: Tensor,
        budget: int,
    ) -> Tensor:
        return torch_al.select_unique(query_z, pool_z, budget, query_g, pool_g, pool_mask, self.k, "product", "rank")


def example_inputs() -> dict:
    """A small LeNet-like problem: 3 scales (10, 20, 50 channels), 16 queries, 5000 pool points."""
    generator = torch.Generator().manual_seed(0)
    widths = (10, 20, 50)

    def store(rows: int) -> List[Tensor]:
        return [torch.randn(rows, c, generator=generator) for c in widths]

    mask = torch.rand(5000, generator=generator) < 0.2
    return {"query_z": store(16), "pool_z": store(5000), "query_g": store(16), "pool_g": store(5000),
            "pool_mask": mask, "budget": 40}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for pfk_selection.pt and inputs.pt")
    parser.add_argument("--cpp-binary", help="path of the built examples/cpp pfk_selection program")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    module_path = os.path.join(args.out, "pfk_selection.pt")
    inputs_path = os.path.join(args.out, "inputs.pt")

    scripted = torch.jit.script(PfkSelection())
    scripted.save(module_path)
    inputs = example_inputs()
    torch.save(inputs, inputs_path)
    selected = scripted(**inputs).tolist()
    assert selected == PfkSelection()(**inputs).tolist(), "scripted and eager selections differ"
    print(" ".join(map(str, selected)))

    if args.cpp_binary:
        result = subprocess.run([args.cpp_binary, module_path, inputs_path], capture_output=True, text=True, check=True)
        cpp_selected = [int(i) for i in result.stdout.split()]
        assert cpp_selected == selected, f"C++ selected {cpp_selected}, Python {selected}"
        print("C++ selection matches")


if __name__ == "__main__":
    main()
