"""AddressService: public IP addresses, associable with instances."""

from __future__ import annotations

from google.protobuf import empty_pb2

from deltacloud.v1 import address_pb2 as pb
from deltacloud.v1 import address_pb2_grpc as pb_grpc

from .. import convert
from ..gateway import Call
from ..rpc import Context, Servicer, require, unary


class AddressServicer(Servicer, pb_grpc.AddressServiceServicer):
    @unary
    async def ListAddresses(
        self, request: pb.ListAddressesRequest, context: Context
    ) -> pb.ListAddressesResponse:
        call = await self.gateway.open(context, "addresses")
        filters: dict[str, object] = {"id": request.id}
        page = await self.listed(
            call, "addresses", call.driver.list_addresses, request, filters, convert.address
        )
        return pb.ListAddressesResponse(
            addresses=page.items,
            next_page_token=page.next_page_token,
        )

    @unary
    async def GetAddress(self, request: pb.GetAddressRequest, context: Context) -> pb.Address:
        require(request, "id")
        call = await self.gateway.open(context, "addresses")
        return convert.address(await call.run(call.driver.get_address, request.id))

    @unary
    async def CreateAddress(self, request: pb.CreateAddressRequest, context: Context) -> pb.Address:
        call = await self.gateway.open(context, "addresses", "create")

        async def create(call: Call) -> pb.Address:
            return convert.address(await call.run(call.driver.create_address))

        return await self.requests.once(call, request, pb.Address, create)

    @unary
    async def DeleteAddress(
        self, request: pb.DeleteAddressRequest, context: Context
    ) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "addresses", "destroy")
        await call.run(call.driver.delete_address, request.id)
        return empty_pb2.Empty()

    @unary
    async def AssociateAddress(
        self, request: pb.AssociateAddressRequest, context: Context
    ) -> pb.Address:
        require(request, "id", "instance_id")
        call = await self.gateway.open(context, "addresses", "associate")
        address = await call.run(call.driver.associate_address, request.id, request.instance_id)
        return convert.address(address)

    @unary
    async def DisassociateAddress(
        self, request: pb.DisassociateAddressRequest, context: Context
    ) -> pb.Address:
        require(request, "id")
        call = await self.gateway.open(context, "addresses", "disassociate")
        return convert.address(await call.run(call.driver.disassociate_address, request.id))
