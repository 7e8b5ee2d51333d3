"""Run by .ci/test with the clean virtual environment's Python, from outside the source tree: the
torch_al imported is the installed wheel's, its ops load and one runs, its version is the
package metadata's, and the torch-al command works."""

import importlib.metadata
import os
import subprocess
import sys
from importlib import resources

import torch

import torch_al

location, environment = os.path.realpath(torch_al.__file__), os.path.realpath(sys.prefix)
assert location.startswith(environment + os.sep), f"imported {location}, not the wheel installed in {environment}"
assert not location.startswith(os.path.join(os.path.realpath(sys.argv[1]), "torch_al") + os.sep), f"imported the source tree: {location}"
assert torch_al.has_ops(), "the compiled ops did not load"
assert torch_al.__version__ == importlib.metadata.version("torch_al"), (torch_al.__version__, importlib.metadata.version("torch_al"))
requires = importlib.metadata.requires("torch_al")
assert any(r.startswith("torch==") for r in requires), f"the wheel does not pin the torch it was built against: {requires}"

x = torch.randn(4, 3, 5, 5)
torch.testing.assert_close(torch_al.pool_features(x), x.mean((2, 3)))
command = os.path.join(os.path.dirname(sys.executable), "torch-al")
usage = subprocess.run([command, "--help"], check=True, capture_output=True, text=True).stdout
assert all(name in usage for name in ("run", "select", "label", "status", "annotate", "export", "import", "push", "pull")), usage
page = resources.files("torch_al.labeling_page")
assert all(page.joinpath(name).is_file() for name in ("page.html", "page.js", "page.css")), "the labeling page's files are not in the wheel"
print(f"wheel OK: torch_al {torch_al.__version__} from {os.path.dirname(location)}, cuda_version={torch_al.cuda_version()}, requires {requires}")
