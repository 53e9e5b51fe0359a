"""HardwareProfileService: the sizes instances come in."""

from __future__ import annotations

from deltacloud.v1 import hardware_profile_pb2 as pb
from deltacloud.v1 import hardware_profile_pb2_grpc as pb_grpc

from .. import convert
from ..rpc import Context, Servicer, require, unary


class HardwareProfileServicer(Servicer, pb_grpc.HardwareProfileServiceServicer):
    @unary
    async def ListHardwareProfiles(
        self, request: pb.ListHardwareProfilesRequest, context: Context
    ) -> pb.ListHardwareProfilesResponse:
        call = await self.gateway.open(context, "hardware_profiles")
        filters: dict[str, object] = {"id": request.id, "architecture": request.architecture}
        items = await call.run(call.driver.list_hardware_profiles, filters)
        # A profile's architecture is a property (fixed or enum), so match its values here;
        # a profile that does not describe one matches no architecture, as in Deltacloud.
        if request.architecture:
            items = [
                p
                for p in items
                if p.architecture is not None and p.architecture.allows(request.architecture)
            ]
        page = self.page(
            call,
            "hardware_profiles",
            items,
            request,
            filters,
            convert.hardware_profile,
            filter_attrs=("id",),
        )
        return pb.ListHardwareProfilesResponse(
            hardware_profiles=page.items,
            next_page_token=page.next_page_token,
        )

    @unary
    async def GetHardwareProfile(
        self, request: pb.GetHardwareProfileRequest, context: Context
    ) -> pb.HardwareProfile:
        require(request, "id")
        call = await self.gateway.open(context, "hardware_profiles")
        profile = await call.run(call.driver.get_hardware_profile, request.id)
        return convert.hardware_profile(profile)
