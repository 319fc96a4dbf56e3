"""docs/: every page with ``>>>`` examples runs as a doctest, the index lists every page,
and every relative link between pages (and from README) reaches a file and a heading.

Pages are found by their content, not by a list kept by hand, and the discovery itself
must find pages: a docs folder that yields none fails rather than passing unexamined.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = re.compile(r"^>>> ", flags=re.MULTILINE)
PAGES = sorted(p for p in DOCS.glob("*.md") if EXAMPLE.search(p.read_text(encoding="utf-8")))
# [text](target) where target is not a URL: a page, maybe with #anchor.
LINK = re.compile(r"\]\((?!https?://)([^)#\s]*)(?:#([^)\s]+))?\)")


def test_pages_with_examples_are_found() -> None:
    names = {path.name for path in PAGES}
    expected = {"reporter.md", "store.md", "logger.md", "distributed.md"}
    assert expected <= names, f"doc pages with examples: {sorted(names)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_examples_run(page: Path) -> None:
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
        encoding="utf-8",
        raise_on_error=False,
    )
    assert result.attempted > 0, f"{page.name}: no example ran"
    assert result.failed == 0, f"{result.failed} example(s) of {page.name} failed (see output)"


def test_the_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = {target for target, _ in LINK.findall(index)}
    pages = {path.name for path in DOCS.glob("*.md")} - {"README.md"}
    assert pages, "no page in docs/"
    assert linked == pages, f"docs/README.md links {sorted(linked)}, docs/ has {sorted(pages)}"
    assert "](docs/README.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as "-"."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda path: path.name
)
def test_links_reach_a_page_and_a_heading(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target, anchor in LINK.findall(text):
        dest = (page.parent / target).resolve() if target else page
        if dest.suffix != ".md" or not (dest == page or DOCS in dest.parents):
            continue  # links to code, images, or other folders are not this test's
        assert dest.is_file(), f"{page.name}: link to {target!r}, which does not exist"
        if anchor:
            assert anchor in anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


def test_slug() -> None:
    assert slug("`finalize` and its delivery report") == "finalize-and-its-delivery-report"
    assert slug("Model-health keys") == "model-health-keys"
