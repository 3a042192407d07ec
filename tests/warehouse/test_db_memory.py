"""The DuckDB memory limit: DuckDB's default unless the operator sets one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import get_settings
from warehouse import db


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _limit(path: Path, **kwargs: str) -> str:
    with db.connect(path, **kwargs) as con:
        return str(con.execute("select current_setting('memory_limit')").fetchall()[0][0])


def test_the_environment_sets_the_limit_and_an_argument_overrides_it(
    fresh_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fresh_settings.delenv("TOKENHUB_DUCKDB_MEMORY_LIMIT", raising=False)
    default = _limit(tmp_path / "a.duckdb")
    fresh_settings.setenv("TOKENHUB_DUCKDB_MEMORY_LIMIT", "3GB")
    get_settings.cache_clear()
    assert _limit(tmp_path / "b.duckdb") == "2.7 GiB" != default  # DuckDB shows GiB
    assert _limit(tmp_path / "c.duckdb", memory_limit="1GB") == "953.6 MiB"
