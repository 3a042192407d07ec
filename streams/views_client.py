"""A few live figures from a worker's HTTP views, for the demo and for humans."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import requests

from streams.settings import Settings


def _get(base: str, path: str, **params: Any) -> Any:
    response = requests.get(f"{base}/{path}/", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def _base(settings: Settings, web_port: int | None) -> str:
    return f"http://{settings.web_host}:{web_port or settings.web_port}/tokenhub"


def health(settings: Settings, *, web_port: int | None = None) -> dict[str, Any]:
    """The health view: status, consumer lag per partition, counters (the cheapest view)."""
    result: dict[str, Any] = _get(_base(settings, web_port), "health")
    return result


def live_summary(settings: Settings, *, web_port: int | None = None) -> dict[str, Any]:
    """Health, top tenants today, agents vs humans and dead letters, from the views."""
    base = _base(settings, web_port)
    health = _get(base, "health")
    return {
        "total_lag": health["total_lag"],
        "events_counted": health["stats"].get("counted", 0),
        "duplicates": health["stats"].get("duplicates", 0),
        "top_tenants": _get(base, "top-tenants", n=3)["top"],
        "agent_human_multiplier": _get(base, "agents-vs-humans", window="1h")["overall_multiplier"],
        "dead_letters": _get(base, "dead-letters"),
    }


def _fen(amount: str) -> str:
    """An exact decimal string rounded to two places, for display only."""
    return f"{Decimal(amount).quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines of text."""
    top = ", ".join(
        f"{row['tenant_id']} "
        + " ".join(f"{_fen(amount)} {currency}" for currency, amount in row["spend"].items())
        for row in summary["top_tenants"]
    )
    return "\n".join(
        [
            f"live: {summary['events_counted']:,} events counted, "
            f"{summary['duplicates']:,} duplicates dropped, lag {summary['total_lag']:,}",
            f"live: top tenants today: {top or '(none yet)'}",
            f"live: agent/human tokens per request: {summary['agent_human_multiplier']}",
            f"live: dead letters: {summary['dead_letters']['total']} "
            f"{summary['dead_letters']['by_reason']}",
        ]
    )
