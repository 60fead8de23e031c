"""The HTTP server's logging, without the secrets some URLs carry.

Two query parameters are bearer secrets: ``token`` (an API token, for
``/api/ws/events?token=`` since browsers cannot set headers on a WebSocket) and ``grant`` (an
unredacted live-view grant, ``/api/cameras/{name}/live.mjpeg?grant=``). uvicorn logs every
request line and every WebSocket handshake with its query string, so whoever reads the log
could replay them; a grant is also the last part of the path that ends it
(``DELETE /api/cameras/{name}/live/unredacted/{grant}``). ``RedactQuerySecrets`` rewrites
such values to ``[redacted]`` in each record; ``server_log_config`` is uvicorn's own logging
configuration with that filter on uvicorn's loggers (so a record is redacted before any
handler sees it, one added later included) and on its two handlers.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

#: Query parameters whose values are secrets.
SECRET_QUERY_KEYS = ("token", "grant")
REDACTED = "[redacted]"

#: One ``key=value`` of a query string as it appears in a log line (up to a space or quote).
_PARAM = re.compile(r"([?&;])([^=&;#\s\"']*)=([^&;#\s\"']*)")


#: The grant in the path of ``DELETE .../live/unredacted/{grant}``.
_GRANT_PATH = re.compile(r"(/live/unredacted/)[^/?#\s\"']+")


def _redact_param(match: re.Match[str]) -> str:
    sep, key, value = match.groups()
    # The server decodes keys (``%74oken`` is ``token``): compare what the application sees.
    if unquote_plus(key).lower() in SECRET_QUERY_KEYS and value:
        value = REDACTED
    return f"{sep}{key}={value}"


def redact_query_secrets(text: str) -> str:
    """``text`` with the value of each secret query parameter (and a grant in a path)
    replaced by ``[redacted]``."""
    text = _GRANT_PATH.sub(lambda m: m.group(1) + REDACTED, text)
    return _PARAM.sub(_redact_param, text) if "=" in text else text


def _redact(value: object) -> object:
    return redact_query_secrets(value) if isinstance(value, str) else value


class RedactQuerySecrets(logging.Filter):
    """Redact secret query values in a record's message and arguments (keeps the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact(v) for k, v in record.args.items()}
        return True


def server_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration plus ``RedactQuerySecrets`` on its loggers
    and handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["query_secrets"] = {"()": RedactQuerySecrets}
    for part in (*config["handlers"].values(), *config["loggers"].values()):
        part["filters"] = [*part.get("filters", []), "query_secrets"]
    return config
