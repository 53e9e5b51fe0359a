"""The command tree: global options (target, backend, credentials, output), one group per
collection and one command per operation, built from the client's RPC table so every RPC
has its command; streams (watch, wait, blob put/get) and instance-states by hand."""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from deltacloud.client import _methods
from deltacloud.client.client import Client
from deltacloud.client.errors import DeltacloudError
from deltacloud.client.rpc import Rpc, build, short_names
from deltacloud.client.transport import Settings
from deltacloud.v1 import common_pb2

from . import output

T = TypeVar("T", bound=Callable[..., Any] | click.Command)

#: Collection of each service's RPCs (BucketService's blob RPCs go to ``blobs``).
COLLECTIONS = {
    "RealmService": "realms",
    "HardwareProfileService": "hardware-profiles",
    "ImageService": "images",
    "InstanceService": "instances",
    "KeyService": "keys",
    "StorageVolumeService": "storage-volumes",
    "StorageSnapshotService": "storage-snapshots",
    "BucketService": "buckets",
    "AddressService": "addresses",
    "FirewallService": "firewalls",
    "LoadBalancerService": "load-balancers",
}
#: Discovery RPCs, which name their own collection.
DISCOVERY = {
    "ListDrivers": ("drivers", "list"),
    "GetDriver": ("drivers", "show"),
    "ListProviders": ("providers", "list"),
    "GetCapabilities": ("capabilities", "show"),
}
#: Friendlier spellings of some options (deltacloudc's), besides the field's own name.
ALIASES = {
    "hardware_profile_id": ["--profile", "--hardware-profile"],
    "image_id": ["--image"],
    "realm_id": ["--realm"],
    "key_name": ["--key"],
    "instance_ids": ["--instance"],
    "firewall_ids": ["--firewall"],
    "load_balancer_id": ["--load-balancer"],
}


#: A duration in seconds: a timeout of 0 or less is a deadline already past (the server
#: answered DEADLINE_EXCEEDED; a watch ended at once), refused as a usage error instead.
SECONDS = click.FloatRange(min=0, min_open=True)


class Context:
    """What the global options decided; the client is made on first use."""

    def __init__(self, settings: Settings, as_json: bool) -> None:
        self.settings = settings
        self.as_json = as_json
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(settings=self.settings)
        return self._client


def fail(message: str) -> NoReturn:
    click.echo(f"deltacloud: error: {' '.join(message.split())}", err=True)
    sys.exit(1)


class Cli(click.Group):
    """Prints a failed call as one line on stderr and exits 1; Ctrl-C exits 130 (128 +
    SIGINT, as a shell reports a command it interrupted) without a traceback."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            # `deltacloud --help | head -1`: as a command's output below (click said 1).
            _discard_stdout()
            sys.exit(128 + 13)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # click's own handling said "Aborted!" with status 1, that of a failed call:
            # a script could not tell the user's interrupt from a refusal.
            sys.exit(128 + 2)
        except DeltacloudError as error:
            fail(str(error))
        except ValueError as error:
            fail(str(error))
        except BrokenPipeError:
            # The reader has gone (`| head`): it took all it wanted. Quietly, with the
            # status of a tool that SIGPIPE ended (128 + 13), as cat's in a pipeline.
            _discard_stdout()
            sys.exit(128 + 13)
        except OSError as error:
            fail(str(error))


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--target",
    envvar="DELTACLOUD_TARGET",
    default="127.0.0.1:50051",
    show_default=True,
    help="Server address (DELTACLOUD_TARGET).",
)
@click.option("--driver", envvar="DELTACLOUD_DRIVER", help="Driver (DELTACLOUD_DRIVER).")
@click.option("--provider", envvar="DELTACLOUD_PROVIDER", help="Provider (DELTACLOUD_PROVIDER).")
@click.option(
    "--username",
    "-u",
    envvar="DELTACLOUD_USERNAME",
    help="User or access key (DELTACLOUD_USERNAME).",
)
@click.option(
    "--password",
    "-p",
    envvar="DELTACLOUD_PASSWORD",
    help="Password or secret (DELTACLOUD_PASSWORD).",
)
@click.option(
    "--tls/--plaintext", envvar="DELTACLOUD_TLS", default=False, help="Use TLS (DELTACLOUD_TLS)."
)
@click.option(
    "--ca-cert",
    envvar="DELTACLOUD_CA_CERT",
    type=click.Path(exists=True),
    help="Root certificates (PEM) that sign the server's certificate.",
)
@click.option(
    "--cert",
    envvar="DELTACLOUD_CLIENT_CERT",
    type=click.Path(exists=True),
    help="Client certificate (PEM), for mutual TLS.",
)
@click.option(
    "--key",
    "key_file",
    envvar="DELTACLOUD_CLIENT_KEY",
    type=click.Path(exists=True),
    help="Client private key (PEM), for mutual TLS.",
)
@click.option(
    "--timeout",
    type=SECONDS,
    default=30.0,
    show_default=True,
    help="Deadline of each call, in seconds (blob transfers: their own --timeout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="deltacloud-grpc")
@click.pass_context
def cli(
    ctx: click.Context,
    target: str,
    driver: str | None,
    provider: str | None,
    username: str | None,
    password: str | None,
    tls: bool,
    ca_cert: str | None,
    cert: str | None,
    key_file: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Deltacloud over gRPC: deltacloud COLLECTION OPERATION [OPTIONS].

    Every collection lists with `list`; `deltacloud COLLECTION --help` shows the rest.
    """
    settings = Settings(
        target=target,
        driver=driver,
        provider=provider,
        username=username,
        password=password,
        tls=tls,
        root_certificates=Path(ca_cert) if ca_cert else None,
        certificate_chain=Path(cert) if cert else None,
        private_key=Path(key_file) if key_file else None,
        timeout=timeout,
    )
    ctx.obj = Context(settings, as_json)
    ctx.call_on_close(lambda: ctx.obj.client.close() if ctx.obj._client else None)


def json_flag(function: T) -> T:
    """``--json`` after the operation too: ``deltacloud instances list --json``."""

    def remember(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_object(Context).as_json = True  # type: ignore[union-attr]

    return click.option(
        "--json",
        "_json",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="Print JSON instead of tables.",
    )(function)


def groups() -> dict[str, click.Group]:
    found: dict[str, click.Group] = {}
    for name in [*COLLECTIONS.values(), "blobs", "drivers", "providers", "capabilities"]:
        if name not in found:
            found[name] = click.Group(name, help=f"Operations on {name.replace('-', ' ')}.")
            cli.add_command(found[name])
    return found


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def placement(rpc: Rpc[Any, Any]) -> tuple[str, str] | None:
    """(collection, operation) of an RPC: ``ListInstances`` -> (instances, list)."""
    service, method = rpc.path.strip("/").split("/")
    service = service.split(".")[-1]
    if method in DISCOVERY:
        return DISCOVERY[method]
    if method == "ListInstanceStates":
        return None  # the top-level `instance-states` command
    collection = COLLECTIONS[service]
    if service == "BucketService" and "Blob" in method:
        collection = "blobs"
    words = snake(method).split("_")
    noun = collection.rstrip("s").replace("-", "_").split("_")
    if collection == "addresses":
        noun = ["address", "addresses"]
    rest = [w for w in words[1:] if w not in noun and w.removesuffix("s") not in noun]
    verb = {"get": "show"}.get(words[0], words[0])
    return collection, "-".join([verb, *rest])


def positional(rpc: Rpc[Any, Any], field: FieldDescriptor) -> bool:
    """Ids that name the resource are arguments: ``instances show inst1``,
    ``blobs show bucket1 blob1``; in lists they are filters (options)."""
    if rpc.items:
        return field.name == "bucket_id"
    return field.name in ("id", "bucket_id")


def _kv(text: str) -> dict[str, str]:
    pairs = [p for p in text.split(",") if p]
    try:
        return dict(p.split("=", 1) for p in pairs)
    except ValueError:
        raise click.BadParameter(f"expected key=value[,key=value], got {text!r}") from None


#: The values each integer type of a field holds: an option out of them is a usage error
#: naming it (protobuf's "Value out of range" named none, with status 1).
_INTEGER_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_INTEGERS = frozenset(_INTEGER_RANGES)


class FieldInteger(click.ParamType[Any, int]):
    """An integer option of a field: the numbers its protobuf type holds (the range is left
    out of --help, where int64's bounds say nothing useful)."""

    name = "integer"

    def __init__(self, low: int | None, high: int | None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number: int = click.INT.convert(value, param, ctx)
        if self.low is not None and self.high is not None and not self.low <= number <= self.high:
            self.fail(f"{number} is not in the range {self.low} to {self.high}.", param, ctx)
        return number


def integer_type(field: Any) -> FieldInteger:
    """The click type of an integer field: the numbers its protobuf type holds."""
    low, high = _INTEGER_RANGES.get(field.type, (None, None))
    return FieldInteger(low, high)


def _message_from(message_type: type[Message], text: str) -> Message:
    """A message of ``key=value[,key=value]`` (``--listeners protocol=HTTP,...``), each value
    read as its field's type; a usage error naming what is wrong otherwise (an unknown key,
    a port that is not a number: tracebacks before)."""
    fields = message_type.DESCRIPTOR.fields_by_name
    values: dict[str, Any] = {}
    for key, raw in _kv(text).items():
        field = fields.get(key)
        if field is None:
            raise click.BadParameter(f"{key!r} is not one of {', '.join(fields)} (in {text!r})")
        try:
            if field.type in _INTEGERS:
                values[key] = int(raw)
            elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
                values[key] = float(raw)
            elif field.type == FieldDescriptor.TYPE_BOOL:
                values[key] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[key] = raw
        except ValueError:
            raise click.BadParameter(f"{key}={raw!r} is not a number (in {text!r})") from None
    try:
        return build(message_type, **values)
    except (ValueError, TypeError) as error:
        raise click.BadParameter(f"{text!r}: {error}") from None


def scalar_type(field: Any) -> click.ParamType[Any, Any]:
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return click.STRING
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return click.FLOAT
    return integer_type(field)


def parameters(
    rpc: Rpc[Any, Any],
) -> tuple[list[click.Parameter], Callable[[dict[str, Any]], Message]]:
    """The click parameters of an RPC's request fields, and how to build the request."""
    params: list[click.Parameter] = []
    flattened: dict[str, type[Message]] = {}
    for field in rpc.request.DESCRIPTOR.fields:
        name = field.name
        if name == "page_token":
            continue
        option = "--" + name.replace("_", "-")
        aliases = ALIASES.get(name, [])
        repeated = field.is_repeated
        if positional(rpc, field):
            params.append(click.Argument([name]))
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            params.append(
                click.Option([option, name], multiple=True, help="KEY=VALUE (repeatable).")
            )
        elif field.message_type is not None and repeated:
            sub = ",".join(f.name + "=..." for f in field.message_type.fields)
            params.append(click.Option([option, name], multiple=True, help=f"{sub} (repeatable)."))
        elif field.message_type is not None and field.message_type.full_name.startswith(
            "deltacloud."
        ):
            message_class = type(getattr(rpc.request(), name))
            flattened[name] = message_class
            for sub_field in field.message_type.fields:
                params.append(
                    click.Option(
                        ["--" + sub_field.name.replace("_", "-"), f"{name}__{sub_field.name}"],
                        type=scalar_type(sub_field),
                        help=f"{name.replace('_', ' ')}: {sub_field.name}.",
                    )
                )
        elif field.enum_type is not None:
            params.append(
                click.Option(
                    [option, *aliases, name],
                    multiple=repeated,
                    type=click.Choice(short_names(field.enum_type), case_sensitive=False),
                )
            )
        elif field.type == FieldDescriptor.TYPE_BOOL:
            params.append(click.Option([option, name], is_flag=True, default=None))
        elif field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            params.append(click.Option([option, *aliases, name], multiple=repeated))
        else:
            params.append(
                click.Option([option, *aliases, name], type=integer_type(field), multiple=repeated)
            )

    def request(values: dict[str, Any]) -> Message:
        fields: dict[str, Any] = {}
        for field in rpc.request.DESCRIPTOR.fields:
            if field.name in flattened:
                sub = {
                    key.split("__", 1)[1]: value
                    for key, value in values.items()
                    if key.startswith(field.name + "__") and value is not None
                }
                if sub:
                    fields[field.name] = build(flattened[field.name], **sub)
                continue
            value = values.get(field.name)
            if value is None or value == ():
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value = {k: v for item in value for k, v in _kv(item).items()}
            elif field.message_type is not None:
                message_type = type(getattr(rpc.request(), field.name).add())
                value = [_message_from(message_type, item) for item in value]
            elif field.type == FieldDescriptor.TYPE_BYTES:
                value = value.encode()
            fields[field.name] = value
        request: Message = build(rpc.request, **fields)
        return request

    return params, request


def unary_command(rpc: Rpc[Any, Any], operation: str) -> click.Command:
    params, make_request = parameters(rpc)
    method = rpc.path.rsplit("/", 1)[1]

    @click.pass_obj
    def run(obj: Context, /, **values: Any) -> None:
        request = make_request(values)
        client = obj.client
        if rpc.items:
            items = list(client._list(rpc, request, None))
            if obj.as_json:
                click.echo(output.to_json(items))
            else:
                item_type = type(getattr(rpc.response(), rpc.items).add())
                click.echo(output.list_table(items, item_type))
            return
        response = client._call(rpc, request, None)
        if obj.as_json:
            click.echo(output.to_json(response))
        elif response.DESCRIPTOR.full_name == "google.protobuf.Empty":
            ids = " ".join(str(v) for k, v in values.items() if k in ("bucket_id", "id"))
            click.echo(f"{operation}: {ids} done".replace("  ", " "))
        else:
            fields = response.DESCRIPTOR.fields
            listed = fields[0].message_type if len(fields) == 1 else None
            # One repeated message field is a table; a map (BlobMetadata's) is a record.
            if listed is not None and fields[0].is_repeated and not listed.GetOptions().map_entry:
                items = list(getattr(response, fields[0].name))
                click.echo(output.list_table(items, type(getattr(response, fields[0].name).add())))
            else:
                click.echo(output.record(response))

    doc = getattr(_methods.SyncMethods, snake(method)).__doc__ or f"{method}."
    summary = " ".join(doc.split()).split(": ", 1)[-1]
    return json_flag(click.Command(operation, params=params, callback=run, help=summary))


def build_commands() -> None:
    found = groups()
    for name, rpc in vars(_methods).items():
        if not (name.isupper() and isinstance(rpc, Rpc)):
            continue
        place = placement(rpc)
        if place is None:
            continue
        collection, operation = place
        found[collection].add_command(unary_command(rpc, operation))
    found["instances"].add_command(watch_command)
    found["instances"].add_command(wait_command)
    found["blobs"].add_command(put_command)
    found["blobs"].add_command(get_command)


@click.command("watch")
@click.option("--instance", "instance_ids", multiple=True, help="Only this instance (repeatable).")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(short_names(common_pb2.InstanceState.DESCRIPTOR), case_sensitive=False),
    help="Only transitions into this state (repeatable).",
)
@click.option("--after-revision", type=int, help="Resume after this revision.")
@click.option(
    "--journal-id", help="The journal --after-revision was read from (printed when a watch ends)."
)
@click.option("--snapshot", is_flag=True, help="First one SNAPSHOT event per instance.")
@click.option("--progress-interval", type=float, help="Seconds between progress messages.")
@click.option("--timeout", type=SECONDS, help="Stop watching after this many seconds.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
@json_flag
@click.pass_obj
def watch_command(
    obj: Context,
    instance_ids: tuple[str, ...],
    states: tuple[str, ...],
    after_revision: int | None,
    journal_id: str | None,
    snapshot: bool,
    progress_interval: float | None,
    timeout: float | None,
    count: int | None,
) -> None:
    """Follow instance events (resumes by itself after a dropped stream); when it ends,
    says on stderr how to resume from where it stopped."""
    watch = obj.client.watch(
        instance_ids=instance_ids,
        states=states,
        after_revision=after_revision,
        journal_id=journal_id,
        initial_snapshot=snapshot,
        progress_interval=progress_interval,
        timeout=timeout,
    )
    seen = 0
    # Where a later run resumes: the watch's position, or, when --count stops it inside a
    # message, the last event printed (the rest of that message was not).
    position: int | None = None
    try:
        for event in watch:
            if obj.as_json:
                click.echo(json.dumps(output.as_dict(event), sort_keys=True))
            else:
                click.echo(output.event_line(event))
            seen += 1
            if count is not None and seen >= count:
                position = event.revision
                break
    except DeltacloudError as error:
        if error.code.name != "DEADLINE_EXCEEDED":
            raise
    finally:
        watch.close()
        position = watch.revision if position is None else position
        if position is not None and watch.journal_id:
            click.echo(
                f"resume with: --after-revision {position} --journal-id {watch.journal_id}",
                err=True,
            )


@click.command("wait")
@click.argument("instance_id")
@click.argument(
    "state",
    type=click.Choice(short_names(common_pb2.InstanceState.DESCRIPTOR), case_sensitive=False),
)
@click.option(
    "--timeout", type=SECONDS, default=300.0, show_default=True, help="Give up after this long."
)
@json_flag
@click.pass_obj
def wait_command(obj: Context, instance_id: str, state: str, timeout: float) -> None:
    """Wait until an instance is in STATE (from the event stream, not polling)."""
    instance = obj.client.wait_for(instance_id, state, timeout)
    click.echo(output.to_json(instance) if obj.as_json else output.record(instance))


TRANSFER_TIMEOUT = click.option(
    "--timeout",
    type=SECONDS,
    help="Deadline of the whole transfer, in seconds (default: none; the server ends one "
    "idle for its --transfer-idle-timeout).",
)


@click.command("put")
@click.argument("bucket_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", "blob_id", help="Blob id (default: the file's name).")
@click.option("--content-type", help="Default: guessed from the file name.")
@click.option("--metadata", "user_metadata", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
@TRANSFER_TIMEOUT
@json_flag
@click.pass_obj
def put_command(
    obj: Context,
    bucket_id: str,
    file: Path,
    blob_id: str | None,
    content_type: str | None,
    user_metadata: tuple[str, ...],
    progress: bool | None,
    timeout: float | None,
) -> None:
    """Upload FILE into a bucket, with a progress bar."""
    status = file.stat()
    # A pipe, a FIFO or a terminal says 0: its length is known once it is read.
    size = status.st_size if stat.S_ISREG(status.st_mode) else None
    guessed = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    show = sys.stderr.isatty() if progress is None else progress
    metadata = {k: v for item in user_metadata for k, v in _kv(item).items()}
    # Unbuffered: gRPC reads the file in a thread of its own, and a failed upload (its
    # deadline, the server's idle limit) leaves that thread waiting in read() on a stalled
    # pipe; closing a buffered file waits for its lock, held by that read, for ever.
    with (
        file.open("rb", buffering=0) as data,
        click.progressbar(
            length=size or 1,
            label=f"uploading {file.name}",
            file=sys.stderr,
            hidden=not show or size is None,  # no bar without a length
        ) as bar,
    ):
        blob = obj.client.upload_blob(
            bucket_id=bucket_id,
            blob_id=blob_id or file.name,
            data=data,
            content_type=guessed,
            user_metadata=metadata,
            content_length=size,
            progress=bar.update,
            timeout=timeout,
        )
    click.echo(output.to_json(blob) if obj.as_json else output.record(blob))


@click.command("get")
@click.argument("bucket_id")
@click.argument("blob_id")
@click.option(
    "--output",
    "-o",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (default: stdout).",
)
@TRANSFER_TIMEOUT
@click.pass_obj
def get_command(
    obj: Context, bucket_id: str, blob_id: str, target: Path | None, timeout: float | None
) -> None:
    """Download a blob's content (the -o file is replaced only once the whole content
    has come: a failed download leaves it as it was)."""
    chunks: Iterator[bytes] = obj.client.download_blob(
        bucket_id=bucket_id, id=blob_id, timeout=timeout
    )
    if target is None:
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return
    if target.exists() and not target.is_file():
        # A device or a pipe (-o /dev/stdout): nothing to replace, written as it comes.
        with target.open("wb") as file:
            for chunk in chunks:
                file.write(chunk)
        return
    write_whole(target, chunks)


def write_whole(target: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` into the file ``target`` names once they have all come: into a
    temporary file beside it, then renamed over it. A failed download leaves the file as it
    was (or absent) and no temporary file behind."""
    final = Path(os.path.realpath(target))  # a symlink's file is replaced, not the link
    if final.exists():
        with final.open("ab"):
            pass  # refused as open("wb") would refuse it (a read-only file), not truncated
        mode = stat.S_IMODE(final.stat().st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # as open() would have made it
    descriptor, temporary = tempfile.mkstemp(
        dir=final.parent, prefix=f".{final.name}.", suffix=".part"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
        os.chmod(temporary, mode)
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@cli.command("instance-states")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "dot", "json"]),
    default=None,
    help="table (default), a Graphviz graph, or JSON.",
)
@json_flag
@click.pass_obj
def instance_states(obj: Context, fmt: str | None) -> None:
    """The driver's instance state machine."""
    machine = obj.client.list_instance_states()
    click.echo(output.state_machine(machine, fmt or ("json" if obj.as_json else "table")))


build_commands()


def main() -> None:
    cli(prog_name="deltacloud")
