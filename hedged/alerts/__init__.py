"""Risk monitors and alerts: pure metrics and conditions (`monitors`), their de-duplication (`dedupe`)."""

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
