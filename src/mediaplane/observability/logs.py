"""Log set-up for every Python service: text (default) or one JSON object a line.

The services log ids inline as `room=demo peer=ab12 job=7f...` (that keeps the
text format readable). The JSON formatter lifts those `key=value` tokens into
fields of their own, so a log pipeline can filter on `room`, `peer`, `job`,
`instance` ... without parsing messages; `extra={...}` fields of a log call are
kept too. The SFU (Node) writes JSON lines in the same shape (sfu/src/log.js).

Credentials never reach a log: both formatters pass their output through
`redact`, which hides query-string credentials (`?access_token=...`, as uvicorn's access
log prints WebSocket and HLS URLs), `Bearer` values and anything shaped like a
JWT, in messages, extra fields and tracebacks alike.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Literal

# The ids a log line may carry inline; each becomes a field of the JSON object.
ID_FIELDS = ("room", "peer", "job", "instance", "identity", "producer", "consumer", "kind",
             "recording", "egress", "injection", "transcode", "state")  # fmt: skip
_TOKEN = re.compile(r"\b(" + "|".join(ID_FIELDS) + r")=([^\s,;]+)")
# A query parameter or field that carries a credential, a bearer value, a bare JWT.
_SECRET_PARAM = re.compile(
    r"(?i)\b(access_token|token|secret|password|passwd|api_key|stream_key)=([^&\s\"',;]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
REDACTED = "[redacted]"
# LogRecord's own attributes: anything else in __dict__ came from `extra=`.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn: the same message with ANSI colours
}


def ids_in(message: str) -> dict[str, str]:
    """The `key=value` ids of a message (the first value of each key wins)."""
    out: dict[str, str] = {}
    for key, value in _TOKEN.findall(message):
        out.setdefault(key, value.strip("'\""))
    return out


def redact(text: str) -> str:
    """The text with every credential it carries replaced by [redacted]."""
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": message,
        }
        out.update(ids_in(message))
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # Redacted field by field, before encoding: redacting the encoded line would eat
        # the backslash of an escaped quote after a token and break the JSON.
        return json.dumps(_redacted(out), default=lambda o: redact(str(o)), separators=(",", ":"))


def setup_logging(service: str, fmt: Literal["text", "json"] = "text", level: str = "INFO") -> None:
    """Configure the root logger once for a process (replaces earlier handlers)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            TextFormatter(f"%(asctime)s %(levelname)s {service} %(name)s %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
