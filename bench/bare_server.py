"""A bare grpc.aio server with no logic: it answers InstanceService/GetInstance and
ListInstances with fixed, pre-serialized bytes (captured from the real server), so that
bench/unary.py can measure what our server costs on top of gRPC itself.

    python -m bench.bare_server --port-file FILE --get HEXFILE --list HEXFILE
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc


async def serve(port_file: Path, get_bytes: bytes, list_bytes: bytes) -> None:
    async def get(request: bytes, context: Any) -> bytes:
        return get_bytes

    async def list_(request: bytes, context: Any) -> bytes:
        return list_bytes

    handlers = {
        # No (de)serializers: requests and responses stay bytes.
        "GetInstance": grpc.unary_unary_rpc_method_handler(get),
        "ListInstances": grpc.unary_unary_rpc_method_handler(list_),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("deltacloud.v1.InstanceService", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(f"{port}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--get", type=Path, required=True)
    parser.add_argument("--list", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port_file, args.get.read_bytes(), args.list.read_bytes()))


if __name__ == "__main__":
    main()
