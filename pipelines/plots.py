"""Plots attached to assets: matplotlib PNGs shown in the Dagster UI.

Each plot is embedded in a Markdown metadata value as a base64 data URI (the UI renders it
inline on the asset's page) and also written to ``<home>/plots/<name>.png`` for the README
and for people without the UI. Amounts become floats here only to be drawn: the marts keep
the exact decimals.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to PNG only

import matplotlib.pyplot as plt
from dagster import MetadataValue
from matplotlib.figure import Figure


def attach(figure: Figure, name: str, folder: Path) -> dict[str, Any]:
    """Metadata showing ``figure`` inline, plus the path of its saved PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    png = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(png)
    encoded = base64.b64encode(png).decode()
    return {
        f"plot: {name}": MetadataValue.md(f"![{name}](data:image/png;base64,{encoded})"),
        f"plot file: {name}": MetadataValue.path(str(path)),
    }


def _floats(values: Sequence[Any]) -> list[float]:
    return [float(value or Decimal(0)) for value in values]


def revenue_per_day(days: Sequence[Any], revenue: Sequence[Any], currency: str) -> Figure:
    """Bars of revenue per event date."""
    figure, axes = plt.subplots(figsize=(8, 3.5))
    axes.bar([str(day) for day in days], _floats(revenue), color="#3b7dd8")
    axes.set_title(f"Revenue per day ({currency})")
    axes.set_ylabel(currency)
    axes.tick_params(axis="x", rotation=45, labelsize=8)
    axes.grid(axis="y", alpha=0.3)
    return figure


def margin_waterfall(layers: Sequence[str], margins: Sequence[Any], currency: str) -> Figure:
    """Waterfall: each layer's margin stacked up to the consolidated margin."""
    values = _floats(margins)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    running = 0.0
    for index, value in enumerate(values):
        axes.bar(
            index,
            value,
            bottom=running,
            color="#2e9e5b" if value >= 0 else "#d24b4b",
        )
        axes.text(index, running + value, f"{value:,.2f}", ha="center", va="bottom", fontsize=8)
        running += value
    axes.bar(len(values), running, color="#555555")
    axes.text(len(values), running, f"{running:,.2f}", ha="center", va="bottom", fontsize=8)
    axes.set_xticks(range(len(values) + 1), [*layers, "consolidated"])
    axes.set_title(f"Margin by layer ({currency})")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.grid(axis="y", alpha=0.3)
    return figure


def agent_vs_human(
    days: Sequence[Any],
    agent_tokens: Sequence[Any],
    human_tokens: Sequence[Any],
    multiplier: Sequence[Any],
) -> Figure:
    """Stacked agent and human tokens per day, with the tokens-per-request multiplier."""
    labels = [str(day) for day in days]
    agents, humans = _floats(agent_tokens), _floats(human_tokens)
    figure, axes = plt.subplots(figsize=(8, 3.5))
    axes.bar(labels, humans, label="human tokens", color="#f0a030")
    axes.bar(labels, agents, bottom=humans, label="agent tokens", color="#6a4fc2")
    axes.set_ylabel("tokens")
    axes.tick_params(axis="x", rotation=45, labelsize=8)
    ratio = axes.twinx()
    ratio.plot(labels, [float(m) if m is not None else float("nan") for m in multiplier], "k.-")
    ratio.set_ylabel("agent / human tokens per request")
    axes.legend(loc="upper left", fontsize=8)
    axes.set_title("Agent vs human tokens, and the multiplier")
    return figure


def cost_per_million(
    chip_families: Sequence[str], cost: Sequence[Any], price: Sequence[Any], currency: str
) -> Figure:
    """Cost and price per million tokens, side by side, by chip family."""
    positions = range(len(chip_families))
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.bar([p - 0.2 for p in positions], _floats(cost), width=0.4, label="cost", color="#d27b2b")
    axes.bar(
        [p + 0.2 for p in positions], _floats(price), width=0.4, label="price", color="#3b7dd8"
    )
    axes.set_xticks(list(positions), list(chip_families))
    axes.set_ylabel(f"{currency} per million tokens")
    axes.set_title("Cost vs price per million tokens, by chip family")
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    return figure
