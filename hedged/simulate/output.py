"""A simulation run on disk: `summary.json`, and per rule `series_<rule>.csv` and `orders_<rule>.csv`.

`hedged simulate --out DIR` writes it; `hedged report --sim DIR` reads it back, so a report can be drawn
(again) without re-running the simulation.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hedged.simulate.metrics import OrderRow, Series
from hedged.simulate.runner import SimResult

SERIES_FIELDS = [f.name for f in fields(Series)]
ORDER_FIELDS = [f.name for f in fields(OrderRow)]


@dataclass
class RunData:
    summary: dict[str, Any]
    series: dict[str, Series]
    orders: dict[str, list[OrderRow]]


def write_run(result: SimResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result.json(), indent=2) + "\n")
    for s in result.scenarios:
        with (out / f"series_{s.rule}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(SERIES_FIELDS)
            cols = [getattr(s.series, name) for name in SERIES_FIELDS]
            for row in zip(*cols, strict=True):
                w.writerow([int(x) if isinstance(x, bool) else repr(x) for x in row])
        with (out / f"orders_{s.rule}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(ORDER_FIELDS)
            for o in s.orders:
                w.writerow([getattr(o, name) for name in ORDER_FIELDS])


class RunDirError(ValueError):
    """Not a simulation folder; one line naming the file."""


def read_run(folder: Path) -> RunData:
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except OSError as exc:
        raise RunDirError(f"{folder / 'summary.json'}: cannot read ({exc.strerror}): "
                          "expected a folder written by `hedged simulate --out DIR`") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{folder / 'summary.json'}: not valid JSON: {exc.msg}") from None
    series: dict[str, Series] = {}
    orders: dict[str, list[OrderRow]] = {}
    for sc in summary.get("scenarios", []):
        rule = sc["rule"]
        try:
            with (folder / f"series_{rule}.csv").open(newline="") as fh:
                s = Series()
                for row in csv.DictReader(fh):
                    for name in SERIES_FIELDS:
                        col = getattr(s, name)
                        col.append(row[name] == "1" if name == "outside" else float(row[name]))
                series[rule] = s
            with (folder / f"orders_{rule}.csv").open(newline="") as fh:
                orders[rule] = [
                    OrderRow(float(r["t"]), r["venue"], r["symbol"], r["side"], float(r["amount"]), float(r["price"]),
                             r["status"], float(r["filled"]), r["reason"])
                    for r in csv.DictReader(fh)
                ]
        except (OSError, KeyError, ValueError) as exc:
            raise RunDirError(f"{folder}: series or orders of rule {rule!r} unreadable: {exc}") from None
    return RunData(summary, series, orders)
