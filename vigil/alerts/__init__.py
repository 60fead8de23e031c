"""Alerts: events leave Vigil through MQTT (with Home Assistant discovery) and signed webhooks.

Each sink is an `vigil.events.sinks.EventSink`; `FanoutSink` feeds several and keeps one
failing sink from stopping the others. No sink here ever carries pixels.

Names are imported lazily: ``vigil.config.models`` uses ``vigil.alerts.config``, and importing
the configuration must neither pull in paho-mqtt nor run into the events package, which itself
imports the configuration models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.alerts.config import MqttConfig, MqttTlsConfig, WebhookConfig
    from vigil.alerts.fanout import FanoutSink
    from vigil.alerts.mqtt import CameraDiscovery, MqttSink, MqttStats
    from vigil.alerts.webhook import (
        ReplayResult,
        WebhookSink,
        WebhookStats,
        replay_dead_letters,
        sign,
        verify_signature,
    )

_WHERE = {
    "MqttConfig": "config", "MqttTlsConfig": "config", "WebhookConfig": "config",
    "FanoutSink": "fanout",
    "CameraDiscovery": "mqtt", "MqttSink": "mqtt", "MqttStats": "mqtt",
    "ReplayResult": "webhook", "WebhookSink": "webhook", "WebhookStats": "webhook",
    "replay_dead_letters": "webhook", "sign": "webhook", "verify_signature": "webhook",
}  # fmt: skip

__all__ = [
    "CameraDiscovery",
    "FanoutSink",
    "MqttConfig",
    "MqttSink",
    "MqttStats",
    "MqttTlsConfig",
    "ReplayResult",
    "WebhookConfig",
    "WebhookSink",
    "WebhookStats",
    "replay_dead_letters",
    "sign",
    "verify_signature",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vigil.alerts' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vigil.alerts.{module}"), name)
