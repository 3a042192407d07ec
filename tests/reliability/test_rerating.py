"""A price book change in the past: re-rated exactly, with an audit trail that never loses a line.

Three days of simulated usage are landed and rated. Then a new price version for one model
and region is added, effective from the middle of those three days (a retroactive price
change), and rating runs again; then again with nothing changed; then the change is
withdrawn. After each run the current rating equals the live rater's over the books in
force, and ``rating.rating_adjustments`` tells, per event, how the amount moved: old plus
adjustment is new, the adjustments sum to the change of the total, earlier lines are never
rewritten, and a withdrawn change adjusts back to the original amounts exactly.
"""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.events import from_dict
from streams.settings import Settings
from streams.simulate import JsonlWriter, generate, ground_truth
from tests.streams.worker_fixtures import produce
from warehouse import db
from warehouse.loader import land
from warehouse.pricing.rating import BatchRater, rate

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

RAISE = Decimal("1.5")
BOOK = "price_book_cn.csv"
PRICE_COLUMNS = ("input_price", "cached_input_price", "output_price", "thinking_output_price")


def _amounts(con: Any) -> dict[str, tuple[Decimal, Decimal, str]]:
    """event_id -> (amount, amount_gross, price_book_version) of the current rating."""
    return {
        event_id: (amount, gross, version)
        for event_id, amount, gross, version in con.execute(
            "select event_id, amount, amount_gross, price_book_version from rating.rated_usage"
        ).fetchall()
    }


def _adjustments(con: Any) -> list[tuple[Any, ...]]:
    return con.execute(
        "select rating_run_id, event_id, old_amount, new_amount, adjustment, "
        "old_price_book_version, new_price_book_version, reason "
        "from rating.rating_adjustments order by rating_run_id, event_id"
    ).fetchall()


def _add_retroactive_version(books: Path, model: str, region: str, effective: datetime) -> str:
    """Append a version of (model, region) effective from ``effective``, every price x1.5."""
    path = books / BOOK
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    current = [r for r in rows if r["model"] == model and r["region"] == region]
    latest = max(r["effective_from"] for r in current)
    label = "cn-reliability-raise"
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        for row in (r for r in current if r["effective_from"] == latest):
            raised = {column: str(Decimal(row[column]) * RAISE) for column in PRICE_COLUMNS}
            writer.writerow(
                {
                    **row,
                    **raised,
                    "book_version": label,
                    "effective_from": effective.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "note": "retroactive raise (reliability test)",
                }
            )
    return label


def _live_gross(settings: Settings, truth_rows: list[dict[str, Any]]) -> dict[str, Decimal | None]:
    rater = BatchRater(settings)
    try:
        batch = [from_dict({k: v for k, v in row.items() if v is not None}) for row in truth_rows]
        return {r.event_id: r.amount_gross for r in rater.rate(batch)}
    finally:
        rater.close()


def test_a_retroactive_price_change_is_re_rated_exactly_and_the_audit_trail_holds(
    tmp_home: Settings, unique_topic: str, tmp_path: Path
) -> None:
    books = tmp_path / "books"
    shutil.copytree(Settings().books, books)
    settings = tmp_home.model_copy(update={"books_dir": books, "live_source_topic": unique_topic})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    path = tmp_path / "stream.jsonl"
    messages = list(generate(seed=81, events=1500, tenants=10, days=3, now=now))
    with JsonlWriter(path) as writer:
        for message in messages:
            writer.write(message)
    produce(settings, [(m.key, m.value) for m in messages])
    land(settings, topic=unique_topic)
    truth = ground_truth(path)
    rows = truth.drop("sent_index").to_dicts()
    # The busiest (model, region) priced in the CNY book gets the retroactive change.
    cn_pairs = {(r["model"], r["region"]) for r in csv.DictReader((books / BOOK).open())}
    busiest = truth.group_by("model", "region").len().sort("len", descending=True)
    model, region = next((m, r) for m, r, _ in busiest.iter_rows() if (m, r) in cn_pairs)
    effective = now - timedelta(days=1, hours=12)
    affected = {
        r["event_id"]
        for r in rows
        if (r["model"], r["region"]) == (model, region) and r["occurred_at"] >= effective
    }
    assert 20 < len(affected) < len(rows)

    con = db.connect(settings.warehouse_path)
    try:
        rate(con, settings)
        original = _amounts(con)
        assert len(original) == len(rows)
        assert _adjustments(con) == []

        label = _add_retroactive_version(books, model, region, effective)
        raised = rate(con, settings)
        current = _amounts(con)
        trail = _adjustments(con)
        live = _live_gross(settings, rows)  # the live rater, over the same (new) books
        assert {e: gross for e, (_, gross, _) in current.items()} == live
        assert {e for e, (_, _, v) in current.items() if v == label} == affected
        unaffected = set(original) - affected
        assert {e: original[e] for e in unaffected} == {e: current[e] for e in unaffected}
        moved = {e for e in affected if current[e][0] != original[e][0]}
        assert moved and raised.adjusted == len(trail) == len(moved)
        for run, event_id, old, new, adjustment, old_version, new_version, reason in trail:
            assert run == raised.run_id and event_id in moved
            assert (old, new) == (original[event_id][0], current[event_id][0])
            assert old + adjustment == new and adjustment > 0  # a raise only raises
            assert (old_version, new_version) == (original[event_id][2], label)
            assert reason  # says why (the changed book)
        total = sum((a for a, _, _ in current.values()), Decimal(0))
        before = sum((a for a, _, _ in original.values()), Decimal(0))
        assert sum((row[4] for row in trail), Decimal(0)) == total - before  # to the last unit

        unchanged = rate(con, settings)  # nothing changed: nothing re-rated, trail untouched
        assert unchanged.adjusted == 0 and _adjustments(con) == trail

        (books / BOOK).write_text(
            "".join(
                line
                for line in (books / BOOK).read_text().splitlines(keepends=True)
                if label not in line
            )
        )
        withdrawn = rate(con, settings)
        assert _amounts(con) == original  # back to the original, exactly
        full_trail = _adjustments(con)
        assert full_trail[: len(trail)] == trail  # earlier lines are never rewritten
        back = full_trail[len(trail) :]
        assert len(back) == withdrawn.adjusted == len(moved)
        net: dict[str, Decimal] = {}
        for row in full_trail:
            net[row[1]] = net.get(row[1], Decimal(0)) + row[4]
        assert set(net.values()) == {Decimal(0)}  # raise and withdrawal cancel per event
    finally:
        con.close()
