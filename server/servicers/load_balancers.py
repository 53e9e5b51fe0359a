"""LoadBalancerService: balancers spreading traffic over registered instances."""

from __future__ import annotations

from google.protobuf import empty_pb2

from deltacloud.drivers import models as m
from deltacloud.v1 import load_balancer_pb2 as pb
from deltacloud.v1 import load_balancer_pb2_grpc as pb_grpc

from .. import convert
from ..errors import invalid_argument
from ..rpc import Context, Servicer, check_text, require, unary

#: What a listener speaks, as the contract names them (in any case on the way in).
LISTENER_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "SSL")


class LoadBalancerServicer(Servicer, pb_grpc.LoadBalancerServiceServicer):
    @unary
    async def ListLoadBalancers(
        self, request: pb.ListLoadBalancersRequest, context: Context
    ) -> pb.ListLoadBalancersResponse:
        call = await self.gateway.open(context, "load_balancers")
        filters: dict[str, object] = {"id": request.id}
        page = await self.listed(
            call,
            "load_balancers",
            call.driver.list_load_balancers,
            request,
            filters,
            convert.load_balancer,
        )
        return pb.ListLoadBalancersResponse(
            load_balancers=page.items,
            next_page_token=page.next_page_token,
        )

    @unary
    async def GetLoadBalancer(
        self, request: pb.GetLoadBalancerRequest, context: Context
    ) -> pb.LoadBalancer:
        require(request, "id")
        call = await self.gateway.open(context, "load_balancers")
        return convert.load_balancer(await call.run(call.driver.get_load_balancer, request.id))

    @unary
    async def CreateLoadBalancer(
        self, request: pb.CreateLoadBalancerRequest, context: Context
    ) -> pb.LoadBalancer:
        require(request, "name", "realm_ids", "listeners")
        check_text(request, names=["name"])
        for number, realm_id in enumerate(request.realm_ids):
            if not realm_id:  # not a realm that is missing: no realm has this id
                raise invalid_argument(
                    "MISSING_FIELD", f"realm_ids[{number}] is empty", field="realm_ids"
                )
        for listener in request.listeners:
            for name in ("load_balancer_port", "instance_port"):
                port = getattr(listener, name)
                if not 1 <= port <= 65535:
                    raise invalid_argument(
                        "INVALID_PORT", f"listener {name}={port} is outside 1..65535", field=name
                    )
            if not listener.protocol:
                raise invalid_argument(
                    "MISSING_FIELD", "every listener needs a protocol", field="protocol"
                )
            # ASCII first: "\u017fsl".upper() is "SSL". moto makes a balancer of any
            # protocol; the mock refused them as VALIDATION_FAILED.
            protocol = listener.protocol.upper() if listener.protocol.isascii() else ""
            if protocol not in LISTENER_PROTOCOLS:
                raise invalid_argument(
                    "INVALID_PROTOCOL",
                    f"listener protocol {listener.protocol!r} is not one of "
                    f"{', '.join(LISTENER_PROTOCOLS)}",
                    field="protocol",
                    protocol=listener.protocol,
                )
        ports: set[int] = set()  # a set: counting each in a list held the server (quadratic)
        for port in (listener.load_balancer_port for listener in request.listeners):
            if port in ports:  # which listener would answer it?
                raise invalid_argument(
                    "DUPLICATE_LISTENER",
                    f"two listeners listen on load_balancer_port {port}",
                    field="listeners",
                    load_balancer_port=port,
                )
            ports.add(port)
        call = await self.gateway.open(context, "load_balancers", "create")
        opts = m.CreateLoadBalancer(
            name=request.name,
            realm_ids=list(request.realm_ids),
            listeners=[
                m.Listener(li.protocol.upper(), li.load_balancer_port, li.instance_port)
                for li in request.listeners
            ],
        )
        return convert.load_balancer(await call.run(call.driver.create_load_balancer, opts))

    @unary
    async def DeleteLoadBalancer(
        self, request: pb.DeleteLoadBalancerRequest, context: Context
    ) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "load_balancers", "destroy")
        await call.run(call.driver.delete_load_balancer, request.id)
        return empty_pb2.Empty()

    @unary
    async def RegisterInstance(
        self, request: pb.RegisterInstanceRequest, context: Context
    ) -> pb.LoadBalancer:
        require(request, "id", "instance_id")
        call = await self.gateway.open(context, "load_balancers", "register")
        lb = await call.run(call.driver.register_instance, request.id, request.instance_id)
        return convert.load_balancer(lb)

    @unary
    async def UnregisterInstance(
        self, request: pb.UnregisterInstanceRequest, context: Context
    ) -> pb.LoadBalancer:
        require(request, "id", "instance_id")
        call = await self.gateway.open(context, "load_balancers", "unregister")
        lb = await call.run(call.driver.unregister_instance, request.id, request.instance_id)
        return convert.load_balancer(lb)
