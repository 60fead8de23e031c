"""Alerts: events leave Vigil through MQTT (with Home Assistant discovery) and signed webhooks.

Each sink is an `vigil.events.sinks.EventSink`; `FanoutSink` feeds several and keeps one
failing sink from stopping the others. No sink here ever carries pixels. Their configuration
models live with the others, in `vigil.config.alerts`.

The MQTT sink is imported from `vigil.alerts.mqtt` by name: it needs paho-mqtt, which comes
with the server extra, and importing this package must not.
"""

from vigil.alerts.fanout import FanoutSink
from vigil.alerts.webhook import (
    ReplayResult,
    WebhookSink,
    WebhookStats,
    replay_dead_letters,
    sign,
    verify_signature,
)

__all__ = [
    "FanoutSink",
    "ReplayResult",
    "WebhookSink",
    "WebhookStats",
    "replay_dead_letters",
    "sign",
    "verify_signature",
]
