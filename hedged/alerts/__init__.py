"""Risk monitors and alerts: pure metrics and conditions (`monitors`), their de-duplication (`dedupe`).

The names below load on first use (PEP 562), so importing a submodule such as `hedged.alerts.cli` does
not import the monitors (and pydantic with them): `hedged --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hedged.alerts.monitors import (
        Alert,
        InstrumentRisk,
        Level,
        MonitorState,
        Observation,
        VenueRisk,
        evaluate,
        event_alert,
        instrument_risks,
        venue_risks,
    )

__all__ = [
    "Alert",
    "InstrumentRisk",
    "Level",
    "MonitorState",
    "Observation",
    "VenueRisk",
    "evaluate",
    "event_alert",
    "instrument_risks",
    "venue_risks",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hedged.alerts import monitors

        return getattr(monitors, name)
    raise AttributeError(f"module 'hedged.alerts' has no attribute {name!r}")
