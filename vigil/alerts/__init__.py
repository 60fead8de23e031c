"""Alerts: events leave Vigil through MQTT (with Home Assistant discovery) and signed webhooks.

Each sink is an `vigil.events.sinks.EventSink`; `FanoutSink` feeds several and keeps one
failing sink from stopping the others. No sink here ever carries pixels.
"""

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
