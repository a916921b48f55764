"""Logging: one JSON object a line (or plain text in development), with secrets kept out.

`configure_logging(settings, process=...)` is called once by each process's entry point. `log_event`
writes a structured line: `log_event(log, "ready", port=8000)`. Fields whose name suggests a secret are
redacted whatever the caller passes, so a careless call cannot leak a password, token or key.
"""

from __future__ import annotations

import logging
import sys
import time

import msgspec

from adtivity.settings import Settings

SECRET_FIELD_MARKERS = ("password", "secret", "token", "authorization", "api_key", "key_string")
_encoder = msgspec.json.Encoder()


def is_secret_field(name: object) -> bool:
    """Whether a field's name suggests a secret (its value is then never written anywhere)."""
    return isinstance(name, str) and any(marker in name.lower() for marker in SECRET_FIELD_MARKERS)


def _redact(fields: dict) -> dict:
    return {name: "[redacted]" if is_secret_field(name) else value for name, value in fields.items()}


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "process": self.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_redact(getattr(record, "fields", {})))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _redact(getattr(record, "fields", {})).items())
        return f"{super().format(record)} {extra}".rstrip()


def log_formatter(settings: Settings, *, process: str) -> logging.Formatter:
    if settings.log_format == "json":
        return JsonFormatter(process)
    return TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def log_handler(settings: Settings, *, process: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(log_formatter(settings, process=process))
    return handler


def configure_logging(settings: Settings, *, process: str) -> None:
    root = logging.getLogger()
    root.handlers[:] = [log_handler(settings, process=process)]
    root.setLevel(settings.log_level.upper())


def log_event(logger: logging.Logger, message: str, *, level: int = logging.INFO, exc_info=None, **fields) -> None:
    logger.log(level, message, exc_info=exc_info, extra={"fields": fields})
