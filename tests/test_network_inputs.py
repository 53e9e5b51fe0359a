"""What the network collections take, the same on the mock and on ec2 (against moto's
standalone server), through the real server: CIDR blocks, rule sources and overlaps,
firewalls still in use, listener protocols, realm ids and registering twice. Each refusal
is a precise status with ErrorInfo and changes nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from conftest import Api
from ec2_support import MotoServer
from test_ec2_driver import EC2, X86_IMAGE, ec2_server, serving

from deltacloud.v1 import common_pb2, instance_pb2
from deltacloud.v1 import firewall_pb2 as fw_pb
from deltacloud.v1 import load_balancer_pb2 as lb_pb
from support import MD, Failure, failure

Source = fw_pb.FirewallRuleSource
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@dataclass
class Cloud:
    """One driver behind the server, and what its tests need of it."""

    name: str
    api: Api
    md: Sequence[tuple[str, str]]
    image_id: str
    realm_id: str


@pytest.fixture(scope="module")
def mock_cloud(api: Api) -> Cloud:
    return Cloud("mock", api, MD, "img1", "us")


@pytest.fixture(scope="module")
def api(server: Any) -> Iterator[Api]:  # module scope: shared by both clouds' fixtures
    channel = grpc.insecure_channel(server.target)
    try:
        yield Api(channel)
    finally:
        channel.close()


@pytest.fixture(scope="module")
def ec2_cloud(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    for api in serving(ec2_server(tmp_path_factory.mktemp("ec2-network"), moto)):
        yield Cloud("ec2", api, EC2, X86_IMAGE, "us-east-1a")


@pytest.fixture(params=["mock", "ec2"])
def cloud(request: pytest.FixtureRequest) -> Cloud:
    chosen: Cloud = request.getfixturevalue(f"{request.param}_cloud")
    return chosen


def refused(cloud: Cloud, call: Any, request: Any) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=cloud.md, timeout=20)
    return failure(caught.value)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_firewall(cloud: Cloud) -> fw_pb.Firewall:
    return cloud.api.firewalls.CreateFirewall(
        fw_pb.CreateFirewallRequest(name=_name("fw"), description="network inputs"),
        metadata=cloud.md,
    )


def get_firewall(cloud: Cloud, firewall_id: str) -> fw_pb.Firewall:
    return cloud.api.firewalls.GetFirewall(
        fw_pb.GetFirewallRequest(id=firewall_id), metadata=cloud.md
    )


def rule_request(firewall_id: str, **fields: Any) -> fw_pb.CreateFirewallRuleRequest:
    fields.setdefault("protocol", "tcp")
    fields.setdefault("port_from", 5000)
    fields.setdefault("port_to", 5000)
    return fw_pb.CreateFirewallRuleRequest(firewall_id=firewall_id, **fields)


def add_rule(cloud: Cloud, firewall_id: str, **fields: Any) -> fw_pb.Firewall:
    return cloud.api.firewalls.CreateFirewallRule(
        rule_request(firewall_id, **fields), metadata=cloud.md
    )


def rule_with_port(firewall: fw_pb.Firewall, port: int) -> fw_pb.FirewallRule:
    [rule] = [r for r in firewall.rules if r.port_from == port]
    return rule


def new_instance(cloud: Cloud, **fields: Any) -> instance_pb2.Instance:
    request = instance_pb2.CreateInstanceRequest(
        image_id=cloud.image_id, realm_id=cloud.realm_id, **fields
    )
    created = cloud.api.instances.CreateInstance(request, metadata=cloud.md, timeout=20)
    return created.instances[0]


def destroy(cloud: Cloud, instance_id: str) -> None:
    """Stop (once running) and destroy an instance, whatever its driver's machine asks."""
    instances = cloud.api.instances
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = instances.GetInstance(
            instance_pb2.GetInstanceRequest(id=instance_id), metadata=cloud.md
        ).state
        try:
            if state == common_pb2.INSTANCE_STATE_RUNNING:
                instances.StopInstance(
                    instance_pb2.StopInstanceRequest(id=instance_id), metadata=cloud.md
                )
            elif state == common_pb2.INSTANCE_STATE_STOPPED:
                instances.DeleteInstance(
                    instance_pb2.DeleteInstanceRequest(id=instance_id), metadata=cloud.md
                )
                return
        except grpc.RpcError:
            pass  # moved on meanwhile: look again
        time.sleep(0.2)
    raise AssertionError(f"instance {instance_id} was not destroyed")


# ---- CIDR blocks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cidr",
    [
        "10.0.0.1/33",  # prefix too long
        "300.1.1.1/8",  # not an address
        "2001:db8::1/129",
        "10.0.0.1",  # no prefix: the mock took it as /32, EC2 refuses it
        "10.0.0.0/255.0.0.0",  # a netmask, not a prefix length: the mock took it
        "10.0.0.0/0.255.255.255",  # a host mask: the mock took it
        "10.0.0.0/08",  # the mock took it
        "10.0.0.0/+8",
        "10.0.0.0/ 8",
        " 10.0.0.0/8",
        "fe80::1%eth0/64",  # a scoped address: both took it (the mock dropping the scope)
        "\uff110.0.0.0/8",  # a fullwidth digit
        "10.0.0.0/8/8",
        "10.0.0.0/8,11.0.0.0/8",
    ],
)
def test_a_cidr_block_that_is_not_one_is_refused_by_the_server(cloud: Cloud, cidr: str) -> None:
    """INVALID_ARGUMENT (INVALID_CIDR) before any driver work, on every driver: the mock
    took some of these (and refused others as VALIDATION_FAILED), ec2 sent them to the
    cloud (moto stored the scoped one; the others came back BACKEND_REFUSED_PARAMETERS)."""
    firewall = new_firewall(cloud)
    f = refused(
        cloud,
        cloud.api.firewalls.CreateFirewallRule,
        rule_request(firewall.id, sources=[Source(cidr=cidr)]),
    )
    assert (f.code, f.reason, f.metadata.get("field")) == (INVALID, "INVALID_CIDR", "sources")
    assert "backend_code" not in f.metadata, f.metadata
    assert get_firewall(cloud, firewall.id) == firewall


def test_cidr_blocks_are_kept_as_networks_on_every_driver(cloud: Cloud) -> None:
    """Host bits cleared, IPv6 compressed and in lower case: ec2 kept what it was sent
    ("10.1.2.3/8"), the mock the network, so the same rule read differently."""
    firewall = new_firewall(cloud)
    made = add_rule(
        cloud,
        firewall.id,
        sources=[Source(cidr="10.1.2.3/8"), Source(cidr="2001:DB8:0:0::1/32")],
    )
    assert [s.cidr for s in rule_with_port(made, 5000).sources] == ["10.0.0.0/8", "2001:db8::/32"]


@pytest.mark.parametrize(
    "sources",
    [
        [Source(cidr="10.0.0.0/8"), Source(cidr="10.0.0.0/8")],
        [Source(cidr="10.0.0.0/8"), Source(cidr="10.1.2.3/8")],  # the same network
        [Source(cidr="::/0"), Source(cidr="0:0::/0")],
    ],
)
def test_a_source_named_twice_in_one_rule_is_invalid_argument(
    cloud: Cloud, sources: list[fw_pb.FirewallRuleSource]
) -> None:
    """The mock stored the source twice; EC2 answered ALREADY_EXISTS naming rule '?'."""
    firewall = new_firewall(cloud)
    f = refused(
        cloud, cloud.api.firewalls.CreateFirewallRule, rule_request(firewall.id, sources=sources)
    )
    assert (f.code, f.reason, f.metadata.get("field")) == (INVALID, "DUPLICATE_SOURCE", "sources")
    assert get_firewall(cloud, firewall.id) == firewall


def test_a_firewall_named_twice_as_a_source_is_invalid_argument(cloud: Cloud) -> None:
    firewall = new_firewall(cloud)
    twice = [Source(firewall_id=firewall.id), Source(firewall_id=firewall.id)]
    f = refused(
        cloud, cloud.api.firewalls.CreateFirewallRule, rule_request(firewall.id, sources=twice)
    )
    assert (f.code, f.reason) == (INVALID, "DUPLICATE_SOURCE")
    assert get_firewall(cloud, firewall.id) == firewall


def test_a_rule_of_many_sources_is_checked_in_linear_time(mock_cloud: Cloud) -> None:
    """Each source is looked for among those before it in a set: a list made the check
    quadratic, and 20,000 sources (about 400 KiB) held the server past any deadline."""
    firewall = new_firewall(mock_cloud)
    networks = [f"10.{n // 256}.{n % 256}.0/24" for n in range(20_000)]
    made = mock_cloud.api.firewalls.CreateFirewallRule(
        rule_request(firewall.id, sources=[Source(cidr=c) for c in networks]),
        metadata=mock_cloud.md,
        timeout=10,
    )
    assert [s.cidr for s in rule_with_port(made, 5000).sources] == networks


# ---- overlapping rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    "again",
    [
        ["11.0.0.0/8", "10.0.0.0/8"],  # the same sources in another order
        ["10.0.0.0/8", "12.0.0.0/8"],  # one source allowed already, one new
        ["11.0.0.0/8"],  # one of them alone
    ],
)
def test_a_rule_allowing_what_the_firewall_allows_already_is_already_exists(
    cloud: Cloud, again: list[str]
) -> None:
    """ALREADY_EXISTS naming the rule that allows it, on every driver, and nothing changes.
    The mock took each of these as a new rule; ec2 (EC2 refuses them all) named rule '?'."""
    firewall = new_firewall(cloud)
    made = add_rule(
        cloud, firewall.id, sources=[Source(cidr="10.0.0.0/8"), Source(cidr="11.0.0.0/8")]
    )
    existing = rule_with_port(made, 5000)
    f = refused(
        cloud,
        cloud.api.firewalls.CreateFirewallRule,
        rule_request(firewall.id, sources=[Source(cidr=c) for c in again]),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")
    assert (f.metadata["resource_type"], f.metadata["resource_id"]) == (
        "firewall_rule",
        existing.id,
    )
    assert f.metadata["firewall_id"] == firewall.id
    assert get_firewall(cloud, firewall.id) == made


def test_the_same_source_on_other_ports_or_in_the_other_direction_is_a_new_rule(
    cloud: Cloud,
) -> None:
    firewall = new_firewall(cloud)
    ten = [Source(cidr="10.0.0.0/8")]
    add_rule(cloud, firewall.id, sources=ten)
    add_rule(cloud, firewall.id, sources=ten, port_from=5001, port_to=5001)
    egress = fw_pb.FirewallRule.DIRECTION_EGRESS
    made = add_rule(cloud, firewall.id, sources=ten, direction=egress)
    ours = [(r.port_from, r.direction) for r in made.rules if r.port_from in (5000, 5001)]
    ingress = fw_pb.FirewallRule.DIRECTION_INGRESS
    assert sorted(ours) == [(5000, ingress), (5000, egress), (5001, ingress)]


# ---- firewalls in use ---------------------------------------------------------------------


def test_a_firewall_an_instance_uses_is_not_deleted(cloud: Cloud) -> None:
    """FAILED_PRECONDITION (FIREWALL_IN_USE) naming the instance, as the proto says: ec2
    deleted it (moto does not check; EC2 answers DependencyViolation, reason IN_USE)."""
    firewall = new_firewall(cloud)
    instance = new_instance(cloud, firewall_ids=[firewall.id])
    f = refused(
        cloud, cloud.api.firewalls.DeleteFirewall, fw_pb.DeleteFirewallRequest(id=firewall.id)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FIREWALL_IN_USE")
    assert f.metadata["instance_ids"].split(",") == [instance.id]
    assert get_firewall(cloud, firewall.id) == firewall
    destroy(cloud, instance.id)  # a destroyed instance holds it no more
    cloud.api.firewalls.DeleteFirewall(
        fw_pb.DeleteFirewallRequest(id=firewall.id), metadata=cloud.md
    )


def test_a_firewall_another_names_as_a_source_is_not_deleted(cloud: Cloud) -> None:
    source, user = new_firewall(cloud), new_firewall(cloud)
    add_rule(cloud, user.id, sources=[Source(firewall_id=source.id)])
    f = refused(
        cloud, cloud.api.firewalls.DeleteFirewall, fw_pb.DeleteFirewallRequest(id=source.id)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FIREWALL_IN_USE")
    assert f.metadata["firewall_ids"] == user.id
    assert get_firewall(cloud, source.id) == source
    assert [s.firewall_id for s in rule_with_port(get_firewall(cloud, user.id), 5000).sources] == [
        source.id
    ]


def test_a_firewall_naming_itself_as_a_source_is_deleted(cloud: Cloud) -> None:
    firewall = new_firewall(cloud)
    add_rule(cloud, firewall.id, sources=[Source(firewall_id=firewall.id)])
    cloud.api.firewalls.DeleteFirewall(
        fw_pb.DeleteFirewallRequest(id=firewall.id), metadata=cloud.md
    )
    f = refused(cloud, cloud.api.firewalls.GetFirewall, fw_pb.GetFirewallRequest(id=firewall.id))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_the_default_security_group_is_not_deleted(ec2_cloud: Cloud, moto: MotoServer) -> None:
    """EC2 never deletes a network's default group (CannotDelete); moto did."""
    groups = moto.client("ec2").describe_security_groups()["SecurityGroups"]
    default = next(g["GroupId"] for g in groups if g["GroupName"] == "default")
    f = refused(
        ec2_cloud, ec2_cloud.api.firewalls.DeleteFirewall, fw_pb.DeleteFirewallRequest(id=default)
    )
    assert (f.code, f.reason, f.metadata["firewall_id"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DEFAULT_FIREWALL",
        default,
    )
    assert get_firewall(ec2_cloud, default).id == default


# ---- load balancers -----------------------------------------------------------------------


def listener(protocol: str, port: int = 8080) -> lb_pb.Listener:
    return lb_pb.Listener(protocol=protocol, load_balancer_port=port, instance_port=port)


def create_lb(cloud: Cloud, **fields: Any) -> lb_pb.LoadBalancer:
    fields.setdefault("realm_ids", [cloud.realm_id])
    fields.setdefault("listeners", [listener("TCP")])
    request = lb_pb.CreateLoadBalancerRequest(name=_name("lb"), **fields)
    return cloud.api.load_balancers.CreateLoadBalancer(request, metadata=cloud.md)


@pytest.mark.parametrize("protocol", ["FTP", "udp", " HTTP", "HTTP ", "http2", "\u017fsl"])
def test_a_listener_protocol_no_balancer_speaks_is_refused_by_the_server(
    cloud: Cloud, protocol: str
) -> None:
    """INVALID_ARGUMENT (INVALID_PROTOCOL) on every driver: ec2 made the balancer (moto takes
    any protocol), the mock refused it as VALIDATION_FAILED. ("\u017fsl" upper-cases to SSL.)"""
    name = _name("lb")
    request = lb_pb.CreateLoadBalancerRequest(
        name=name, realm_ids=[cloud.realm_id], listeners=[listener("TCP", 80), listener(protocol)]
    )
    f = refused(cloud, cloud.api.load_balancers.CreateLoadBalancer, request)
    assert (f.code, f.reason, f.metadata.get("field")) == (INVALID, "INVALID_PROTOCOL", "protocol")
    f = refused(
        cloud, cloud.api.load_balancers.GetLoadBalancer, lb_pb.GetLoadBalancerRequest(id=name)
    )
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_listener_protocols_are_answered_in_capitals(cloud: Cloud) -> None:
    """As the proto says ("HTTP", "HTTPS", "TCP" or "SSL"): ec2 answered "http"."""
    made = create_lb(
        cloud, listeners=[listener("http", 80), listener("Tcp", 8080), listener("ssl", 8443)]
    )
    expected = [("HTTP", 80), ("TCP", 8080), ("SSL", 8443)]
    assert [(li.protocol, li.load_balancer_port) for li in made.listeners] == expected
    got = cloud.api.load_balancers.GetLoadBalancer(
        lb_pb.GetLoadBalancerRequest(id=made.id), metadata=cloud.md
    )
    assert [(li.protocol, li.load_balancer_port) for li in got.listeners] == expected


def test_an_empty_realm_id_is_invalid_argument(cloud: Cloud) -> None:
    """It was NOT_FOUND (realm '') on both drivers: an empty id is a malformed request."""
    name = _name("lb")
    request = lb_pb.CreateLoadBalancerRequest(
        name=name, realm_ids=[cloud.realm_id, ""], listeners=[listener("TCP")]
    )
    f = refused(cloud, cloud.api.load_balancers.CreateLoadBalancer, request)
    assert (f.code, f.reason, f.metadata.get("field")) == (INVALID, "MISSING_FIELD", "realm_ids")
    f = refused(
        cloud, cloud.api.load_balancers.GetLoadBalancer, lb_pb.GetLoadBalancerRequest(id=name)
    )
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_registering_an_instance_twice_changes_nothing(cloud: Cloud) -> None:
    """ec2 listed the instance twice after the second registration (moto kept both)."""
    balancer = create_lb(cloud)
    instance = new_instance(cloud)
    register = cloud.api.load_balancers.RegisterInstance
    request = lb_pb.RegisterInstanceRequest(id=balancer.id, instance_id=instance.id)
    first = register(request, metadata=cloud.md)
    again = register(request, metadata=cloud.md)
    assert list(first.instance_ids) == list(again.instance_ids) == [instance.id]
    out = cloud.api.load_balancers.UnregisterInstance(
        lb_pb.UnregisterInstanceRequest(id=balancer.id, instance_id=instance.id),
        metadata=cloud.md,
    )
    assert list(out.instance_ids) == []


def test_unregistering_an_instance_not_registered_names_the_balancer(cloud: Cloud) -> None:
    """NOT_FOUND for the instance with the balancer's id on every driver: the mock looked
    the instance up first, so an unknown one came without load_balancer_id."""
    balancer = create_lb(cloud)
    instance = new_instance(cloud)
    unregister = cloud.api.load_balancers.UnregisterInstance
    for instance_id in (instance.id, "i-0123456789abcdef0"):
        request = lb_pb.UnregisterInstanceRequest(id=balancer.id, instance_id=instance_id)
        f = refused(cloud, unregister, request)
        assert (f.code, f.metadata.get("resource_id"), f.metadata.get("load_balancer_id")) == (
            grpc.StatusCode.NOT_FOUND,
            instance_id,
            balancer.id,
        ), instance_id


def test_listeners_are_checked_in_linear_time(mock_cloud: Cloud) -> None:
    """Each listener's port was counted in the list of all of them: 40,000 listeners (about
    600 KiB) held the server's event loop, and every other call with it, for 20 s."""
    listeners = [listener("TCP", port) for port in range(1, 40_001)] + [listener("TCP", 40_000)]
    name = _name("lb")
    request = lb_pb.CreateLoadBalancerRequest(
        name=name, realm_ids=[mock_cloud.realm_id], listeners=listeners
    )
    with pytest.raises(grpc.RpcError) as caught:
        mock_cloud.api.load_balancers.CreateLoadBalancer(
            request, metadata=mock_cloud.md, timeout=10
        )
    f = failure(caught.value)
    assert (f.code, f.reason, f.metadata["load_balancer_port"]) == (
        INVALID,
        "DUPLICATE_LISTENER",
        "40000",
    )
