"""`hedged report`: one self-contained HTML file (images inlined) plus the PNGs, drawn with matplotlib (Agg).

matplotlib is an optional extra (`pip install 'hedged[report]'`); the keeper never needs it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hedged.simulate.metrics import ROWS, Series
from hedged.simulate.output import RunData

INSTALL_HINT = "hedged report needs matplotlib: pip install 'hedged[report]' (or: pip install matplotlib)"
MAX_POINTS = 4000
COLOURS = {"config": "#1f77b4", "live": "#1f77b4", "naive": "#d62728", "unhedged": "#7f7f7f"}


class ReportError(RuntimeError):
    """The report cannot be drawn (matplotlib missing); one line saying how to fix it."""


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ReportError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thin(xs: Sequence[float]) -> list[float]:
    k = max(1, len(xs) // MAX_POINTS)
    return list(xs[::k])


def _unit(s: Series) -> tuple[str, float]:
    """Days for long runs, hours or minutes for short ones (a demo's audit store spans minutes)."""
    span = s.t[-1] if s.t else 0.0
    return ("minute", 60.0) if span < 2 * 3600 else ("hour", 3600.0) if span < 3 * 86400 else ("day", 86400.0)


def _days(s: Series, unit: tuple[str, float]) -> list[float]:
    return [t / unit[1] for t in _thin(s.t)]


@dataclass(frozen=True)
class Chart:
    """One PNG of the report: its file, title, axis label, caption, height, and what it draws on its axes."""

    name: str
    title: str
    ylabel: str
    caption: str
    draw: Callable[[Any, RunData, tuple[str, float]], None]
    height: float = 4.0
    legend: bool = True


def _traded(data: RunData) -> dict[str, Series]:
    return {rule: s for rule, s in data.series.items() if rule != "unhedged"}


def _main(data: RunData) -> Series:
    series = data.series
    return series.get("config") or series.get("live") or next(iter(series.values()))


def _value(ax: Any, data: RunData, unit: tuple[str, float]) -> None:
    for rule, s in data.series.items():
        ax.plot(_days(s, unit), _thin([v - d for v, d in zip(s.value_usd, s.deposits_usd, strict=True)]),
                label=rule, color=COLOURS.get(rule), lw=1.2)


def _hedge(ax: Any, data: RunData, unit: tuple[str, float]) -> None:
    main = _main(data)
    d, tgt, band = _days(main, unit), _thin(main.target_usd), _thin(main.band_usd)
    ax.fill_between(d, [t - b for t, b in zip(tgt, band, strict=True)], [t + b for t, b in zip(tgt, band, strict=True)],
                    color="#2ca02c", alpha=0.2, label="target ± band")
    ax.plot(d, tgt, color="#2ca02c", lw=1, label="target")
    ax.plot(d, _thin(main.hedge_usd), color=COLOURS["config"], lw=1.2, label="hedge held")


def _funding_fees(ax: Any, data: RunData, unit: tuple[str, float]) -> None:
    for rule, s in _traded(data).items():
        ax.plot(_days(s, unit), _thin(s.funding_usd), color=COLOURS.get(rule), lw=1.2,
                label=f"{rule}: funding received")
        ax.plot(_days(s, unit), _thin([-f for f in s.fees_usd]), color=COLOURS.get(rule), lw=1.2, ls="--",
                label=f"{rule}: fees paid (negative)")
    ax.axhline(0, color="black", lw=0.5)


def _drift(ax: Any, data: RunData, unit: tuple[str, float]) -> None:
    for rule, s in _traded(data).items():
        ax.plot(_days(s, unit), _thin([x * 100 for x in s.drift]), color=COLOURS.get(rule), lw=1, label=rule)


def _symbol(data: RunData) -> str:
    return str(data.summary.get("path", {}).get("symbol") or "")


def _orders(ax: Any, data: RunData, unit: tuple[str, float]) -> None:
    main, symbol = _main(data), _symbol(data)
    ax.plot(_days(main, unit), _thin(main.price), color="black", lw=0.8, label=f"{symbol} mark")
    markers = {"buy": "^", "sell": "v"}
    for rule, all_orders in data.orders.items():
        orders = [o for o in all_orders if not symbol or o.symbol == symbol]
        if rule != "unhedged" and not orders:
            ax.plot([], [], " ", label=f"{rule}: no orders")
        for side in ("buy", "sell"):
            pts = [(o.t / unit[1], o.price) for o in orders if o.side == side]
            if pts:
                ax.scatter(*zip(*pts, strict=True), marker=markers[side], s=18, color=COLOURS.get(rule),
                           label=f"{rule} {side} ({len(pts)})", zorder=3)


def _funding_rate(ax: Any, data: RunData, unit: tuple[str, float]) -> None:
    rates = _thin([r * 100 for r in _main(data).funding_rate])
    ax.plot(_days(_main(data), unit), rates, color="#9467bd", lw=1.2)
    if rates:  # from zero: the sign (who pays) shows, and a constant rate is not drawn as an offset axis
        low, high = min(0.0, *rates), max(0.0, *rates)
        pad = (high - low) * 0.1 or 0.001
        ax.set_ylim(low - (pad if low < 0 else 0), high + pad)
        ax.axhline(0, color="black", lw=0.5)


CHARTS = (
    Chart("value.png", "Portfolio value (net of deposits): hedged vs unhedged", "USD",
          "Portfolio USD value of each rule on the same path (deposits taken out).", _value),
    Chart("hedge.png", "Hedge vs target, with the no-trade band", "USD (short negative)",
          "The config's hedge in USD against its target and band.", _hedge),
    Chart("funding_fees.png", "Funding and fees", "USD, cumulative",
          "Cumulative funding received (solid) and fees paid (dashed, negative).", _funding_fees),
    Chart("drift.png", "Drift from target", "|drift| / |target|, %",
          "|drift| as a share of the target, per rule (drift measured by the same planner).", _drift),
    Chart("orders.png", "Orders on the price of {symbol}", "price, USD",
          "Every order placed on the first hedge's instrument, at its limit price, on its mark.", _orders),
    Chart("funding_rate.png", "Funding rate", "% per interval",
          "The funding rate per funding interval (positive: shorts receive).", _funding_rate, height=3.0,
          legend=False),
)


def render(data: RunData, out: Path, title: str = "hedged simulate") -> list[Path]:
    """Write the PNGs and report.html into `out`; returns the files written (HTML last)."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    unit = _unit(_main(data))
    captions = {"value.png": str(data.summary.get("value_caption") or "")}  # a source may say more
    pngs: list[tuple[Path, str]] = []
    for chart in CHARTS:
        fig, ax = plt.subplots(figsize=(10, chart.height))
        chart.draw(ax, data, unit)
        ax.set(xlabel=unit[0], ylabel=chart.ylabel,
               title=chart.title.format(symbol=_symbol(data) or "the instrument"))
        if chart.legend:
            ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / chart.name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        pngs.append((path, captions.get(chart.name) or chart.caption))
    page = out / "report.html"
    page.write_text(_html(title, data, pngs))
    return [p for p, _ in pngs] + [page]


def _html(title: str, data: RunData, pngs: list[tuple[Path, str]]) -> str:
    scenarios = data.summary.get("scenarios", [])
    head = "".join(f"<th>{html.escape(s['rule'])}</th>" for s in scenarios)
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>" + "".join(
            f"<td>{fmt.format(s[key] * scale) if isinstance(s.get(key), int | float) else '-'}</td>"
            for s in scenarios) + "</tr>"
        for label, key, fmt, scale in ROWS)
    note = html.escape(str(data.summary.get("note", "")))
    path = html.escape(", ".join(f"{k}={v}" for k, v in data.summary.get("path", {}).items()))
    imgs = "".join(
        f'<figure><img alt="{html.escape(p.name)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(c)}</figcaption></figure>'
        for p, c in pngs)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1040px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child{{text-align:left}}
img{{max-width:100%}}figcaption{{color:#555}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{path}</p><p><b>{note}</b></p>
<table><tr><th></th>{head}</tr>{rows}</table>{imgs}</body></html>
"""
