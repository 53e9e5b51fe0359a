#!/usr/bin/env python3
"""Regenerate the typed RPC methods of the Python client from the contract.

Usage:
    python scripts/genclient.py          # (re)write clients/python/deltacloud_client/_methods.py
    python scripts/genclient.py --check  # exit 1 if the committed file is out of date

Reads the descriptor set that genproto.py writes (with the protos' comments) and emits, for
each unary RPC, one method with a keyword argument per request field, twice: in
``SyncMethods`` and in ``AsyncMethods``. List RPCs return pagers (the page token is theirs);
reads are marked safe to retry, and so are creates taking a ``request_id`` (the transport
fills one in when the caller gives none). Streaming RPCs are written by hand in client.py.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR_SET = ROOT / "gen" / "deltacloud" / "v1" / "descriptor_set.binpb"
OUTPUT = ROOT / "clients" / "python" / "deltacloud_client" / "_methods.py"
PACKAGE = "deltacloud.v1"

SCALARS = {
    F.TYPE_STRING: "str",
    F.TYPE_BYTES: "bytes",
    F.TYPE_BOOL: "bool",
    F.TYPE_DOUBLE: "float",
    F.TYPE_FLOAT: "float",
}
READ_PREFIXES = ("List", "Get")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Contract:
    """The messages of the descriptor set by full name, and the module each lives in."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]) -> None:
        self.files = files
        self.messages: dict[str, tuple[str, descriptor_pb2.DescriptorProto, str]] = {}
        for file in files:
            module = Path(file.name).stem + "_pb2"
            for message in file.message_type:
                self._add(file.package, module, message, "")

    def _add(
        self, package: str, module: str, message: descriptor_pb2.DescriptorProto, outer: str
    ) -> None:
        local = f"{outer}{message.name}"
        self.messages[f".{package}.{local}"] = (module, message, local)
        for nested in message.nested_type:
            self._add(package, module, nested, local + ".")

    def python_name(self, full_name: str) -> str:
        module, _, local = self.messages[full_name]
        return f"{module}.{local}"

    def message(self, full_name: str) -> descriptor_pb2.DescriptorProto:
        return self.messages[full_name][1]


def field_type(contract: Contract, field: descriptor_pb2.FieldDescriptorProto) -> str:
    repeated = field.label == F.LABEL_REPEATED
    if field.type == F.TYPE_MESSAGE:
        message = contract.message(field.type_name)
        if message.options.map_entry:
            return "Mapping[str, str]"
        if field.type_name == ".google.protobuf.Duration":
            single = "float | datetime.timedelta | duration_pb2.Duration"
        else:
            single = contract.python_name(field.type_name)
    elif field.type == F.TYPE_ENUM:
        single = "int | str"
    else:
        single = SCALARS.get(field.type, "int")
    return f"Sequence[{single}]" if repeated else single


def comment(file: descriptor_pb2.FileDescriptorProto, path: list[int]) -> str:
    for location in file.source_code_info.location:
        if list(location.path) == path:
            return " ".join(location.leading_comments.split())
    return ""


def method_source(
    contract: Contract,
    file: descriptor_pb2.FileDescriptorProto,
    service: descriptor_pb2.ServiceDescriptorProto,
    method: descriptor_pb2.MethodDescriptorProto,
    doc: str,
    asynchronous: bool,
) -> str:
    request = contract.message(method.input_type)
    response = contract.message(method.output_type)
    field_names = {f.name for f in request.field}
    paged = "page_token" in field_names and any(f.name == "next_page_token" for f in response.field)
    arguments = ["self"]
    if any(f.name != "page_token" for f in request.field):
        arguments.append("*")
    passed = []
    for field in request.field:
        if field.name == "page_token" and paged:
            continue
        arguments.append(f"{field.name}: {field_type(contract, field)} | None = None")
        passed.append(f"{field.name}={field.name}")
    if "*" not in arguments:
        arguments.append("*")
    arguments.append("timeout: float | None = None")
    constant = snake(method.name).upper()
    build = f"build({contract.python_name(method.input_type)}{''.join(', ' + p for p in passed)})"
    if paged:
        items = next(
            f for f in response.field if f.label == F.LABEL_REPEATED and f.type == F.TYPE_MESSAGE
        )
        item = contract.python_name(items.type_name)
        pager = "AsyncPager" if asynchronous else "Pager"
        returns = f"{pager}[{item}]"
        body = f"return self._list({constant}, {build}, timeout)"
    elif method.output_type == ".google.protobuf.Empty":
        returns = "None"
        body = f"{'await ' if asynchronous else ''}self._call({constant}, {build}, timeout)"
    else:
        returns = contract.python_name(method.output_type)
        body = f"return {'await ' if asynchronous else ''}self._call({constant}, {build}, timeout)"
    prefix = "async def" if asynchronous and not paged else "def"
    signature = f"    {prefix} {snake(method.name)}(\n" + "".join(
        f"        {a},\n" for a in arguments
    )
    docstring = f"{service.name}.{method.name}: {doc}" if doc else f"{service.name}.{method.name}."
    if "request_id" in field_names:
        docstring += (
            " Without a request_id the client sends a new UUID; every retry of this call (on"
            " UNAVAILABLE, per the retry policy) sends the same one, so the server creates once."
        )
    docstring = docstring.replace('"""', "'''").replace("\\", "\\\\")
    wrapped = wrap(docstring, 88)
    return f'{signature}    ) -> {returns}:\n        """{wrapped}"""\n        {body}\n'


def wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    if len(lines) == 1:
        return lines[0]
    return "\n        ".join(lines) + "\n        "


def render() -> str:
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    contract = Contract(list(fds.file))
    ours = sorted((f for f in fds.file if f.package == PACKAGE), key=lambda f: f.name)
    modules = sorted(Path(f.name).stem + "_pb2" for f in ours)
    specs, sync_methods, async_methods = [], [], []
    for file in ours:
        for s_index, service in enumerate(file.service):
            for m_index, method in enumerate(service.method):
                if method.client_streaming or method.server_streaming:
                    continue
                request = contract.message(method.input_type)
                response = contract.message(method.output_type)
                paged = any(f.name == "page_token" for f in request.field) and any(
                    f.name == "next_page_token" for f in response.field
                )
                items = ""
                if paged:
                    items = next(
                        f.name
                        for f in response.field
                        if f.label == F.LABEL_REPEATED and f.type == F.TYPE_MESSAGE
                    )
                out = (
                    "empty_pb2.Empty"
                    if method.output_type == ".google.protobuf.Empty"
                    else contract.python_name(method.output_type)
                )
                takes_id = any(f.name == "request_id" for f in request.field)
                safe = method.name.startswith(READ_PREFIXES) or takes_id
                specs.append(
                    f"{snake(method.name).upper()} = Rpc(\n"
                    f'    "/{PACKAGE}.{service.name}/{method.name}",\n'
                    f"    {contract.python_name(method.input_type)},\n"
                    f"    {out},\n"
                    f"    safe_to_retry={safe},\n"
                    + (f'    items="{items}",\n' if items else "")
                    + ("    request_id=True,\n" if takes_id else "")
                    + ")\n"
                )
                doc = comment(file, [6, s_index, 2, m_index])
                sync_methods.append(method_source(contract, file, service, method, doc, False))
                async_methods.append(method_source(contract, file, service, method, doc, True))
    header = (
        '"""Generated by scripts/genclient.py from the contract: do not edit. One typed method\n'
        'per unary RPC, for the synchronous and the asyncio client."""\n\n'
        "from __future__ import annotations\n\n"
        "import datetime\n"
        "from collections.abc import Mapping, Sequence\n\n"
        "from google.protobuf import duration_pb2, empty_pb2\n\n"
        f"from deltacloud.v1 import {', '.join(modules)}\n\n"
        "from .paging import AsyncPager, Pager\n"
        "from .rpc import Rpc, build\n"
        "from .transport import AsyncTransport, SyncTransport\n\n"
        "__all__ = ['AsyncMethods', 'SyncMethods']\n\n"
        "_ = datetime, duration_pb2, Mapping, Sequence\n\n"
    )
    return (
        header
        + "\n".join(specs)
        + "\n\nclass SyncMethods(SyncTransport):\n"
        + '    """Every unary RPC as a blocking method."""\n\n'
        + "\n".join(sync_methods)
        + "\n\nclass AsyncMethods(AsyncTransport):\n"
        + '    """Every unary RPC as a coroutine (list RPCs return async pagers)."""\n\n'
        + "\n".join(async_methods)
    )


def formatted(source: str) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "format", "--line-length", "100", "--stdin-filename", str(OUTPUT), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    source = formatted(render())
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != source:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run scripts/genclient.py")
            return 1
        return 0
    OUTPUT.write_text(source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
