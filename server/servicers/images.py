"""ImageService: what instances boot from."""

from __future__ import annotations

from google.protobuf import empty_pb2

from deltacloud.drivers import check_create_options
from deltacloud.drivers import models as m
from deltacloud.v1 import image_pb2 as pb
from deltacloud.v1 import image_pb2_grpc as pb_grpc

from .. import convert
from ..rpc import Context, Servicer, check_text, require, unary


class ImageServicer(Servicer, pb_grpc.ImageServiceServicer):
    @unary
    async def ListImages(
        self, request: pb.ListImagesRequest, context: Context
    ) -> pb.ListImagesResponse:
        call = await self.gateway.open(context, "images")
        filters: dict[str, object] = {
            "id": request.id,
            "architecture": request.architecture,
            "owner_id": request.owner_id,
        }
        page = await self.listed(
            call, "images", call.driver.list_images, request, filters, convert.image
        )
        return pb.ListImagesResponse(images=page.items, next_page_token=page.next_page_token)

    @unary
    async def GetImage(self, request: pb.GetImageRequest, context: Context) -> pb.Image:
        require(request, "id")
        call = await self.gateway.open(context, "images")
        return convert.image(await call.run(call.driver.get_image, request.id))

    @unary
    async def CreateImage(self, request: pb.CreateImageRequest, context: Context) -> pb.Image:
        require(request, "instance_id")
        check_text(request, names=["name"], texts=["description"])
        call = await self.gateway.open(context, "images", "create")
        check_create_options(
            call.driver_class,
            "images",
            {
                k: v
                for k, v in {"name": request.name, "description": request.description}.items()
                if v
            },
        )
        opts = m.CreateImage(request.instance_id, request.name, request.description)
        return convert.image(await call.run(call.driver.create_image, opts))

    @unary
    async def DeleteImage(
        self, request: pb.DeleteImageRequest, context: Context
    ) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "images", "destroy")
        await call.run(call.driver.delete_image, request.id)
        return empty_pb2.Empty()
