"""Every relative link in the README and in docs/*.md leads somewhere: to a file of the repository
and, when it names an anchor (`page.md#section`), to a heading of that page.

Anchors are computed the way GitHub renders headings: lower case, punctuation dropped (hyphens and
underscores kept), each space a hyphen, a repeated heading suffixed -1, -2, …
"""

import glob
import os
import re

import pytest
from common_utils import REPO_ROOT

PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "docs", "*.md")))
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _prose(path: str) -> str:
    """The page's text without code: no link or heading is read from inside a code block."""
    with open(path) as f:
        return FENCE.sub("", f.read())


def anchors(path: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(_prose(path)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: str) -> list[str]:
    text = INLINE_CODE.sub("", _prose(os.path.join(REPO_ROOT, page)))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_the_anchor_rule_matches_github():
    assert anchors(os.path.join(REPO_ROOT, "docs", "methods.md")) >= {
        "15-badge-k-means-seeding-on-last-layer-gradient-embeddings",
        "1-notation-and-conventions",
    }


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    root = os.path.realpath(REPO_ROOT)
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = os.path.realpath(os.path.join(REPO_ROOT, os.path.dirname(page), path)) if path else os.path.join(REPO_ROOT, page)
        if os.path.commonpath([root, resolved]) != root:
            broken.append(f"{target}: outside the repository")
        elif not os.path.exists(resolved):
            broken.append(f"{target}: no such file")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page}: {broken}"
