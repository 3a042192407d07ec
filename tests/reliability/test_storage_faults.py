"""The warehouse's disk fills up, or its file becomes read-only, while events keep coming.

The warehouse lives on a small filesystem of its own: a tmpfs mounted by the test when it
runs as root (a real ``ENOSPC``, a real read-only remount ``EROFS``); otherwise the loader's
file size is capped with ``RLIMIT_FSIZE`` (``EFBIG``) and the file made read-only with chmod.
Either way the CLI must stop with a one-line error that says what is wrong (no traceback),
the warehouse must keep exactly what it had (no half batch, no offset ahead of its rows), and
once the fault is gone, landing resumes and the warehouse equals the oracle.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from streams.app_runner import settings_env
from streams.settings import Settings
from streams.simulate import ground_truth
from tests.reliability.conftest import expected_dead_letters, record_stream
from tests.streams.worker_fixtures import produce
from warehouse.loader import land

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``folder`` when root, else the folder as it is."""
    folder.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT or shutil.which("mount") is None:
        yield folder
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_up(folder: Path) -> Path:
    """Write a filler file until the filesystem is full; return it (delete it to free space)."""
    filler = folder / "filler"
    with filler.open("wb") as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * (1 << 16))
            file.flush()
    return filler


def land_cli(
    settings: Settings, topic: str, *, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``tokenhub land`` in a child process, as an operator would run it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenhub.cli",
            "land",
            "--quiet",
            "--topic",
            topic,
            "--batch-size",
            "500",
        ],
        env={**os.environ, **settings_env(settings)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=preexec_fn,
    )


def warehouse_state(settings: Settings, topic: str) -> tuple[Any, ...]:
    """Everything landing writes, summarised: rows, tokens, quarantine, offsets."""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        events = con.execute(
            "select count(*), count(distinct event_id), coalesce(sum(input_tokens + output_tokens), 0) "
            "from raw.token_usage_events"
        ).fetchone()
        quarantine = con.execute("select count(*) from raw.quarantine").fetchone()
        redeliveries = con.execute("select count(*) from raw.redeliveries").fetchone()
        offsets = con.execute(
            "select coalesce(sum(next_offset), 0) from raw.kafka_offsets where topic = ?", [topic]
        ).fetchone()
    return (events, quarantine, redeliveries, offsets)


def assert_equals_oracle(settings: Settings, stream: Path, messages: int, topic: str) -> None:
    truth = ground_truth(stream)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        ids = [
            row[0] for row in con.execute("select event_id from raw.token_usage_events").fetchall()
        ]
        tokens = con.execute(
            "select sum(input_tokens + output_tokens) from raw.token_usage_events"
        ).fetchone()
        quarantined = Counter(
            (bytes(payload), reason)
            for payload, reason in con.execute(
                "select payload, reason from raw.quarantine"
            ).fetchall()
        )
        offsets = con.execute(
            "select sum(next_offset) from raw.kafka_offsets where topic = ?", [topic]
        ).fetchone()
    assert len(ids) == len(set(ids)) and set(ids) == set(truth["event_id"].to_list())
    assert tokens == ((truth["input_tokens"] + truth["output_tokens"]).sum(),)
    assert quarantined == expected_dead_letters(stream)
    assert offsets == (messages,)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """The CLI failed with one line naming the problem (checked last: the data comes first)."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    assert any(word in lines[0] for word in words), lines[0]


def _cap_file_size() -> None:
    # Python ignores SIGXFSZ, so a write past the cap fails with EFBIG instead of killing.
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_disk_full_is_a_clear_error_and_leaves_no_corrupt_state(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    stream = tmp_path / "stream.jsonl"
    messages = record_stream(stream, seed=71, events=6000)
    half = len(messages) // 2
    with small_filesystem(tmp_path / "disk") as disk:
        settings = tmp_home.model_copy(
            update={"home": disk / "home", "live_source_topic": unique_topic}
        )
        produce(settings, messages[:half])
        land(settings, topic=unique_topic)
        before = warehouse_state(settings, unique_topic)

        produce(settings, messages[half:])
        if IS_ROOT:
            filler = fill_up(disk)
            full = land_cli(settings, unique_topic)
        else:
            filler = None
            full = land_cli(settings, unique_topic, preexec_fn=_cap_file_size)
        assert full.returncode != 0, full.stdout
        assert warehouse_state(settings, unique_topic) == before  # nothing half-written

        if filler is not None:
            filler.unlink()  # the operator frees space
        resumed = land_cli(settings, unique_topic)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert_equals_oracle(settings, stream, len(messages), unique_topic)
    assert_one_line_error(full, "No space left", "disk", "File too large", "space")


def _make_read_only(disk: Path, settings: Settings) -> Callable[[], None]:
    """Make the warehouse read-only; returns the undo."""
    if IS_ROOT:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        return lambda: subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    folder = settings.warehouse_path.parent
    for path in (*folder.iterdir(), folder):
        path.chmod(0o444 if path.is_file() else 0o555)

    def undo() -> None:
        for path in (folder, *folder.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)

    return undo


def test_read_only_warehouse_is_a_clear_error_and_leaves_no_corrupt_state(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    stream = tmp_path / "stream.jsonl"
    messages = record_stream(stream, seed=72, events=3000)
    half = len(messages) // 2
    with small_filesystem(tmp_path / "disk") as disk:
        settings = tmp_home.model_copy(
            update={"home": disk / "home", "live_source_topic": unique_topic}
        )
        produce(settings, messages[:half])
        land(settings, topic=unique_topic)
        before = warehouse_state(settings, unique_topic)

        produce(settings, messages[half:])
        undo = _make_read_only(disk, settings)
        try:
            refused = land_cli(settings, unique_topic)
        finally:
            undo()
        assert refused.returncode != 0, refused.stdout
        assert warehouse_state(settings, unique_topic) == before

        resumed = land_cli(settings, unique_topic)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert_equals_oracle(settings, stream, len(messages), unique_topic)
    assert_one_line_error(refused, "read-only", "Read-only", "permission", "Permission")
