"""Structured logging: one JSON object per line on stderr. Credentials never reach a log:
nothing in the server formats them, and this filter also masks anything that looks like
an authorization value, as a second line of defence."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_SECRET = re.compile(
    r"(?i)(basic|bearer)\s+[A-Za-z0-9+/=._-]+"  # authorization values
    r"|(Credential=)[A-Za-z0-9]+"  # AWS SigV4 headers name the access key
    r"|()\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"  # AWS access key ids
    r"|(://)[^/\s:@\"']*:[^/\s@\"']*@"  # user:password@ in a URL (an ec2 provider's)
)
#: Libraries whose debug logs print requests with their signing headers, or flood: never
#: below this.
_CHATTY = {
    "botocore": logging.WARNING,
    "boto3": logging.WARNING,
    "s3transfer": logging.WARNING,
    "urllib3": logging.WARNING,
    # Not credentials, noise: at DEBUG, gRPC's "[_cygrpc] Loaded running loop" twice per
    # call and some seventy at start, burying the one `call` line docs/operations.md
    # promises; asyncio's "Using selector". Their warnings and errors still show.
    "grpc._cython.cygrpc": logging.INFO,
    "asyncio": logging.INFO,
}


def redact(text: str) -> str:
    """``text`` with anything shaped like a credential masked (logs and error messages)."""
    if not _SECRET.search(text):
        return text
    return _SECRET.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    if match.group(4):
        return "://<redacted>@"
    return f"{match.group(1) or match.group(2) or ''} <redacted>"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Cleaned as written: the message, the fields (an ec2 provider with a URL a client
        # sent, say) and a traceback's text alike.
        return redact(json.dumps(entry, default=str))


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, floor in _CHATTY.items():
        logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))
