"""Comments cite files in the repository: every `docs/NAME.md#anchor` named in the code exists,
with that heading, and nothing cites the research specs kept outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ("gepetto_core", "bot", "gepetto_sandbox", "bench", "tests")
CITATION = re.compile(r"docs/([a-z_-]+\.md)(#[a-z0-9-]+)?")
# How the research documents were cited before docs/ existed.
OUTSIDE = re.compile(r"specs/|\b(validator-api|chutes-miner|scheduling|chatops)(\.md)? ?(spec )?§")


def _python_files() -> list[Path]:
    return sorted(p for top in SOURCES for p in (ROOT / top).rglob("*.py"))


def _cited_from() -> list[Path]:
    return [*_python_files(), ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in doc.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add("#" + re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return anchors


def _citations() -> list[tuple[str, str, str]]:
    found = []
    for path in _cited_from():
        for match in CITATION.finditer(path.read_text()):
            found.append((str(path.relative_to(ROOT)), match.group(1), match.group(2) or ""))
    return found


def test_the_code_cites_docs_at_all() -> None:
    assert len(_citations()) > 20


@pytest.mark.parametrize(("source", "doc", "anchor"), _citations())
def test_each_cited_doc_and_heading_exists(source: str, doc: str, anchor: str) -> None:
    path = ROOT / "docs" / doc
    assert path.is_file(), f"{source} cites docs/{doc}, which does not exist"
    if anchor:
        assert anchor in _anchors(path), f"{source} cites docs/{doc}{anchor}: no such heading"


def test_no_comment_cites_documents_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in _cited_from()
        if path.resolve() != this
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


# A path in backticks that starts at a top-level folder, e.g. `gepetto_core/services/sync.py`.
REPO_PATH = re.compile(r"`((?:gepetto_core|bot|gepetto_sandbox|bench|tests|docs|k8s)/[\w./-]*)`")


def _doc_paths() -> list[tuple[str, str]]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [
        (doc.name, match.group(1))
        for doc in docs
        for match in REPO_PATH.finditer(doc.read_text())
        if "NNNN" not in match.group(1)  # a file-name pattern, not a file
    ]


def test_the_docs_name_repository_paths() -> None:
    assert len(_doc_paths()) > 50


@pytest.mark.parametrize(("doc", "path"), _doc_paths())
def test_each_path_the_docs_name_exists(doc: str, path: str) -> None:
    """Modules move: the docs must move with them."""
    assert (ROOT / path).exists(), f"{doc} names {path}, which does not exist"
