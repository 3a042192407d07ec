"""RELIABILITY.md stays true: every row names tests that exist, every such test is in a row.

A row's last cell names the tests that prove it as ``tests/<path>.py::<test function>``. This
test fails when a named test is renamed or removed, when a reliability or security test is
added without a row, and when the README stops linking the report.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "RELIABILITY.md"
#: The tests the report must cover: the whole fault suite and the security tests.
COVERED = sorted((ROOT / "tests" / "reliability").glob("test_*.py")) + sorted(
    (ROOT / "tests" / "streams").glob("test_security*.py")
)
_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
_SELF = {"test_every_row_names_existing_tests", "test_every_reliability_test_is_in_the_report"}


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def _table_rows() -> list[str]:
    return [line for line in REPORT.read_text().splitlines() if line.startswith("| ")]


def _references() -> list[tuple[str, str, str]]:
    """(row, file, test) for every test a table row names."""
    found = []
    for row in _table_rows():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if set(cells[0]) <= {"-", " ", ":"} or cells[0].lower() in {"fault", "bad input", "threat"}:
            continue  # header or separator
        references = _REFERENCE.findall(cells[-1])
        assert references, f"RELIABILITY.md row names no test: {row}"
        found += [(row, file, test) for file, test in references]
    return found


def test_every_row_names_existing_tests() -> None:
    references = _references()
    assert len(references) >= 20
    for row, file, test in references:
        path = ROOT / file
        assert path.is_file(), f"RELIABILITY.md names a missing file {file} in: {row}"
        assert test in _test_functions(path), f"RELIABILITY.md names a missing test {file}::{test}"


def test_every_reliability_test_is_in_the_report() -> None:
    listed = {(file, test) for _, file, test in _references()}
    for path in COVERED:
        file = path.relative_to(ROOT).as_posix()
        for test in sorted(_test_functions(path) - _SELF):
            assert (file, test) in listed, f"{file}::{test} is not in RELIABILITY.md: add a row"


def test_readme_links_the_report() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- section:reliability -->", 1)[1]
    assert "(RELIABILITY.md)" in section.split("\n## ", 2)[1]
