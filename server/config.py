"""Server configuration: command-line flags, each with a DELTACLOUD_* environment variable
as its fallback, and the defaults a user gets with neither."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:50051"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "deltacloud"


@dataclass(frozen=True)
class ServerConfig:
    listen: str = DEFAULT_LISTEN
    driver: str = "mock"
    provider: str = ""
    data_dir: Path = field(default_factory=default_data_dir)
    #: "driver.key" -> value, e.g. {"mock.pending_delay": "0.2"}.
    driver_options: Mapping[str, str] = field(default_factory=dict)
    workers: int = 32
    max_message_bytes: int = 4 * 1024 * 1024
    shutdown_grace: float = 5.0
    log_level: str = "INFO"
    port_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    watch_poll_interval: float = 2.0
    watch_fast_poll_interval: float = 0.25
    watch_progress_interval: float = 5.0
    watch_buffer: int = 1000
    journal_max_events: int = 100_000
    journal_max_age: float = 7 * 24 * 3600.0

    def options_for(self, driver: str) -> dict[str, str]:
        """The driver options meant for ``driver``, with the ``driver.`` prefix removed."""
        prefix = f"{driver}."
        return {
            key[len(prefix) :]: value
            for key, value in self.driver_options.items()
            if key.startswith(prefix)
        }


def _env(name: str, environ: Mapping[str, str]) -> str | None:
    value = environ.get(f"DELTACLOUD_{name}")
    return value if value not in (None, "") else None


def _parse_options(items: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise argparse.ArgumentTypeError(
                f"driver option {item.split('=', 1)[0]!r}: expected DRIVER.KEY=VALUE"
            )
        options[key.strip()] = value.strip()
    return options


def parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    p = argparse.ArgumentParser(
        prog="deltacloud-server",
        description="Serve the Deltacloud gRPC API. Every flag falls back to the "
        "DELTACLOUD_<FLAG> environment variable (e.g. DELTACLOUD_LISTEN).",
    )
    p.add_argument(
        "--listen",
        default=_env("LISTEN", env) or DEFAULT_LISTEN,
        help=f"HOST:PORT to listen on; port 0 picks a free one (default {DEFAULT_LISTEN})",
    )
    p.add_argument("--driver", default=_env("DRIVER", env) or "mock", help="default driver (mock)")
    p.add_argument(
        "--provider",
        default=_env("PROVIDER", env) or "",
        help="default provider of the default driver (the driver's own default)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_env("DATA_DIR", env) or default_data_dir()),
        help="where the mock driver and the event journal keep state",
    )
    p.add_argument(
        "--driver-option",
        action="append",
        default=(_env("DRIVER_OPTIONS", env) or "").split(),
        metavar="DRIVER.KEY=VALUE",
        help="a driver setting, e.g. mock.pending_delay=0.5 (repeatable; "
        "DELTACLOUD_DRIVER_OPTIONS takes a space-separated list)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", env) or 32),
        help="threads running driver calls (32)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=int(_env("MAX_MESSAGE_BYTES", env) or 4 * 1024 * 1024),
        help="largest request or response message (4 MiB)",
    )
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=float(_env("SHUTDOWN_GRACE", env) or 5.0),
        help="seconds in-flight calls get to finish on SIGTERM/SIGINT (5)",
    )
    p.add_argument("--log-level", default=_env("LOG_LEVEL", env) or "INFO")
    p.add_argument(
        "--port-file",
        type=Path,
        default=_env("PORT_FILE", env),
        help="write the bound port here once serving (useful with port 0)",
    )
    p.add_argument("--tls-cert", type=Path, default=_env("TLS_CERT", env))
    p.add_argument("--tls-key", type=Path, default=_env("TLS_KEY", env))
    p.add_argument(
        "--tls-client-ca",
        type=Path,
        default=_env("TLS_CLIENT_CA", env),
        help="require client certificates signed by this CA (mutual TLS)",
    )
    p.add_argument(
        "--watch-poll-interval",
        type=float,
        default=float(_env("WATCH_POLL_INTERVAL", env) or 2.0),
        help="seconds between polls of a watched backend while nothing is transitional (2)",
    )
    p.add_argument(
        "--watch-fast-poll-interval",
        type=float,
        default=float(_env("WATCH_FAST_POLL_INTERVAL", env) or 0.25),
        help="seconds between polls while an instance is transitional (0.25)",
    )
    p.add_argument(
        "--watch-progress-interval",
        type=float,
        default=float(_env("WATCH_PROGRESS_INTERVAL", env) or 5.0),
        help="default seconds between progress messages of an idle watch (5)",
    )
    p.add_argument(
        "--watch-buffer",
        type=int,
        default=int(_env("WATCH_BUFFER", env) or 1000),
        help="events a live subscriber may fall behind before it is cut (1000)",
    )
    p.add_argument(
        "--journal-max-events",
        type=int,
        default=int(_env("JOURNAL_MAX_EVENTS", env) or 100_000),
        help="events kept per scope for resuming (100000)",
    )
    p.add_argument(
        "--journal-max-age",
        type=float,
        default=float(_env("JOURNAL_MAX_AGE", env) or 7 * 24 * 3600),
        help="seconds events are kept for resuming (604800, a week)",
    )
    return p


def load(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    p = parser(environ)
    args = p.parse_args(argv)
    try:
        options = _parse_options(args.driver_option)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.workers < 1:
        p.error("--workers must be at least 1")
    positive = {
        "--watch-poll-interval": args.watch_poll_interval,
        "--watch-fast-poll-interval": args.watch_fast_poll_interval,
        "--watch-progress-interval": args.watch_progress_interval,
        "--watch-buffer": args.watch_buffer,
        "--journal-max-events": args.journal_max_events,
        "--journal-max-age": args.journal_max_age,
    }
    for flag, value in positive.items():
        if value <= 0:
            p.error(f"{flag} must be positive")
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        p.error("--tls-client-ca needs --tls-cert and --tls-key")
    return ServerConfig(
        listen=args.listen,
        driver=args.driver,
        provider=args.provider,
        data_dir=args.data_dir,
        driver_options=options,
        workers=args.workers,
        max_message_bytes=args.max_message_bytes,
        shutdown_grace=args.shutdown_grace,
        log_level=args.log_level.upper(),
        port_file=args.port_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        watch_poll_interval=args.watch_poll_interval,
        watch_fast_poll_interval=args.watch_fast_poll_interval,
        watch_progress_interval=args.watch_progress_interval,
        watch_buffer=args.watch_buffer,
        journal_max_events=args.journal_max_events,
        journal_max_age=args.journal_max_age,
    )
