"""Configuration of the alert sinks: MQTT and webhooks, as plain data (no I/O in validators).

Secrets (`password`, `secret`) are `SecretStr`, so they never appear in a ``repr``, a log line
or an error message. The models are frozen and ``extra="forbid"``, like every Vigil section,
so a typo in a key is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from vigil.types import EventState

#: One MQTT topic level or Home Assistant id part: no separators, wildcards or spaces.
_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_.-]+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_topic_level(value: str, what: str) -> str:
    """Return ``value`` if it is usable as one MQTT topic level; raise ValueError otherwise.

    Letters, digits, ``_``, ``.`` and ``-`` only: ``/`` would add levels, ``+`` and ``#`` are
    wildcards that subscribers could not match literally, and Home Assistant ids allow no more.
    """
    if not _TOPIC_LEVEL.match(value):
        raise ValueError(
            f"{what} {value!r} cannot be used in an MQTT topic: use letters, digits, "
            "'_', '.' or '-' only"
        )
    return value


class MqttTlsConfig(_Model):
    """TLS towards the broker. Without ``ca_file`` the system's trusted CAs are used."""

    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's cert.")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    insecure: bool = Field(
        False, description="Skip host name verification (test brokers only; never in production)."
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be given together")
        return self


class MqttConfig(_Model):
    """Where and how Vigil publishes to an MQTT broker (see `vigil.alerts.mqtt` for topics)."""

    host: str = Field("localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual for TLS).")
    client_id: str | None = Field(
        None,
        min_length=1,
        description="MQTT client id; must be unique per broker connection (a broker drops the "
        "older of two connections with one id). Unset: `<node_id>-<host>-<pid>-<random>`, new "
        "for each connection's process, so a cluster's head and replicas never drop each "
        "other; a set id is used as given.",
    )
    username: str | None = Field(None, description="User name, when the broker asks for one.")
    password: SecretStr | None = Field(None, description="Password for `username`.")
    tls: MqttTlsConfig | None = Field(None, description="Encrypt the connection with TLS.")
    topic_prefix: str = Field("vigil", description="First topic level of everything Vigil sends.")
    qos: Literal[0, 1, 2] = Field(1, description="QoS of events and states (1: at least once).")
    keepalive_s: int = Field(
        30,
        ge=5,
        le=3600,
        description="Keep-alive; the broker sends the Last Will ~1.5x this after a silent death.",
    )
    queue_size: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Event messages kept while the broker is unreachable (two per event: the "
        "global and the camera topic); the oldest are dropped beyond.",
    )
    reconnect_min_s: int = Field(1, ge=1, le=3600, description="First reconnection delay.")
    reconnect_max_s: int = Field(60, ge=1, le=3600, description="Longest reconnection delay.")
    discovery: bool = Field(True, description="Publish Home Assistant MQTT discovery configs.")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix.")
    node_id: str = Field(
        "vigil", description="Node id in discovery topics and unique ids (one per Vigil install)."
    )

    @field_validator("topic_prefix", "discovery_prefix", "node_id", "client_id")
    @classmethod
    def _one_level(cls, value: str | None) -> str | None:
        return None if value is None else check_topic_level(value, "value")

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password is not None and self.username is None:
            raise ValueError("mqtt.password is set but mqtt.username is not; set both")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("mqtt.reconnect_max_s must be >= mqtt.reconnect_min_s")
        return self


class WebhookConfig(_Model):
    """Signed JSON POSTs of events to HTTP endpoints (see `vigil.alerts.webhook`)."""

    urls: list[str] = Field(min_length=1, description="Endpoints that receive every event.")
    secret: SecretStr = Field(
        description="Shared HMAC-SHA256 key (at least 16 characters); receivers verify with it."
    )
    states: list[EventState] = Field(
        default_factory=lambda: [EventState.END],
        description="Lifecycle changes to send; END only by default (one finished record).",
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Per-request timeout.")
    max_attempts: int = Field(6, ge=1, le=100, description="Attempts before the dead letter.")
    backoff_initial_s: float = Field(1.0, gt=0, le=3600, description="Delay before retry 1.")
    backoff_factor: float = Field(2.0, ge=1, le=10, description="Growth of the retry delay.")
    backoff_max_s: float = Field(300.0, gt=0, le=86400, description="Longest retry delay.")
    jitter: float = Field(0.2, ge=0, lt=1, description="Random spread of retry delays (±).")
    retry_after_max_s: float = Field(
        600.0, ge=0, le=86400, description="Cap on a server's Retry-After, in seconds."
    )
    queue_size: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Deliveries waiting or retrying; the oldest waiting one is dropped beyond.",
    )
    dead_letter_path: Path | None = Field(
        None, description="JSON Lines file of deliveries that failed for good (None: log only)."
    )
    close_timeout_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="How long close() keeps delivering; what is left goes to the dead letters.",
    )

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"webhook url {url!r} is not an http:// or https:// URL with a host"
                )
        return urls

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 16:
            raise ValueError(
                "webhook secret is shorter than 16 characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return secret

    @model_validator(mode="after")
    def _consistent(self) -> WebhookConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("webhook backoff_max_s must be >= backoff_initial_s")
        return self
