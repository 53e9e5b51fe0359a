"""StorageVolumeService: block storage, attachable to instances."""

from __future__ import annotations

from google.protobuf import empty_pb2

from deltacloud.drivers import check_create_options
from deltacloud.drivers import models as m
from deltacloud.v1 import storage_volume_pb2 as pb
from deltacloud.v1 import storage_volume_pb2_grpc as pb_grpc

from .. import convert
from ..errors import invalid_argument
from ..gateway import Call
from ..rpc import Context, Servicer, check_text, require, unary

#: Larger than any cloud's volume (1 PiB); beyond it sizes stop being exact in drivers that
#: keep them as floats.
MAX_CAPACITY_GB = 1024 * 1024


class StorageVolumeServicer(Servicer, pb_grpc.StorageVolumeServiceServicer):
    @unary
    async def ListStorageVolumes(
        self, request: pb.ListStorageVolumesRequest, context: Context
    ) -> pb.ListStorageVolumesResponse:
        call = await self.gateway.open(context, "storage_volumes")
        state = (
            convert.enum_name(pb.StorageVolume.State, request.state, "state").removeprefix("STATE_")
            if request.state
            else ""
        )
        filters: dict[str, object] = {
            "id": request.id,
            "state": state,
            "realm_id": request.realm_id,
        }
        page = await self.listed(
            call,
            "storage_volumes",
            call.driver.list_storage_volumes,
            request,
            filters,
            convert.storage_volume,
        )
        return pb.ListStorageVolumesResponse(
            storage_volumes=page.items,
            next_page_token=page.next_page_token,
        )

    @unary
    async def GetStorageVolume(
        self, request: pb.GetStorageVolumeRequest, context: Context
    ) -> pb.StorageVolume:
        require(request, "id")
        call = await self.gateway.open(context, "storage_volumes")
        return convert.storage_volume(await call.run(call.driver.get_storage_volume, request.id))

    @unary
    async def CreateStorageVolume(
        self, request: pb.CreateStorageVolumeRequest, context: Context
    ) -> pb.StorageVolume:
        check_text(request, names=["name"], texts=["description"])
        if not 0 <= request.capacity_gb <= MAX_CAPACITY_GB:
            raise invalid_argument(
                "INVALID_CAPACITY",
                f"capacity_gb must be between 0 and {MAX_CAPACITY_GB} (got {request.capacity_gb})",
                capacity_gb=request.capacity_gb,
            )
        if not request.capacity_gb and not request.snapshot_id:
            raise invalid_argument(
                "MISSING_FIELD",
                "capacity_gb is required unless snapshot_id is given",
                field="capacity_gb",
            )
        call = await self.gateway.open(context, "storage_volumes", "create")
        options = {
            "name": request.name,
            "description": request.description,
            "snapshot_id": request.snapshot_id,
        }
        check_create_options(
            call.driver_class, "storage_volumes", {k: v for k, v in options.items() if v}
        )
        opts = m.CreateStorageVolume(
            capacity_gb=request.capacity_gb,
            realm_id=request.realm_id,
            name=request.name,
            description=request.description,
            snapshot_id=request.snapshot_id,
        )

        async def create(call: Call) -> pb.StorageVolume:
            return convert.storage_volume(await call.run(call.driver.create_storage_volume, opts))

        return await self.requests.once(call, request, pb.StorageVolume, create)

    @unary
    async def DeleteStorageVolume(
        self, request: pb.DeleteStorageVolumeRequest, context: Context
    ) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "storage_volumes", "destroy")
        await call.run(call.driver.delete_storage_volume, request.id)
        return empty_pb2.Empty()

    @unary
    async def AttachStorageVolume(
        self, request: pb.AttachStorageVolumeRequest, context: Context
    ) -> pb.StorageVolume:
        require(request, "id", "instance_id", "device")
        check_text(request, names=["device"])
        call = await self.gateway.open(context, "storage_volumes", "attach")
        volume = await call.run(
            call.driver.attach_storage_volume, request.id, request.instance_id, request.device
        )
        return convert.storage_volume(volume)

    @unary
    async def DetachStorageVolume(
        self, request: pb.DetachStorageVolumeRequest, context: Context
    ) -> pb.StorageVolume:
        require(request, "id")
        call = await self.gateway.open(context, "storage_volumes", "detach")
        return convert.storage_volume(await call.run(call.driver.detach_storage_volume, request.id))
