"""The Python examples of the README and of every page in docs/ run as written.

Every fenced block opened with ```python runs: the blocks of one page in order, in one namespace
of their own (a page's later examples may use what its earlier ones defined; pages share
nothing). A block that genuinely cannot run here (it needs a package torch_al does not depend on,
several processes under torchrun, a GPU) starts with a line of the form

    # not run by the tests: <why>

and is skipped; keep such blocks few.
"""

import glob
import os
import re

import pytest
from common_utils import REPO_ROOT

SKIP_MARK = "# not run by the tests:"
PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "docs", "*.md")))


def python_blocks(page: str) -> list[str]:
    with open(os.path.join(REPO_ROOT, page)) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)


def test_readme_has_an_example():
    assert python_blocks("README.md"), "the README has no Python example"


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page):
    namespace: dict = {"__name__": f"example:{page}"}
    for block in python_blocks(page):
        if block.lstrip().startswith(SKIP_MARK):
            continue
        exec(compile(block, page, "exec"), namespace)
