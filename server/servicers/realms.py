"""RealmService: where instances and volumes live."""

from __future__ import annotations

from deltacloud.v1 import realm_pb2, realm_pb2_grpc

from .. import convert
from ..rpc import Context, Servicer, require, unary


class RealmServicer(Servicer, realm_pb2_grpc.RealmServiceServicer):
    @unary
    async def ListRealms(
        self, request: realm_pb2.ListRealmsRequest, context: Context
    ) -> realm_pb2.ListRealmsResponse:
        call = await self.gateway.open(context, "realms")
        filters: dict[str, object] = {"id": request.id}
        page = await self.listed(
            call, "realms", call.driver.list_realms, request, filters, convert.realm
        )
        return realm_pb2.ListRealmsResponse(realms=page.items, next_page_token=page.next_page_token)

    @unary
    async def GetRealm(
        self, request: realm_pb2.GetRealmRequest, context: Context
    ) -> realm_pb2.Realm:
        require(request, "id")
        call = await self.gateway.open(context, "realms")
        return convert.realm(await call.run(call.driver.get_realm, request.id))
