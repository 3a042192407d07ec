"""Bad input to the CLI: a one-line error that says what to do, exit code 2, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import get_settings
from tokenhub.cli import main

TOKENHUB = Path(sys.executable).with_name("tokenhub")


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["nonsense"],
        ["simulate", "--events", "many"],
        ["simulate", "--events", "-5"],
        ["simulate", "--rate", "fast"],
        ["simulate", "--tenants", "0"],
        ["simulate", "--duplicates", "1.5"],
        ["simulate", "--events", "10", "--duration", "3"],
        ["simulate", "--frobnicate"],
        ["replay"],
        ["kafka", "sideways"],
    ],
)
def test_nonsense_arguments_give_one_line_and_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line = one_line_error(capsys)
    assert "--help" in line  # says where to look


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["simulate", "--no-kafka"], "--no-kafka needs --out"),
        (["simulate", "--days", "2", "--duration", "5"], "use --events N"),
        (["simulate", "--duplicates", "0.6", "--malformed", "0.6"], "must not exceed 1"),
        (["replay", "/nonexistent/stream.jsonl"], "no such file"),
    ],
)
def test_inconsistent_options_give_one_line_and_exit_2(argv, says: str, capsys) -> None:
    assert main(argv) == 2
    assert says in one_line_error(capsys)


def test_replay_of_a_file_that_is_not_a_stream(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "valid", "key": null, "value": "{}"}\nhello\n')
    assert main(["replay", str(bad)]) == 2
    assert "line 2" in one_line_error(capsys)


def test_unreachable_broker_is_one_line_exit_2(fresh_settings, capsys) -> None:
    fresh_settings.setenv("TOKENHUB_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert main(["simulate", "--events", "10", "--quiet"]) == 2
    assert time.monotonic() - started < 15
    line = one_line_error(capsys)
    assert "not reachable" in line and "tokenhub kafka up" in line


def test_missing_maven_says_how_to_install_it(fresh_settings, tmp_path: Path, capsys) -> None:
    fresh_settings.setenv("PATH", str(tmp_path))  # no mvn, no java
    fresh_settings.setenv("TOKENHUB_HOME", str(tmp_path / "home"))
    fresh_settings.setenv("TOKENHUB_CACHE_DIR", str(tmp_path / "cache"))
    fresh_settings.setenv("TOKENHUB_KAFKA_PORT", str(free_port()))
    fresh_settings.setenv("TOKENHUB_KAFKA_CONTROLLER_PORT", str(free_port()))
    assert main(["kafka", "up"]) == 2
    line = one_line_error(capsys)
    assert "Maven ('mvn') is not on PATH" in line and "apt-get install" in line


def test_real_process_prints_no_traceback() -> None:
    result = subprocess.run(
        [str(TOKENHUB), "simulate", "--events", "ten"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tokenhub simulate: error: argument --events: 'ten' is not a whole number "
        "(see 'tokenhub simulate --help')"
    ]
