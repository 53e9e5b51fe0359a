"""KeyService: key pairs and passwords used to log into instances."""

from __future__ import annotations

from google.protobuf import empty_pb2

from deltacloud.drivers import check_create_options
from deltacloud.drivers import models as m
from deltacloud.v1 import key_pb2 as pb
from deltacloud.v1 import key_pb2_grpc as pb_grpc

from .. import convert
from ..rpc import Context, Servicer, check_text, require, unary


class KeyServicer(Servicer, pb_grpc.KeyServiceServicer):
    @unary
    async def ListKeys(self, request: pb.ListKeysRequest, context: Context) -> pb.ListKeysResponse:
        call = await self.gateway.open(context, "keys")
        filters: dict[str, object] = {"id": request.id}
        page = await self.listed(call, "keys", call.driver.list_keys, request, filters, convert.key)
        return pb.ListKeysResponse(keys=page.items, next_page_token=page.next_page_token)

    @unary
    async def GetKey(self, request: pb.GetKeyRequest, context: Context) -> pb.Key:
        require(request, "id")
        call = await self.gateway.open(context, "keys")
        return convert.key(await call.run(call.driver.get_key, request.id))

    @unary
    async def CreateKey(self, request: pb.CreateKeyRequest, context: Context) -> pb.Key:
        require(request, "name")
        check_text(request, names=["name"])
        call = await self.gateway.open(context, "keys", "create")
        if request.public_key:
            check_create_options(call.driver_class, "keys", {"public_key": request.public_key})
        opts = m.CreateKey(name=request.name, public_key=request.public_key)
        return convert.key(await call.run(call.driver.create_key, opts))

    @unary
    async def DeleteKey(self, request: pb.DeleteKeyRequest, context: Context) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "keys", "destroy")
        await call.run(call.driver.delete_key, request.id)
        return empty_pb2.Empty()
