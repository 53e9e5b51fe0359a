"""AddressService, FirewallService and LoadBalancerService over gRPC: the mock's address
fixtures, association with instances, firewall rules and load balancer registration."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from conftest import Api
from google.protobuf import empty_pb2

from deltacloud.v1 import address_pb2 as addr_pb
from deltacloud.v1 import firewall_pb2 as fw_pb
from deltacloud.v1 import instance_pb2
from deltacloud.v1 import load_balancer_pb2 as lb_pb
from support import MD, Failure, failure

Rule = fw_pb.FirewallRule
Source = fw_pb.FirewallRuleSource
IPV4 = instance_pb2.InstanceAddress.TYPE_IPV4


def error_of(call: Any, request: Any) -> Failure:
    with pytest.raises(grpc.RpcError) as err:
        call(request, metadata=MD)
    return failure(err.value)


# ---- addresses ----------------------------------------------------------------------


def address_ids(api: Api) -> list[str]:
    response = api.addresses.ListAddresses(addr_pb.ListAddressesRequest(), metadata=MD)
    assert response.next_page_token == ""
    return [a.id for a in response.addresses]


def public_ipv4(api: Api, instance_id: str) -> list[str]:
    inst = api.instances.GetInstance(instance_pb2.GetInstanceRequest(id=instance_id), metadata=MD)
    return [a.address for a in inst.public_addresses if a.type == IPV4]


def test_address_fixtures_are_four_unassociated_ips(api: Api) -> None:
    response = api.addresses.ListAddresses(addr_pb.ListAddressesRequest(), metadata=MD)
    assert [(a.id, a.ip_address, a.instance_id) for a in response.addresses] == [
        (f"192.168.0.{n}", f"192.168.0.{n}", "") for n in range(1, 5)
    ]


def test_get_address_and_unknown_address(api: Api) -> None:
    address = api.addresses.GetAddress(addr_pb.GetAddressRequest(id="192.168.0.3"), metadata=MD)
    assert (address.id, address.ip_address, address.instance_id) == (
        "192.168.0.3",
        "192.168.0.3",
        "",
    )
    f = error_of(api.addresses.GetAddress, addr_pb.GetAddressRequest(id="10.0.0.1"))
    assert (f.code, f.reason, f.metadata.get("resource_id")) == (
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "10.0.0.1",
    )


def test_create_address_takes_the_next_free_ip(fresh_api: Api) -> None:
    created = fresh_api.addresses.CreateAddress(addr_pb.CreateAddressRequest(), metadata=MD)
    assert (created.id, created.ip_address, created.instance_id) == (
        "192.168.0.5",
        "192.168.0.5",
        "",
    )
    second = fresh_api.addresses.CreateAddress(addr_pb.CreateAddressRequest(), metadata=MD)
    assert second.id == "192.168.0.6"
    assert address_ids(fresh_api) == [f"192.168.0.{n}" for n in range(1, 7)]


def test_address_lifecycle_associate_disassociate_delete(api: Api) -> None:
    ip = api.addresses.CreateAddress(addr_pb.CreateAddressRequest(), metadata=MD).id
    assert public_ipv4(api, "inst2") == []

    associated = api.addresses.AssociateAddress(
        addr_pb.AssociateAddressRequest(id=ip, instance_id="inst2"), metadata=MD
    )
    assert (associated.id, associated.instance_id) == (ip, "inst2")
    assert api.addresses.GetAddress(addr_pb.GetAddressRequest(id=ip), metadata=MD) == associated
    assert public_ipv4(api, "inst2") == [ip]

    f = error_of(
        api.addresses.AssociateAddress, addr_pb.AssociateAddressRequest(id=ip, instance_id="inst0")
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ADDRESS_IN_USE")
    assert public_ipv4(api, "inst0") == []

    f = error_of(api.addresses.DeleteAddress, addr_pb.DeleteAddressRequest(id=ip))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ADDRESS_IN_USE")
    assert ip in address_ids(api)

    freed = api.addresses.DisassociateAddress(
        addr_pb.DisassociateAddressRequest(id=ip), metadata=MD
    )
    assert (freed.id, freed.instance_id) == (ip, "")
    assert public_ipv4(api, "inst2") == []

    f = error_of(api.addresses.DisassociateAddress, addr_pb.DisassociateAddressRequest(id=ip))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ADDRESS_NOT_ASSOCIATED")

    result = api.addresses.DeleteAddress(addr_pb.DeleteAddressRequest(id=ip), metadata=MD)
    assert result == empty_pb2.Empty()
    assert ip not in address_ids(api)
    f = error_of(api.addresses.GetAddress, addr_pb.GetAddressRequest(id=ip))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_associate_with_an_unknown_instance_is_not_found_and_changes_nothing(api: Api) -> None:
    f = error_of(
        api.addresses.AssociateAddress,
        addr_pb.AssociateAddressRequest(id="192.168.0.4", instance_id="inst99"),
    )
    assert (f.code, f.metadata.get("resource_id")) == (grpc.StatusCode.NOT_FOUND, "inst99")
    address = api.addresses.GetAddress(addr_pb.GetAddressRequest(id="192.168.0.4"), metadata=MD)
    assert address.instance_id == ""


def test_associate_unknown_address_is_not_found(api: Api) -> None:
    f = error_of(
        api.addresses.AssociateAddress,
        addr_pb.AssociateAddressRequest(id="10.1.1.1", instance_id="inst0"),
    )
    assert (f.code, f.metadata.get("resource_id")) == (grpc.StatusCode.NOT_FOUND, "10.1.1.1")


@pytest.mark.parametrize("missing", ["id", "instance_id"])
def test_associate_without_a_required_field_is_invalid_argument(api: Api, missing: str) -> None:
    fields = {"id": "192.168.0.4", "instance_id": "inst0"} | {missing: ""}
    f = error_of(api.addresses.AssociateAddress, addr_pb.AssociateAddressRequest(**fields))
    assert (f.code, f.reason, f.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        missing,
    )


def test_delete_unknown_address_is_not_found(api: Api) -> None:
    f = error_of(api.addresses.DeleteAddress, addr_pb.DeleteAddressRequest(id="10.9.9.9"))
    assert f.code == grpc.StatusCode.NOT_FOUND


# ---- firewalls ----------------------------------------------------------------------


def create_firewall(api: Api, name: str, description: str = "a firewall") -> fw_pb.Firewall:
    return api.firewalls.CreateFirewall(
        fw_pb.CreateFirewallRequest(name=name, description=description), metadata=MD
    )


def add_rule(api: Api, firewall_id: str, **fields: Any) -> fw_pb.Firewall:
    return api.firewalls.CreateFirewallRule(
        fw_pb.CreateFirewallRuleRequest(firewall_id=firewall_id, **fields), metadata=MD
    )


def firewall(api: Api, firewall_id: str) -> fw_pb.Firewall:
    return api.firewalls.GetFirewall(fw_pb.GetFirewallRequest(id=firewall_id), metadata=MD)


def rule_view(rule: fw_pb.FirewallRule) -> tuple[Any, ...]:
    return (
        rule.protocol,
        rule.port_from,
        rule.port_to,
        [s.cidr or f"fw:{s.firewall_id}" for s in rule.sources],
        rule.direction,
    )


def test_create_firewall_with_name_and_description(api: Api) -> None:
    fw = create_firewall(api, "web", "web servers")
    assert (fw.id, fw.name, fw.description, fw.owner_id, list(fw.rules)) == (
        "web",
        "web",
        "web servers",
        "mockuser",
        [],
    )
    assert firewall(api, "web") == fw
    listed = api.firewalls.ListFirewalls(fw_pb.ListFirewallsRequest(id="web"), metadata=MD)
    assert [f.id for f in listed.firewalls] == ["web"]


@pytest.mark.parametrize(
    ("name", "description", "missing"),
    [("", "no name", "name"), ("nameless-description", "", "description")],
)
def test_create_firewall_needs_name_and_description(
    api: Api, name: str, description: str, missing: str
) -> None:
    f = error_of(
        api.firewalls.CreateFirewall,
        fw_pb.CreateFirewallRequest(name=name, description=description),
    )
    assert (f.code, f.reason, f.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        missing,
    )
    f = error_of(api.firewalls.GetFirewall, fw_pb.GetFirewallRequest(id="nameless-description"))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_create_duplicate_firewall_is_already_exists(api: Api) -> None:
    create_firewall(api, "dup", "first")
    f = error_of(
        api.firewalls.CreateFirewall, fw_pb.CreateFirewallRequest(name="dup", description="second")
    )
    assert (f.code, f.reason) == (grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")
    assert firewall(api, "dup").description == "first"


def test_rules_with_cidr_and_group_sources_are_added_and_deleted(api: Api) -> None:
    create_firewall(api, "app", "application tier")
    create_firewall(api, "lb-tier", "balancers")
    fw = add_rule(
        api,
        "app",
        protocol="tcp",
        port_from=80,
        port_to=80,
        sources=[Source(cidr="0.0.0.0/0"), Source(cidr="10.1.2.3/8")],
    )
    assert [rule_view(r) for r in fw.rules] == [
        ("tcp", 80, 80, ["0.0.0.0/0", "10.0.0.0/8"], Rule.DIRECTION_INGRESS)
    ]
    fw = add_rule(
        api,
        "app",
        protocol="UDP",
        port_from=8000,
        port_to=8100,
        sources=[Source(firewall_id="lb-tier")],
        direction=Rule.DIRECTION_EGRESS,
    )
    fw = add_rule(
        api,
        "app",
        protocol="icmp",
        port_from=-1,
        port_to=-1,
        sources=[Source(cidr="192.168.0.0/16")],
    )
    assert [rule_view(r) for r in fw.rules] == [
        ("tcp", 80, 80, ["0.0.0.0/0", "10.0.0.0/8"], Rule.DIRECTION_INGRESS),
        ("udp", 8000, 8100, ["fw:lb-tier"], Rule.DIRECTION_EGRESS),
        ("icmp", -1, -1, ["192.168.0.0/16"], Rule.DIRECTION_INGRESS),
    ]
    ids = [r.id for r in fw.rules]
    assert len(set(ids)) == 3 and all(ids)
    assert firewall(api, "app") == fw

    after = api.firewalls.DeleteFirewallRule(
        fw_pb.DeleteFirewallRuleRequest(firewall_id="app", id=ids[1]), metadata=MD
    )
    assert [r.id for r in after.rules] == [ids[0], ids[2]]
    assert [r.id for r in firewall(api, "app").rules] == [ids[0], ids[2]]
    f = error_of(
        api.firewalls.DeleteFirewallRule,
        fw_pb.DeleteFirewallRuleRequest(firewall_id="app", id=ids[1]),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


def test_an_identical_rule_is_already_exists(api: Api) -> None:
    create_firewall(api, "same-rule", "x")
    add_rule(
        api,
        "same-rule",
        protocol="tcp",
        port_from=22,
        port_to=22,
        sources=[Source(cidr="10.0.0.0/8")],
    )
    f = error_of(
        api.firewalls.CreateFirewallRule,
        fw_pb.CreateFirewallRuleRequest(
            firewall_id="same-rule",
            protocol="tcp",
            port_from=22,
            port_to=22,
            sources=[Source(cidr="10.0.0.0/8")],
        ),
    )
    assert f.code == grpc.StatusCode.ALREADY_EXISTS
    assert len(firewall(api, "same-rule").rules) == 1


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"protocol": "sctp", "port_from": 1, "port_to": 2}, "INVALID_PROTOCOL"),
        ({"protocol": "tcp", "port_from": 0, "port_to": 65536}, "INVALID_PORT"),
        ({"protocol": "tcp", "port_from": -1, "port_to": 80}, "INVALID_PORT"),
        ({"protocol": "udp", "port_from": 90, "port_to": 80}, "INVALID_PORT_RANGE"),
        ({"protocol": "icmp", "port_from": -2, "port_to": -1}, "INVALID_PORT"),
        # For icmp: a type and a code, each -1..255; every type takes every code.
        ({"protocol": "icmp", "port_from": 256, "port_to": 0}, "INVALID_PORT"),
        ({"protocol": "icmp", "port_from": 8, "port_to": 999}, "INVALID_PORT"),
        ({"protocol": "icmp", "port_from": -1, "port_to": 0}, "INVALID_PORT"),
        # A source setting neither field: ec2 stored the rule as nothing.
        (
            {"protocol": "tcp", "port_from": 1, "port_to": 2, "sources": [Source()]},
            "INVALID_SOURCE",
        ),
        (
            {"protocol": "tcp", "port_from": 1, "port_to": 2, "sources": [Source(cidr="")]},
            "INVALID_SOURCE",
        ),
        (
            {
                "protocol": "tcp",
                "port_from": 1,
                "port_to": 2,
                "sources": [Source(cidr="10.0.0/33")],
            },
            "INVALID_CIDR",
        ),
        # No sources: it became 0.0.0.0/0, open to the whole internet, though the contract
        # says at least one is required.
        ({"protocol": "tcp", "port_from": 22, "port_to": 22, "sources": []}, "MISSING_FIELD"),
    ],
)
def test_bad_protocol_ports_or_cidr_are_invalid_argument_and_add_no_rule(
    api: Api, fields: dict[str, Any], reason: str
) -> None:
    if "strict" not in {
        f.id
        for f in api.firewalls.ListFirewalls(
            fw_pb.ListFirewallsRequest(id="strict"), metadata=MD
        ).firewalls
    }:
        create_firewall(api, "strict", "validation target")
    fields.setdefault("sources", [Source(cidr="0.0.0.0/0")])
    f = error_of(
        api.firewalls.CreateFirewallRule,
        fw_pb.CreateFirewallRuleRequest(firewall_id="strict", **fields),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert list(firewall(api, "strict").rules) == []


def test_an_icmp_rule_takes_a_type_and_a_code(api: Api) -> None:
    """Echo request is ICMP type 8, code 0: port_from 8, port_to 0, as the contract says.
    It was refused INVALID_PORT_RANGE (port_from above port_to), as for a tcp range."""
    create_firewall(api, "pingable", "echo only")
    made = api.firewalls.CreateFirewallRule(
        fw_pb.CreateFirewallRuleRequest(
            firewall_id="pingable",
            protocol="icmp",
            port_from=8,
            port_to=0,
            sources=[Source(cidr="10.0.0.0/8")],
        ),
        metadata=MD,
    )
    assert [(r.protocol, r.port_from, r.port_to) for r in made.rules] == [("icmp", 8, 0)]


def test_rule_naming_an_unknown_source_firewall_is_not_found(api: Api) -> None:
    create_firewall(api, "lonely", "x")
    f = error_of(
        api.firewalls.CreateFirewallRule,
        fw_pb.CreateFirewallRuleRequest(
            firewall_id="lonely",
            protocol="tcp",
            port_from=1,
            port_to=1,
            sources=[Source(firewall_id="ghost")],
        ),
    )
    assert (f.code, f.metadata.get("resource_id")) == (grpc.StatusCode.NOT_FOUND, "ghost")
    assert list(firewall(api, "lonely").rules) == []


def test_rule_on_unknown_firewall_is_not_found(api: Api) -> None:
    f = error_of(
        api.firewalls.CreateFirewallRule,
        fw_pb.CreateFirewallRuleRequest(
            firewall_id="ghost",
            protocol="tcp",
            port_from=1,
            port_to=1,
            sources=[Source(cidr="0.0.0.0/0")],
        ),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


def test_delete_firewall_removes_it(api: Api) -> None:
    create_firewall(api, "temporary", "x")
    result = api.firewalls.DeleteFirewall(fw_pb.DeleteFirewallRequest(id="temporary"), metadata=MD)
    assert result == empty_pb2.Empty()
    f = error_of(api.firewalls.GetFirewall, fw_pb.GetFirewallRequest(id="temporary"))
    assert f.code == grpc.StatusCode.NOT_FOUND
    f = error_of(api.firewalls.DeleteFirewall, fw_pb.DeleteFirewallRequest(id="temporary"))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_delete_firewall_used_by_an_instance_is_refused(api: Api) -> None:
    create_firewall(api, "guarded", "x")
    created = api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="img1", firewall_ids=["guarded", "guarded"]),
        metadata=MD,
    )
    instance_id = created.instances[0].id
    assert list(created.instances[0].firewall_ids) == ["guarded"]  # named twice, one firewall
    f = error_of(api.firewalls.DeleteFirewall, fw_pb.DeleteFirewallRequest(id="guarded"))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FIREWALL_IN_USE")
    assert instance_id in f.metadata.get("instance_ids", "").split(",")
    assert firewall(api, "guarded").id == "guarded"


def test_delete_firewall_used_as_a_rule_source_is_refused(api: Api) -> None:
    create_firewall(api, "source-group", "x")
    create_firewall(api, "user-group", "x")
    add_rule(
        api,
        "user-group",
        protocol="tcp",
        port_from=5432,
        port_to=5432,
        sources=[Source(firewall_id="source-group")],
    )
    f = error_of(api.firewalls.DeleteFirewall, fw_pb.DeleteFirewallRequest(id="source-group"))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FIREWALL_IN_USE")
    assert f.metadata.get("firewall_ids") == "user-group"
    assert firewall(api, "source-group").id == "source-group"
    # Once the rule is gone, the group can go too.
    rule_id = firewall(api, "user-group").rules[0].id
    api.firewalls.DeleteFirewallRule(
        fw_pb.DeleteFirewallRuleRequest(firewall_id="user-group", id=rule_id), metadata=MD
    )
    api.firewalls.DeleteFirewall(fw_pb.DeleteFirewallRequest(id="source-group"), metadata=MD)


# ---- load balancers -----------------------------------------------------------------


def listener(
    protocol: str = "HTTP", lb_port: int = 80, instance_port: int = 8080
) -> lb_pb.Listener:
    return lb_pb.Listener(
        protocol=protocol, load_balancer_port=lb_port, instance_port=instance_port
    )


def create_lb(api: Api, name: str, realm_ids: list[str], listeners: list[lb_pb.Listener]) -> Any:
    return api.load_balancers.CreateLoadBalancer(
        lb_pb.CreateLoadBalancerRequest(name=name, realm_ids=realm_ids, listeners=listeners),
        metadata=MD,
    )


def register(api: Api, lb_id: str, instance_id: str) -> lb_pb.LoadBalancer:
    return api.load_balancers.RegisterInstance(
        lb_pb.RegisterInstanceRequest(id=lb_id, instance_id=instance_id), metadata=MD
    )


def unregister(api: Api, lb_id: str, instance_id: str) -> lb_pb.LoadBalancer:
    return api.load_balancers.UnregisterInstance(
        lb_pb.UnregisterInstanceRequest(id=lb_id, instance_id=instance_id), metadata=MD
    )


def test_create_load_balancer_with_realms_and_listeners(api: Api) -> None:
    lb = create_lb(
        api, "front", ["us", "eu"], [listener("http", 80, 8080), listener("TCP", 443, 8443)]
    )
    assert (lb.id, lb.name, list(lb.realm_ids), list(lb.instance_ids)) == (
        "front",
        "front",
        ["us", "eu"],
        [],
    )
    assert [(li.protocol, li.load_balancer_port, li.instance_port) for li in lb.listeners] == [
        ("HTTP", 80, 8080),
        ("TCP", 443, 8443),
    ]
    assert len(lb.public_addresses) == 1 and lb.public_addresses[0]
    assert lb.HasField("create_time")
    got = api.load_balancers.GetLoadBalancer(lb_pb.GetLoadBalancerRequest(id="front"), metadata=MD)
    assert got == lb
    listed = api.load_balancers.ListLoadBalancers(lb_pb.ListLoadBalancersRequest(), metadata=MD)
    assert "front" in [b.id for b in listed.load_balancers]


def test_register_and_unregister_instances(api: Api) -> None:
    create_lb(api, "pool", ["us"], [listener()])
    assert list(register(api, "pool", "inst0").instance_ids) == ["inst0"]
    assert list(register(api, "pool", "inst2").instance_ids) == ["inst0", "inst2"]
    assert list(unregister(api, "pool", "inst0").instance_ids) == ["inst2"]
    got = api.load_balancers.GetLoadBalancer(lb_pb.GetLoadBalancerRequest(id="pool"), metadata=MD)
    assert list(got.instance_ids) == ["inst2"]
    f = error_of(
        api.load_balancers.UnregisterInstance,
        lb_pb.UnregisterInstanceRequest(id="pool", instance_id="inst0"),
    )
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_register_unknown_instance_is_not_found(api: Api) -> None:
    create_lb(api, "pool2", ["us"], [listener()])
    f = error_of(
        api.load_balancers.RegisterInstance,
        lb_pb.RegisterInstanceRequest(id="pool2", instance_id="inst99"),
    )
    assert (f.code, f.reason, f.metadata.get("resource_id")) == (
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "inst99",
    )
    f = error_of(
        api.load_balancers.RegisterInstance,
        lb_pb.RegisterInstanceRequest(id="no-such-lb", instance_id="inst0"),
    )
    assert (f.code, f.metadata.get("resource_id")) == (grpc.StatusCode.NOT_FOUND, "no-such-lb")


def test_register_an_instance_of_a_realm_the_balancer_does_not_serve_is_refused(
    api: Api,
) -> None:
    create_lb(api, "us-only", ["us"], [listener()])
    f = error_of(
        api.load_balancers.RegisterInstance,
        lb_pb.RegisterInstanceRequest(id="us-only", instance_id="inst3"),  # inst3 is in eu
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REALM_MISMATCH")
    got = api.load_balancers.GetLoadBalancer(
        lb_pb.GetLoadBalancerRequest(id="us-only"), metadata=MD
    )
    assert list(got.instance_ids) == []


@pytest.mark.parametrize(
    ("listeners", "reason"),
    [
        ([listener(lb_port=0)], "INVALID_PORT"),
        ([listener(instance_port=65536)], "INVALID_PORT"),
        ([listener(), listener(lb_port=-80)], "INVALID_PORT"),
        ([listener(protocol="")], "MISSING_FIELD"),
        ([listener(protocol="FTP")], "INVALID_PROTOCOL"),
        ([], "MISSING_FIELD"),
        ([listener(), listener()], "DUPLICATE_LISTENER"),
        ([listener(), listener(protocol="TCP", instance_port=9090)], "DUPLICATE_LISTENER"),
    ],
)
def test_bad_listeners_are_invalid_argument_and_create_nothing(
    api: Api, listeners: list[lb_pb.Listener], reason: str
) -> None:
    f = error_of(
        api.load_balancers.CreateLoadBalancer,
        lb_pb.CreateLoadBalancerRequest(name="bad", realm_ids=["us"], listeners=listeners),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    f = error_of(api.load_balancers.GetLoadBalancer, lb_pb.GetLoadBalancerRequest(id="bad"))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_create_load_balancer_without_realms_or_in_unknown_realm_is_refused(api: Api) -> None:
    f = error_of(
        api.load_balancers.CreateLoadBalancer,
        lb_pb.CreateLoadBalancerRequest(name="norealm", listeners=[listener()]),
    )
    assert (f.code, f.reason, f.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        "realm_ids",
    )
    f = error_of(
        api.load_balancers.CreateLoadBalancer,
        lb_pb.CreateLoadBalancerRequest(name="mars", realm_ids=["mars"], listeners=[listener()]),
    )
    assert (f.code, f.metadata.get("resource_type")) == (grpc.StatusCode.NOT_FOUND, "realm")


def test_duplicate_load_balancer_is_already_exists(api: Api) -> None:
    create_lb(api, "twice", ["us"], [listener()])
    f = error_of(
        api.load_balancers.CreateLoadBalancer,
        lb_pb.CreateLoadBalancerRequest(name="twice", realm_ids=["eu"], listeners=[listener()]),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")


def test_delete_load_balancer_removes_it(api: Api) -> None:
    create_lb(api, "doomed", ["eu"], [listener()])
    register(api, "doomed", "inst3")
    result = api.load_balancers.DeleteLoadBalancer(
        lb_pb.DeleteLoadBalancerRequest(id="doomed"), metadata=MD
    )
    assert result == empty_pb2.Empty()
    f = error_of(api.load_balancers.GetLoadBalancer, lb_pb.GetLoadBalancerRequest(id="doomed"))
    assert f.code == grpc.StatusCode.NOT_FOUND
    f = error_of(
        api.load_balancers.DeleteLoadBalancer, lb_pb.DeleteLoadBalancerRequest(id="doomed")
    )
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_fixture_addresses_are_unassociated_at_the_end(api: Api) -> None:
    """Runs last: the mutating tests above used addresses of their own."""
    response = api.addresses.ListAddresses(addr_pb.ListAddressesRequest(), metadata=MD)
    wanted = [f"192.168.0.{n}" for n in range(1, 5)]
    fixtures = [(a.id, a.instance_id) for a in response.addresses if a.id in wanted]
    assert fixtures == [(ip, "") for ip in wanted]
