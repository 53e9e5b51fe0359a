"""FirewallService: named groups of ingress/egress rules."""

from __future__ import annotations

import contextlib
import ipaddress
import re

from google.protobuf import empty_pb2

from deltacloud.drivers import models as m
from deltacloud.v1 import firewall_pb2 as pb
from deltacloud.v1 import firewall_pb2_grpc as pb_grpc

from .. import convert
from ..errors import invalid_argument
from ..rpc import Context, Servicer, check_text, require, unary

PROTOCOLS = ("tcp", "udp", "icmp")
#: An address, "/" and a prefix length in decimal without a sign or leading zero: what
#: every cloud takes. ipaddress alone also takes a bare address, a netmask ("/255.0.0.0"),
#: a leading zero ("/08") and a scoped IPv6 address ("fe80::1%eth0/64"), which the mock
#: took and EC2 refuses (or stored, as moto did the scoped one).
_CIDR = re.compile(r"[0-9A-Fa-f.:]+/(?:0|[1-9][0-9]{0,2})")


def _network(number: int, cidr: str) -> str:
    """``cidr`` as the network it stands for (host bits cleared, IPv6 compressed), so that
    every driver keeps and compares the same text; INVALID_ARGUMENT if it is not one."""
    network = None
    if _CIDR.fullmatch(cidr):
        with contextlib.suppress(ValueError):  # 300.1.1.1/8, 10.0.0.1/33
            network = ipaddress.ip_network(cidr, strict=False)
    if network is None:
        raise invalid_argument(
            "INVALID_CIDR",
            f"sources[{number}].cidr {cidr!r} is not a CIDR block: an IPv4 or IPv6 address, "
            "'/' and a prefix length (0-32 or 0-128), e.g. 10.0.0.0/8 or 2001:db8::/32",
            field="sources",
            cidr=cidr,
        )
    return str(network)


def _sources(request: pb.CreateFirewallRuleRequest) -> list[m.RuleSource]:
    """The rule's sources, CIDR blocks as networks; each set, valid, and named once."""
    sources: list[m.RuleSource] = []
    seen: set[tuple[str, str]] = set()  # a set: a rule may name thousands
    for number, source in enumerate(request.sources):
        if not getattr(source, source.WhichOneof("source") or "cidr"):
            # A rule with it was stored as nothing (ec2) or open to all (earlier).
            raise invalid_argument(
                "INVALID_SOURCE",
                f"sources[{number}] sets neither cidr nor firewall_id",
                field="sources",
            )
        if source.WhichOneof("source") == "cidr":
            new = m.RuleSource(cidr=_network(number, source.cidr))
        else:
            new = m.RuleSource(firewall_id=source.firewall_id)
        if (new.cidr, new.firewall_id) in seen:
            # EC2 refuses the whole rule (naming no rule); the mock stored it twice.
            raise invalid_argument(
                "DUPLICATE_SOURCE",
                f"sources[{number}] ({new.cidr or new.firewall_id}) is named twice",
                field="sources",
            )
        seen.add((new.cidr, new.firewall_id))
        sources.append(new)
    return sources


class FirewallServicer(Servicer, pb_grpc.FirewallServiceServicer):
    @unary
    async def ListFirewalls(
        self, request: pb.ListFirewallsRequest, context: Context
    ) -> pb.ListFirewallsResponse:
        call = await self.gateway.open(context, "firewalls")
        filters: dict[str, object] = {"id": request.id}
        page = await self.listed(
            call, "firewalls", call.driver.list_firewalls, request, filters, convert.firewall
        )
        return pb.ListFirewallsResponse(
            firewalls=page.items,
            next_page_token=page.next_page_token,
        )

    @unary
    async def GetFirewall(self, request: pb.GetFirewallRequest, context: Context) -> pb.Firewall:
        require(request, "id")
        call = await self.gateway.open(context, "firewalls")
        return convert.firewall(await call.run(call.driver.get_firewall, request.id))

    @unary
    async def CreateFirewall(
        self, request: pb.CreateFirewallRequest, context: Context
    ) -> pb.Firewall:
        require(request, "name", "description")
        check_text(request, names=["name"], texts=["description"])
        call = await self.gateway.open(context, "firewalls", "create")
        opts = m.CreateFirewall(name=request.name, description=request.description)
        return convert.firewall(await call.run(call.driver.create_firewall, opts))

    @unary
    async def DeleteFirewall(
        self, request: pb.DeleteFirewallRequest, context: Context
    ) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "firewalls", "destroy")
        await call.run(call.driver.delete_firewall, request.id)
        return empty_pb2.Empty()

    @unary
    async def CreateFirewallRule(
        self, request: pb.CreateFirewallRuleRequest, context: Context
    ) -> pb.Firewall:
        # No sources is refused, as the contract says: a rule open to the whole internet
        # (0.0.0.0/0, which it became) is asked for by name, never by omission.
        require(request, "firewall_id", "protocol", "sources")
        protocol = request.protocol.lower()
        if protocol not in PROTOCOLS:
            raise invalid_argument(
                "INVALID_PROTOCOL",
                f"protocol {request.protocol!r} is not one of {', '.join(PROTOCOLS)}",
                protocol=request.protocol,
            )
        sources = _sources(request)
        if protocol == "icmp":
            # ICMP type and code, as the contract says: -1 (all) to 255 each, and all types
            # take all codes. Echo request is type 8, code 0: no range, no order.
            for name, what in (("port_from", "ICMP type"), ("port_to", "ICMP code")):
                port = getattr(request, name)
                if not -1 <= port <= 255:
                    raise invalid_argument(
                        "INVALID_PORT", f"{name}={port} ({what}) is outside -1..255", field=name
                    )
            if request.port_from == -1 and request.port_to != -1:
                raise invalid_argument(
                    "INVALID_PORT",
                    f"port_from -1 (every ICMP type) takes port_to -1 (every code), not "
                    f"{request.port_to}",
                    field="port_to",
                )
        else:
            for name in ("port_from", "port_to"):
                port = getattr(request, name)
                if not 0 <= port <= 65535:
                    raise invalid_argument(
                        "INVALID_PORT", f"{name}={port} is outside 0..65535", field=name
                    )
            if request.port_from > request.port_to:
                raise invalid_argument(
                    "INVALID_PORT_RANGE",
                    f"port_from {request.port_from} is above port_to {request.port_to}",
                )
        call = await self.gateway.open(context, "firewalls", "create_rule")
        opts = m.CreateFirewallRule(
            protocol=protocol,
            port_from=request.port_from,
            port_to=request.port_to,
            sources=sources,
            direction=convert.direction_from_proto(request.direction),
        )
        firewall = await call.run(call.driver.create_firewall_rule, request.firewall_id, opts)
        return convert.firewall(firewall)

    @unary
    async def DeleteFirewallRule(
        self, request: pb.DeleteFirewallRuleRequest, context: Context
    ) -> pb.Firewall:
        require(request, "firewall_id", "id")
        call = await self.gateway.open(context, "firewalls", "delete_rule")
        firewall = await call.run(call.driver.delete_firewall_rule, request.firewall_id, request.id)
        return convert.firewall(firewall)
