"""Reference servers for bench/unary.py, answering InstanceService/GetInstance and
ListInstances with fixed answers (captured from the real server):

- ``bare``: a grpc.aio server with no logic at all: pre-serialized bytes, no
  (de)serialization; what gRPC itself costs.
- ``floor``: our servicer framework doing everything but the work: the generated handler
  (request parsing, response serialization), the error-mapping wrapper, required fields,
  and ``gateway.open`` (metadata, driver and provider resolution, the driver/provider echo),
  then the fixed answer instead of the driver call and conversion. Between bare and ours, it
  shows what the framework costs and what the work costs.

    python -m bench.bare_server --port-file FILE --get FILE --list FILE [--mode floor]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path
from typing import Any

import grpc


def _bare(server: grpc.aio.Server, get_bytes: bytes, list_bytes: bytes) -> None:
    async def get(request: bytes, context: Any) -> bytes:
        return get_bytes

    async def list_(request: bytes, context: Any) -> bytes:
        return list_bytes

    handlers = {
        # No (de)serializers: requests and responses stay bytes.
        "GetInstance": grpc.unary_unary_rpc_method_handler(get),
        "ListInstances": grpc.unary_unary_rpc_method_handler(list_),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("deltacloud.v1.InstanceService", handlers),)
    )


def _floor(server: grpc.aio.Server, get_bytes: bytes, list_bytes: bytes, data_dir: Path) -> None:
    from deltacloud.server.config import ServerConfig
    from deltacloud.server.gateway import Gateway
    from deltacloud.server.pagination import PageTokens
    from deltacloud.server.rpc import Context, require, unary
    from deltacloud.server.servicers.instances import InstanceServicer
    from deltacloud.v1 import instance_pb2 as pb
    from deltacloud.v1 import instance_pb2_grpc as pb_grpc

    got = pb.Instance.FromString(get_bytes)
    listed = pb.ListInstancesResponse.FromString(list_bytes)

    class FloorServicer(InstanceServicer):
        @unary
        async def GetInstance(
            self, request: pb.GetInstanceRequest, context: Context
        ) -> pb.Instance:
            require(request, "id")
            await self.gateway.open(context, "instances")
            return got

        @unary
        async def ListInstances(
            self, request: pb.ListInstancesRequest, context: Context
        ) -> pb.ListInstancesResponse:
            await self.gateway.open(context, "instances")
            return listed

    gateway = Gateway(ServerConfig(data_dir=data_dir))
    servicer = FloorServicer(gateway, PageTokens.from_data_dir(data_dir), None, None)  # type: ignore[arg-type]
    pb_grpc.add_InstanceServiceServicer_to_server(servicer, server)


async def serve(port_file: Path, get_bytes: bytes, list_bytes: bytes, mode: str) -> None:
    server = grpc.aio.server()
    with tempfile.TemporaryDirectory() as data_dir:
        if mode == "floor":
            _floor(server, get_bytes, list_bytes, Path(data_dir))
        else:
            _bare(server, get_bytes, list_bytes)
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
    parser.add_argument("--mode", choices=["bare", "floor"], default="bare")
    args = parser.parse_args()
    asyncio.run(serve(args.port_file, args.get.read_bytes(), args.list.read_bytes(), args.mode))


if __name__ == "__main__":
    main()
