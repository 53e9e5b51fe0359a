"""StorageSnapshotService: point-in-time copies of storage volumes."""

from __future__ import annotations

from google.protobuf import empty_pb2

from deltacloud.drivers import models as m
from deltacloud.v1 import storage_snapshot_pb2 as pb
from deltacloud.v1 import storage_snapshot_pb2_grpc as pb_grpc

from .. import convert
from ..gateway import Call
from ..rpc import Context, Servicer, check_text, require, unary


class StorageSnapshotServicer(Servicer, pb_grpc.StorageSnapshotServiceServicer):
    @unary
    async def ListStorageSnapshots(
        self, request: pb.ListStorageSnapshotsRequest, context: Context
    ) -> pb.ListStorageSnapshotsResponse:
        call = await self.gateway.open(context, "storage_snapshots")
        filters: dict[str, object] = {
            "id": request.id,
            "storage_volume_id": request.storage_volume_id,
        }
        page = await self.listed(
            call,
            "storage_snapshots",
            call.driver.list_storage_snapshots,
            request,
            filters,
            convert.storage_snapshot,
        )
        return pb.ListStorageSnapshotsResponse(
            storage_snapshots=page.items,
            next_page_token=page.next_page_token,
        )

    @unary
    async def GetStorageSnapshot(
        self, request: pb.GetStorageSnapshotRequest, context: Context
    ) -> pb.StorageSnapshot:
        require(request, "id")
        call = await self.gateway.open(context, "storage_snapshots")
        snapshot = await call.run(call.driver.get_storage_snapshot, request.id)
        return convert.storage_snapshot(snapshot)

    @unary
    async def CreateStorageSnapshot(
        self, request: pb.CreateStorageSnapshotRequest, context: Context
    ) -> pb.StorageSnapshot:
        require(request, "storage_volume_id")
        check_text(request, names=["name"], texts=["description"])
        call = await self.gateway.open(context, "storage_snapshots", "create")
        opts = m.CreateStorageSnapshot(
            request.storage_volume_id, name=request.name, description=request.description
        )

        async def create(call: Call) -> pb.StorageSnapshot:
            snapshot = await call.run(call.driver.create_storage_snapshot, opts)
            return convert.storage_snapshot(snapshot)

        return await self.requests.once(call, request, pb.StorageSnapshot, create)

    @unary
    async def DeleteStorageSnapshot(
        self, request: pb.DeleteStorageSnapshotRequest, context: Context
    ) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "storage_snapshots", "destroy")
        await call.run(call.driver.delete_storage_snapshot, request.id)
        return empty_pb2.Empty()
