"""Budget alerts: when a tenant's spend of a day crosses 50%, 80% and 100% of its budget.

Budgets are business data: ``streams/data/tenant_budgets.csv`` (``Settings.budgets``) with
columns ``tenant_id,effective_from,daily_budget,currency``; the row in force on a day is the
latest ``effective_from`` on or before it, and ``tenant_id`` ``*`` is the default for every
tenant without its own row. The day is the UTC date of the event time.

The running spend per tenant and day (``budget/<day>/<tenant>``) and the thresholds already
fired (``alert/<day>/<tenant>/<pct>``) live in the partition's state, committed with the
offset, so each threshold fires once per tenant and day, across restarts too. The alert's
Kafka key ``<tenant>:<day>:<pct>`` is its identity.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from streams.agents.overlay import Overlay

THRESHOLDS_PCT = (50, 80, 100)
BUDGET = b"budget/"
FIRED = b"alert/"
DEFAULT_TENANT = "*"


class BudgetFileError(ValueError):
    """The budgets file cannot be read; the message names the line and what to fix."""


@dataclass(frozen=True)
class Budget:
    tenant_id: str
    effective_from: date
    daily_budget: Decimal
    currency: str


class Budgets:
    """Tenant daily budgets with effective dates, loaded from the CSV file."""

    def __init__(self, rows: list[Budget]) -> None:
        self._by_tenant: dict[str, list[Budget]] = {}
        for row in sorted(rows, key=lambda r: r.effective_from):
            self._by_tenant.setdefault(row.tenant_id, []).append(row)

    @classmethod
    def load(cls, path: Path) -> Budgets:
        rows = []
        with path.open(newline="") as handle:
            for line, record in enumerate(csv.DictReader(handle), start=2):
                try:
                    amount = Decimal(record["daily_budget"])
                    budget = Budget(
                        tenant_id=record["tenant_id"].strip(),
                        effective_from=date.fromisoformat(record["effective_from"].strip()),
                        daily_budget=amount,
                        currency=record["currency"].strip().upper(),
                    )
                except (KeyError, ValueError, InvalidOperation, AttributeError) as error:
                    raise BudgetFileError(
                        f"{path}:{line}: expected tenant_id,effective_from (YYYY-MM-DD),"
                        f"daily_budget (a number),currency; got {record} ({error})"
                    ) from None
                if amount <= 0:
                    raise BudgetFileError(f"{path}:{line}: daily_budget must be positive")
                rows.append(budget)
        return cls(rows)

    def for_day(self, tenant_id: str, day: date) -> Budget | None:
        """The budget in force for the tenant on that day (its own, else the default)."""
        for candidate in (tenant_id, DEFAULT_TENANT):
            in_force = [b for b in self._by_tenant.get(candidate, []) if b.effective_from <= day]
            if in_force:
                return in_force[-1]
        return None


def _spend_key(day: date, tenant_id: str) -> bytes:
    return BUDGET + f"{day.isoformat()}/{tenant_id}".encode()


def add_spend(
    state: Overlay,
    budgets: Budgets,
    *,
    tenant_id: str,
    occurred_at: datetime,
    amount: Decimal,
    currency: str,
    now: datetime,
) -> list[tuple[bytes, bytes]]:
    """Add rated spend to the tenant's day; returns the alerts (key, value) it fires."""
    day = occurred_at.date()
    key = _spend_key(day, tenant_id)
    spend: dict[str, str] = state.get(key) or {}
    total = Decimal(spend.get(currency, "0")) + amount
    spend[currency] = str(total)
    state.put(key, spend)
    budget = budgets.for_day(tenant_id, day)
    # Budgets are compared in their own currency only: the live side does no FX.
    if budget is None or budget.currency != currency:
        return []
    fired = []
    for pct in THRESHOLDS_PCT:
        if total * 100 < budget.daily_budget * pct:
            break
        fired_key = FIRED + f"{day.isoformat()}/{tenant_id}/{pct}".encode()
        if state.get(fired_key) is not None:
            continue
        alert_id = f"{tenant_id}:{day.isoformat()}:{pct}"
        state.put(fired_key, alert_id)
        alert: dict[str, Any] = {
            "schema": "token-usage.alert.v1",
            "alert_id": alert_id,
            "kind": "daily_budget_threshold",
            "tenant_id": tenant_id,
            "day": day.isoformat(),
            "threshold_pct": pct,
            "daily_budget": str(budget.daily_budget),
            "spend": str(total),
            "currency": currency,
            "crossed_at": occurred_at.isoformat(),
            "alerted_at": now.isoformat(),
        }
        fired.append((alert_id.encode(), orjson.dumps(alert)))
    return fired


def day_spend(state: Any, tenant_id: str, day: date) -> dict[str, str]:
    """The tenant's rated spend on that day, per currency."""
    value: dict[str, str] = state.get(_spend_key(day, tenant_id)) or {}
    return value


def expire(state: Overlay, watermark: datetime, keep_days: int) -> None:
    """Forget day totals and fired alerts older than ``keep_days`` (by event time)."""
    cutoff = (watermark.date() - timedelta(days=keep_days)).isoformat()
    for prefix in (BUDGET, FIRED):
        state.expire(prefix, cutoff.encode())
