"""Citations of the documentation in the source, `(README, "The API")` or
`(docs/design.md, "The rollup cache")`: each names a section that exists, so that a reader
sent there finds the text (README's sections are its `##` headings; a page of docs/ has
headings and paragraphs that open with a bold title, `**The rollup cache.**`)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("app.py", "config", "schemas", "service", "tests")
CITATION = re.compile(r'(README|docs/[\w-]+\.md),\s+"([^"]+)"')
HEADING = re.compile(r"^#+\s+(.+?)\s*$", re.MULTILINE)
BOLD_TITLE = re.compile(r"^\*\*(.+?)\.?\*\*", re.MULTILINE)


def cited() -> list[tuple[str, str, str]]:
    """(where, document, section) for every citation in the Python source."""
    found = []
    for top in SOURCES:
        paths = [ROOT / top] if top.endswith(".py") else sorted((ROOT / top).rglob("*.py"))
        for path in paths:
            text = path.read_text(encoding="utf-8")
            for match in CITATION.finditer(" ".join(text.split())):  # a citation may wrap
                found.append((str(path.relative_to(ROOT)), *match.groups()))
    return found


@cache
def sections(document: str) -> frozenset[str]:
    text = (ROOT / ("README.md" if document == "README" else document)).read_text("utf-8")
    titles = HEADING.findall(text)
    if document != "README":
        titles += BOLD_TITLE.findall(text)
    return frozenset(title.rstrip(".") for title in titles)


def names(section: str, titles: frozenset[str]) -> bool:
    """The title itself, or its head before a comma ("Usage import" for "Usage import, in
    full")."""
    return any(section == title or title.startswith(section + ",") for title in titles)


def test_the_source_cites_the_documentation():
    assert {document for _, document, _ in cited()} >= {"README", "docs/design.md"}


@pytest.mark.parametrize(("where", "document", "section"), cited())
def test_every_cited_section_exists(where, document, section):
    assert (ROOT / ("README.md" if document == "README" else document)).is_file(), document
    assert names(section, sections(document)), f'{where}: no section "{section}" in {document}'
