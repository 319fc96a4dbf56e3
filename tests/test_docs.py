"""Every ``>>>`` example of the pages under docs/ runs, so the docs cannot drift from the code.

Pages are found by listing docs/: a new page with examples runs without anyone adding
it to a list. Each page runs as one doctest (its examples share one namespace, top to
bottom, as a reader follows them). A page ends an example's expected output with a
blank line before the closing code fence.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md") if ">>>" in p.read_text(encoding="utf-8"))


def test_the_pages_with_examples_are_found() -> None:
    # If the listing missed these, the parametrized test below would silently test less.
    names = {p.name for p in PAGES}
    assert {"logger.md", "distributed.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples(page: Path) -> None:
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
        encoding="utf-8",
        raise_on_error=False,
    )
    assert result.attempted > 0, f"{page.name}: no example ran"
    assert result.failed == 0, f"{result.failed} example(s) of docs/{page.name} failed (see output)"
