"""Server reflection that keeps the contract's comments.

grpcio-reflection re-serialises descriptors from a pool, which drops the .proto comments.
This servicer answers from the descriptor set generated with ``--include_source_info``, so
``grpcurl describe`` shows users the documentation, not just the field list. Files outside
the contract (health, reflection itself) come from the default pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

DESCRIPTOR_SET = "descriptor_set.binpb"
SERVICE_NAME: str = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name


class ReflectionServicer(reflection_pb2_grpc.ServerReflectionServicer):
    def __init__(self, service_names: list[str]) -> None:
        self._services = sorted({*service_names, SERVICE_NAME})
        data = resources.files("deltacloud.v1").joinpath(DESCRIPTOR_SET).read_bytes()
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {
            f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(data).file
        }
        # Health and reflection themselves, and the error details every error carries, so
        # that grpcurl -format-error can decode the ErrorInfo.
        for module in (any_pb2, status_pb2, error_details_pb2, health_pb2, reflection_pb2):
            proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
            self._files.setdefault(proto.name, proto)
        self._pool = descriptor_pool.DescriptorPool()
        for proto in self._files.values():
            self._pool.Add(proto)

    def _with_dependencies(self, name: str) -> list[bytes]:
        """The file and everything it imports, first the file itself."""
        ordered: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop()
            if current in ordered or current not in self._files:
                continue
            ordered.append(current)
            pending.extend(self._files[current].dependency)
        return [self._files[n].SerializeToString() for n in ordered]

    def _answer(
        self, request: reflection_pb2.ServerReflectionRequest
    ) -> reflection_pb2.ServerReflectionResponse:
        kind = request.WhichOneof("message_request")
        filename: str | None = None
        if kind == "list_services":
            return reflection_pb2.ServerReflectionResponse(
                original_request=request,
                list_services_response=reflection_pb2.ListServiceResponse(
                    service=[reflection_pb2.ServiceResponse(name=n) for n in self._services]
                ),
            )
        if kind == "file_by_filename" and request.file_by_filename in self._files:
            filename = request.file_by_filename
        elif kind == "file_containing_symbol":
            try:
                found = self._pool.FindFileContainingSymbol(request.file_containing_symbol)
                filename = found.name
            except KeyError:
                filename = None
        if filename is None:
            return reflection_pb2.ServerReflectionResponse(
                original_request=request,
                error_response=reflection_pb2.ErrorResponse(
                    error_code=grpc.StatusCode.NOT_FOUND.value[0],
                    error_message="not found",
                ),
            )
        return reflection_pb2.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=self._with_dependencies(filename)
            ),
        )

    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterator[reflection_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async for request in request_iterator:
            yield self._answer(request)


def enable(server: grpc.aio.Server, service_names: list[str]) -> None:
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        ReflectionServicer(service_names), server
    )
