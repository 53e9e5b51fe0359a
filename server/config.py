"""Server configuration: command-line flags, each with a DELTACLOUD_* environment variable
as its fallback, and the defaults a user gets with neither."""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc

from .logs import redact
from .metrics import split_listen

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
    calls_per_scope: int = 16
    upload_workers: int = 64
    download_workers: int = 32
    transfers_per_scope: int = 16
    transfer_idle_timeout: float = 60.0
    poll_workers: int = 8
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
    keepalive_time: float = 60.0
    keepalive_timeout: float = 20.0
    keepalive_min_client_interval: float = 10.0
    request_id_retention: float = 24 * 3600.0
    metrics_listen: str = ""
    metrics_scheme: str = "http"
    page_token_key: Path | None = None
    #: Driver classes not installed as entry points, "MODULE:CLASS" (--driver-class).
    driver_classes: tuple[str, ...] = ()

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
        driver, dot, name = key.strip().partition(".")
        if not sep or not dot or not driver or not name:
            # Without "=" the item may be a value (a user list split at a space,
            # "alice:secret"): named up to its first ":" only, never echoed whole.
            shown = key if sep else key.split(":", 1)[0] + ("..." if ":" in key else "")
            raise argparse.ArgumentTypeError(f"driver option {shown!r}: expected DRIVER.KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r}: one of {', '.join(LOG_LEVELS)}")
    return value.upper()


#: The progress intervals a watch may ask for, and the server's default may be (seconds).
MIN_PROGRESS, MAX_PROGRESS = 0.1, 300.0


def _progress(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not MIN_PROGRESS <= seconds <= MAX_PROGRESS:  # nan too
        raise argparse.ArgumentTypeError(f"{value!r}: {MIN_PROGRESS} to {MAX_PROGRESS:g} seconds")
    return seconds


def _scheme(value: str) -> str:
    if value not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{value!r}: http or https")
    return value


def _path(value: str) -> Path:
    # Path("") is ".": --data-dir "" kept the journal and keys in the working directory.
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a path, not an empty string")
    return Path(value)


#: gRPC takes its sizes and times (milliseconds) as C ints.
INT_MAX = 2**31 - 1


def listen_error(flag: str, listen: str) -> str | None:
    """Why ``listen`` (``HOST:PORT``, ``[IPV6]:PORT``, or for --listen ``unix:PATH``) is
    not an address to listen on, or None."""
    if flag == "--listen" and listen.startswith("unix:"):
        if not listen.removeprefix("unix:").removeprefix("//"):
            # gRPC bound an abstract socket of a name of its own: nobody could connect.
            return f"{flag} {listen!r}: expected unix:PATH, the socket's path"
        return None
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535:
        return f"{flag} {listen!r}: expected HOST:PORT, the port 0 to 65535"
    if not host.removeprefix("[").removesuffix("]"):
        return (
            f"{flag} {listen!r}: expected HOST:PORT with a host (0.0.0.0 or [::] for "
            "every interface)"
        )
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return f"{flag} {listen!r}: an IPv6 address goes in brackets, e.g. [::1]:{port}"
    return None


def _same_address(listen: str, other: str) -> bool:
    """Whether two HOST:PORT addresses (already checked) name one listening socket."""
    if listen.startswith("unix:") or other.startswith("unix:"):
        return False
    (host, port), (other_host, other_port) = split_listen(listen), split_listen(other)
    if port == 0 or port != other_port:
        return False
    hosts = {host.lower(), other_host.lower()}
    return len(hosts) == 1 or bool(hosts & {"0.0.0.0", "::"})


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, in a journal too: argparse put 30 lines of usage before it.
        # Masked as a log line is (a value quoted back may hold a password).
        self.exit(2, f"{self.prog}: error: {redact(message)} (--help lists the flags)\n")


@dataclass(frozen=True)
class Flag:
    """One server flag; its environment variable is DELTACLOUD_ + the flag's name."""

    name: str
    default: str | None
    help: str
    type: Callable[[str], Any] = str
    positive: bool = False
    #: The range gRPC takes (it converts to a C int: milliseconds for seconds flags).
    least: float | None = None
    most: float | None = None
    #: The default as --help shows it, when it is not a value (worked out at start).
    shown: str | None = None

    @property
    def env(self) -> str:
        return self.name.removeprefix("--").upper().replace("-", "_")


MIB = 1024 * 1024
#: Seconds gRPC's keepalive options take: whole milliseconds, in a C int.
KEEPALIVE_LEAST, KEEPALIVE_MOST = 0.001, INT_MAX // 1000

FLAGS = [
    Flag(
        "--listen",
        DEFAULT_LISTEN,
        "HOST:PORT to listen on ([::1]:PORT for IPv6; port 0 picks a free one), or "
        "unix:PATH for a unix socket",
    ),
    Flag("--driver", "mock", "default driver"),
    Flag(
        "--provider",
        "",
        "default provider of the default driver",
        shown="the driver's own, e.g. ec2's us-east-1",
    ),
    Flag(
        "--data-dir",
        None,
        "where the mock driver and the event journal keep state",
        _path,
        shown="$XDG_DATA_HOME/deltacloud, or ~/.local/share/deltacloud",
    ),
    Flag("--workers", "32", "threads running driver calls", int, positive=True),
    Flag(
        "--calls-per-scope",
        "16",
        "driver calls one scope (driver, provider, credentials) may have on --workers at "
        "once; more wait their turn, so one user whose cloud stalls, or who floods the "
        "server, cannot take every worker",
        int,
        positive=True,
    ),
    Flag(
        "--upload-workers",
        "64",
        "threads running blob uploads, one per upload in progress (an upload goes at its "
        "client's pace, so uploads do not take the --workers other calls need)",
        int,
        positive=True,
    ),
    Flag(
        "--download-workers",
        "32",
        "threads reading blob downloads from the cloud, a piece at a time, apart from --workers",
        int,
        positive=True,
    ),
    Flag(
        "--transfers-per-scope",
        "16",
        "blob uploads, and downloads, one scope (driver, provider, credentials) may have in "
        "progress at once; more wait their turn, so one user's stalled transfers cannot take "
        "every upload worker, or hold memory without bound",
        int,
        positive=True,
    ),
    Flag(
        "--transfer-idle-timeout",
        "60",
        "seconds an upload may go without a message from its client, or a download without "
        "its client taking one, before the server ends it (DEADLINE_EXCEEDED, TRANSFER_IDLE) "
        "and gives back its turn and its worker",
        float,
        positive=True,
    ),
    Flag(
        "--poll-workers",
        "8",
        "threads observing watched backends (instance list polls), apart from --workers",
        int,
        positive=True,
    ),
    Flag("--max-message-bytes", str(4 * MIB), "largest message", int, positive=True, most=INT_MAX),
    Flag(
        "--shutdown-grace",
        "5",
        "seconds in-flight calls get on SIGTERM/SIGINT/SIGHUP (a second signal ends them)",
        float,
    ),
    Flag("--log-level", "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL", _level),
    Flag(
        "--port-file",
        None,
        "write the bound port here once serving, removed at shutdown (handy with port 0; "
        "not with a unix: socket)",
        _path,
    ),
    Flag("--tls-cert", None, "server certificate chain (PEM); enables TLS", _path),
    Flag("--tls-key", None, "server private key (PEM)", _path),
    Flag("--tls-client-ca", None, "require client certificates signed by this CA (mTLS)", _path),
    Flag(
        "--watch-poll-interval",
        "2",
        "seconds between polls of a watched backend while nothing is transitional",
        float,
        positive=True,
    ),
    Flag(
        "--watch-fast-poll-interval",
        "0.25",
        "seconds between polls while an instance is transitional",
        float,
        positive=True,
    ),
    Flag(
        "--watch-progress-interval",
        "5",
        "default seconds between progress messages of an idle watch (0.1 to 300, as a "
        "watch may ask for)",
        _progress,
    ),
    Flag(
        "--watch-buffer",
        "1000",
        "events a live subscriber may fall behind before it is cut",
        int,
        positive=True,
    ),
    Flag(
        "--journal-max-events", "100000", "events kept per scope for resuming", int, positive=True
    ),
    Flag(
        "--journal-max-age",
        str(7 * 24 * 3600),
        "seconds events are kept for resuming (a week)",
        float,
        positive=True,
    ),
    Flag(
        "--keepalive-time",
        "60",
        "seconds between the server's keepalive pings on each client connection (a client "
        "that vanished without closing it loses its connection, and its watches end)",
        float,
        positive=True,
        least=KEEPALIVE_LEAST,
        most=KEEPALIVE_MOST,
    ),
    Flag(
        "--keepalive-timeout",
        "20",
        "seconds the server waits for a ping's answer before closing the connection",
        float,
        positive=True,
        least=KEEPALIVE_LEAST,
        most=KEEPALIVE_MOST,
    ),
    Flag(
        "--keepalive-min-client-interval",
        "10",
        "shortest interval between a client's keepalive pings the server accepts; a client "
        "pinging more often is sent GOAWAY (too_many_pings)",
        float,
        positive=True,
        least=KEEPALIVE_LEAST,
        most=KEEPALIVE_MOST,
    ),
    Flag(
        "--request-id-retention",
        str(24 * 3600),
        "seconds the answer of a create sent with a request_id is kept, for its retries (a day)",
        float,
        positive=True,
    ),
    Flag(
        "--page-token-key",
        None,
        "file holding the key that signs page tokens (at least 16 bytes); give every server "
        "behind one address the same, so a list's next page may be asked of any of them",
        _path,
        shown="<data-dir>/page-token.key, made at first start",
    ),
    Flag(
        "--metrics-listen",
        "",
        "HOST:PORT serving Prometheus metrics at /metrics (port 0 picks a free one; off when "
        "empty); over plain HTTP unless --metrics-scheme https: bind it to a private address",
    ),
    Flag(
        "--metrics-scheme",
        "http",
        "http, or https: metrics over TLS with --tls-cert and --tls-key, scrapers "
        "presenting a certificate of --tls-client-ca when it is given",
        _scheme,
    ),
]


def version_line() -> str:
    """What ``--version`` prints: ours and the versions a bug report needs."""
    return (
        f"deltacloud-server {package_version()} (grpcio {grpc.__version__}, "
        f"protobuf {protobuf_version()}, Python {platform.python_version()})"
    )


def package_version() -> str:
    try:
        return importlib.metadata.version("deltacloud-grpc")
    except importlib.metadata.PackageNotFoundError:  # running from a tree not installed
        return "unknown"


def protobuf_version() -> str:
    from google.protobuf import __version__

    return str(__version__)


def parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Flags with defaults from DELTACLOUD_* variables; argparse converts (and refuses,
    with a usage error) environment values exactly like command-line ones."""
    env = os.environ if environ is None else environ
    p = _Parser(
        prog="deltacloud-server",
        description="Serve the Deltacloud gRPC API. Every flag falls back to the "
        "DELTACLOUD_<FLAG> environment variable (e.g. DELTACLOUD_LISTEN).",
    )
    for flag in FLAGS:
        default = _env(flag.env, env) or flag.default
        if flag.name == "--data-dir" and default is None:
            default = str(default_data_dir())
        p.add_argument(
            flag.name,
            type=flag.type,
            default=default,
            help=f"{flag.help} (DELTACLOUD_{flag.env}; default "
            f"{flag.shown or flag.default or 'none'})",
        )
    p.add_argument("--version", action="version", version=version_line())
    p.add_argument(
        "--driver-class",
        action="append",
        default=(_env("DRIVER_CLASSES", env) or "").split(),
        metavar="MODULE:CLASS",
        help="serve a driver class that is not installed as a deltacloud.drivers entry "
        "point, e.g. mydriver.cloud:MyDriver (importable from the server's path; "
        "repeatable; DELTACLOUD_DRIVER_CLASSES takes a space-separated list)",
    )
    p.add_argument(
        "--driver-option",
        action="append",
        default=(_env("DRIVER_OPTIONS", env) or "").split(),
        metavar="DRIVER.KEY=VALUE",
        help="a driver setting, e.g. mock.pending_delay=0.5 (repeatable; "
        "DELTACLOUD_DRIVER_OPTIONS takes a space-separated list)",
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
    for flag in FLAGS:
        value = getattr(args, flag.name[2:].replace("-", "_"))
        # not (v > 0) refuses NaN too; inf would be "never" (a poll interval) or unbounded.
        if flag.positive and not (math.isfinite(value) and value > 0):
            p.error(f"{flag.name} must be a positive number (got {value})")
        # Past a C int, gRPC refused the option at start with "value too large to convert
        # to int"; a positive keepalive under a millisecond became 0.
        least, most = flag.least, flag.most
        if (least is not None and value < least) or (most is not None and value > most):
            unit = " seconds" if flag.type is float else ""
            span = f"{_number(least or 1)} to {_number(most or math.inf)}{unit}"
            p.error(f"{flag.name} must be {span} (got {value})")
    if not (math.isfinite(args.shutdown_grace) and args.shutdown_grace >= 0):
        p.error(f"--shutdown-grace must be a number of seconds >= 0 (got {args.shutdown_grace})")
    problem = listen_error("--listen", args.listen)
    if problem:
        p.error(problem)
    if args.port_file is not None:
        if not args.port_file.parent.is_dir():
            p.error(f"--port-file {args.port_file}: {args.port_file.parent} is not a directory")
        if args.port_file.is_dir():
            p.error(f"--port-file {args.port_file}: is a directory; name a file in it")
        if args.listen.startswith("unix:"):
            # It was written "1".
            p.error("--port-file needs a HOST:PORT --listen: a unix: socket has no port")
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        p.error("--tls-client-ca needs --tls-cert and --tls-key")
    if args.metrics_scheme == "https" and args.tls_cert is None:
        p.error("--metrics-scheme https needs --tls-cert and --tls-key")
    if args.metrics_listen:
        problem = listen_error("--metrics-listen", args.metrics_listen)
        if problem:
            p.error(problem)
        try:
            split_listen(args.metrics_listen)
        except ValueError as exc:
            p.error(str(exc))
        if _same_address(args.listen, args.metrics_listen):
            p.error(
                f"--metrics-listen {args.metrics_listen!r} is the address of --listen "
                f"{args.listen!r}: give the metrics a port of their own"
            )
    values = {
        flag.name[2:].replace("-", "_"): getattr(args, flag.name[2:].replace("-", "_"))
        for flag in FLAGS
    }
    for path in args.driver_class:
        module, sep, name = path.partition(":")
        if not sep or not module or not name:
            p.error(f"--driver-class {path!r}: expected MODULE:CLASS")
    return ServerConfig(**values, driver_options=options, driver_classes=tuple(args.driver_class))
