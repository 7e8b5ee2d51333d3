"""The README's Python examples run as written."""

import os
import re

from common_utils import REPO_ROOT


def test_readme_python_blocks_run():
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert blocks, "the README has no Python example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
