"""The EC2 driver through the real server against moto's standalone server on loopback:
each collection's happy path and main refusals, the watch stream of an EC2 instance, an
instance started behind our back, an outage of the endpoint, and a multipart blob. The
conformance kit covers the generic contract (tests/test_conformance_ec2.py)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from blackhole import Blackhole
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from conftest import Api, PlainServer, ServerProcess
from ec2_support import (
    ACCESS_KEY,
    AMIS,
    SECRET_KEY,
    MotoServer,
    server_flags,
)
from google.protobuf import duration_pb2
from scrape import metrics_address, parse, scrape, value
from watching import Watcher, transitions

from deltacloud.drivers import (
    BackendUnavailableError,
    CallContext,
    Credentials,
    DriverConfig,
    ValidationError,
)
from deltacloud.drivers import models as m
from deltacloud.drivers.ec2 import EC2Driver
from deltacloud.drivers.ec2 import storage as ec2_storage
from deltacloud.drivers.ec2.budget import ByteBudget, shared_budget
from deltacloud.drivers.ec2.clients import (
    TIMEOUT_CLASSES,
    Budget,
    attempt_outcome,
    timeout_class,
)
from deltacloud.drivers.ec2.errors import translate
from deltacloud.drivers.ec2.storage import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    part_size_for,
)
from deltacloud.server.config import ServerConfig
from deltacloud.server.events.hub import POLL_DEADLINE
from deltacloud.server.gateway import MAX_UNLISTED_PROVIDERS, Gateway
from deltacloud.v1 import (
    address_pb2,
    bucket_pb2,
    common_pb2,
    discovery_pb2,
    firewall_pb2,
    hardware_profile_pb2,
    image_pb2,
    instance_pb2,
    key_pb2,
    load_balancer_pb2,
    realm_pb2,
    storage_snapshot_pb2,
    storage_volume_pb2,
)
from support import Failure, downloads_while_replaced, failure, metadata, uploads_racing

S = common_pb2.InstanceState
MIB = 1024 * 1024
EC2 = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2")
X86_IMAGE, ARM_IMAGE = AMIS[0]["ami_id"], AMIS[1]["ami_id"]


def ec2_server(
    data_dir: Path, moto: MotoServer, extra: Sequence[str] = (), **options: str
) -> ServerProcess:
    args = [
        *server_flags(moto, **options),
        "--watch-fast-poll-interval",
        "0.1",
        "--watch-poll-interval",
        "0.3",
        *extra,
    ]
    return PlainServer(data_dir, extra_args=args).start()


def serving(server: ServerProcess) -> Iterator[Api]:
    """An Api on ``server`` until the fixture ends, then the server is stopped."""
    channel = grpc.insecure_channel(server.target)
    try:
        yield Api(channel)
    finally:
        channel.close()
        server.kill()


@pytest.fixture(scope="module")
def ec2_api(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = ec2_server(
        tmp_path_factory.mktemp("ec2"),
        moto,
        multipart_threshold="5MiB",
        image_owners="self,amazon",
    )
    yield from serving(server)


def refusal(call: object, request: object, md: object = EC2, timeout: float = 15) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=md, timeout=timeout)  # type: ignore[operator]
    return failure(caught.value)


def _named(f: Failure) -> tuple[grpc.StatusCode, str, str]:
    """A refusal's code and the resource it names."""
    return f.code, f.metadata["resource_type"], f.metadata["resource_id"]


def create(api: Api, **fields: object) -> instance_pb2.Instance:
    request = instance_pb2.CreateInstanceRequest(image_id=X86_IMAGE, **fields)  # type: ignore[arg-type]
    return api.instances.CreateInstance(request, metadata=EC2, timeout=15).instances[0]


def get(api: Api, instance_id: str) -> instance_pb2.Instance:
    return api.instances.GetInstance(instance_pb2.GetInstanceRequest(id=instance_id), metadata=EC2)


# ---- discovery, realms, profiles, images --------------------------------------------------


def test_regions_are_the_providers(ec2_api: Api) -> None:
    [driver] = ec2_api.discovery.ListDrivers(discovery_pb2.ListDriversRequest(id="ec2")).drivers
    regions = [p.id for p in driver.providers]
    assert {"us-east-1", "eu-west-1", "ap-southeast-2"} <= set(regions)
    caps = ec2_api.discovery.GetCapabilities(discovery_pb2.GetCapabilitiesRequest(), metadata=EC2)
    assert (caps.driver_id, caps.provider_id) == ("ec2", "us-east-1")


def test_an_unknown_region_is_refused_and_endpoint_providers_need_permission(ec2_api: Api) -> None:
    md = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2", provider="mars-north-9x")
    f = refusal(ec2_api.realms.ListRealms, realm_pb2.ListRealmsRequest(), md)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_PROVIDER")
    md = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2", provider="us-east-1@http://10.0.0.1:1")
    f = refusal(ec2_api.realms.ListRealms, realm_pb2.ListRealmsRequest(), md)
    assert (f.code, f.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PROVIDER_ENDPOINT_NOT_ALLOWED",
    )
    # Endpoints no URL parser takes (an unclosed IPv6 bracket raised ValueError: UNKNOWN).
    # A URL carrying a user too (the call's credentials are the only ones; with a password
    # the server refuses it before the driver, as CREDENTIALS_IN_PROVIDER).
    for endpoint in ("http://[::1", "http://host:port", "http://:80", "ftp://host", "http://u@h"):
        md = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2", provider=f"us-east-1@{endpoint}")
        f = refusal(ec2_api.realms.ListRealms, realm_pb2.ListRealmsRequest(), md)
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_PROVIDER")
    md = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2", provider="us-east-1@http://u:pw@h")
    f = refusal(ec2_api.realms.ListRealms, realm_pb2.ListRealmsRequest(), md)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CREDENTIALS_IN_PROVIDER")
    assert "pw" not in f.message + str(f.metadata)


def test_missing_credentials_are_unauthenticated(ec2_api: Api) -> None:
    md = [(k, v) for k, v in EC2 if k != "authorization"]
    f = refusal(ec2_api.realms.ListRealms, realm_pb2.ListRealmsRequest(), md)
    assert f.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture(scope="module")
def signed_api(
    authenticating_moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """Our server in front of a moto that checks signatures against its IAM, as AWS does."""
    yield from serving(ec2_server(tmp_path_factory.mktemp("ec2-signed"), authenticating_moto))


@pytest.mark.parametrize(
    ("service", "call", "request_"),
    [
        ("EC2", "instances.ListInstances", instance_pb2.ListInstancesRequest()),
        ("S3", "buckets.ListBuckets", bucket_pb2.ListBucketsRequest()),
        ("ELB", "load_balancers.ListLoadBalancers", load_balancer_pb2.ListLoadBalancersRequest()),
    ],
)
def test_credentials_the_backend_refuses_are_unauthenticated(
    signed_api: Api, authenticating_moto: MotoServer, service: str, call: str, request_: object
) -> None:
    stub, rpc = call.split(".")
    method = getattr(getattr(signed_api, stub), rpc)
    good = metadata(authenticating_moto.access_key, authenticating_moto.secret_key, driver="ec2")
    method(request_, metadata=good, timeout=15)  # the account's own keys work
    for access_key, secret in [
        (authenticating_moto.access_key, authenticating_moto.secret_key + "-wrong"),
        ("AKIAUNKNOWNTOMOTO00", "whatever"),
    ]:
        f = refusal(method, request_, metadata(access_key, secret, driver="ec2"))
        assert f.code == grpc.StatusCode.UNAUTHENTICATED, service
        assert f.reason == "AUTHENTICATION_FAILED", (service, f.reason)
        assert secret not in f.message and authenticating_moto.secret_key not in f.message


def test_realms_are_availability_zones(ec2_api: Api) -> None:
    realms = ec2_api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=EC2).realms
    assert "us-east-1a" in [r.id for r in realms]
    eu = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2", provider="eu-west-1")
    realms = ec2_api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=eu).realms
    assert all(r.id.startswith("eu-west-1") for r in realms) and realms


def test_hardware_profiles_are_instance_types_with_fixed_properties(ec2_api: Api) -> None:
    profiles = ec2_api.hardware_profiles.ListHardwareProfiles(
        hardware_profile_pb2.ListHardwareProfilesRequest(), metadata=EC2
    ).hardware_profiles
    assert [p.id for p in profiles] == ["m5.large", "t2.micro", "t3.micro", "t3.small", "t4g.micro"]
    m5 = next(p for p in profiles if p.id == "m5.large")
    K = common_pb2.HardwareProperty
    assert (m5.cpu.kind, m5.cpu.default_value.number) == (K.KIND_FIXED, 2)
    assert m5.memory.default_value.number == 8192
    assert m5.architecture.default_value.text == "x86_64"
    arm = ec2_api.hardware_profiles.ListHardwareProfiles(
        hardware_profile_pb2.ListHardwareProfilesRequest(architecture="arm64"), metadata=EC2
    ).hardware_profiles
    assert [p.id for p in arm] == ["t4g.micro"]


def test_images_filter_on_owner_and_architecture_in_the_backend(ec2_api: Api) -> None:
    def ids(**filters: str) -> list[str]:
        reply = ec2_api.images.ListImages(image_pb2.ListImagesRequest(**filters), metadata=EC2)  # type: ignore[arg-type]
        return [i.id for i in reply.images]

    everything = ids()
    assert {a["ami_id"] for a in AMIS} <= set(everything)
    assert ids(architecture="arm64") == [ARM_IMAGE]
    assert set(ids(owner_id="801119661308")) == {a["ami_id"] for a in AMIS}
    page = ec2_api.images.ListImages(image_pb2.ListImagesRequest(page_size=2), metadata=EC2)
    assert len(page.images) == 2 and page.next_page_token
    image = ec2_api.images.GetImage(image_pb2.GetImageRequest(id=ARM_IMAGE), metadata=EC2)
    assert (image.name, image.architecture) == ("debian-12-arm64", "arm64")
    for bad in ("ami-0000dead", "not-an-ami"):
        f = refusal(ec2_api.images.GetImage, image_pb2.GetImageRequest(id=bad))
        assert (f.code, f.metadata["resource_type"]) == (grpc.StatusCode.NOT_FOUND, "image")
    # An owner alias matches no image's owner id: refused, not an empty list.
    for alias in ("self", "amazon"):
        f = refusal(ec2_api.images.ListImages, image_pb2.ListImagesRequest(owner_id=alias))
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "OWNER_ALIAS")


def test_a_page_of_images_too_large_for_one_message_is_cut_short(
    moto: MotoServer, tmp_path: Path
) -> None:
    """With every instance type offered (the default), an image lists hundreds of profiles
    (about 13 KiB here; 1,000 of AWS's take about 11 MiB, past the 4 MiB limit): a page holds
    what fits in the server's largest message, the driver asked again for that many from
    the same cursor, and the token goes on from there (the call failed with
    RESOURCE_EXHAUSTED). The pages together are every image once."""
    limit = 24 * 1024  # two of the three images fit
    server = ec2_server(
        tmp_path,
        moto,
        extra=["--max-message-bytes", str(limit)],
        image_owners="amazon",
        instance_types="",
    )
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            pages: list[list[str]] = []
            token = ""
            while True:
                response = api.images.ListImages(
                    image_pb2.ListImagesRequest(page_size=1000, page_token=token),
                    metadata=EC2,
                    timeout=60,
                )
                assert response.images and response.ByteSize() <= limit
                pages.append([i.id for i in response.images])
                token = response.next_page_token
                if not token:
                    break
            seen = [image for page in pages for image in page]
            amazon = moto.client("ec2").describe_images(Owners=["amazon"])["Images"]
            assert sorted(seen) == sorted({i["ImageId"] for i in amazon})
            assert len(pages) > 1
    finally:
        server.kill()


def test_images_list_the_hardware_profiles_of_their_architecture(ec2_api: Api) -> None:
    def profiles(image_id: str) -> list[str]:
        request = image_pb2.GetImageRequest(id=image_id)
        return list(ec2_api.images.GetImage(request, metadata=EC2).hardware_profile_ids)

    assert profiles(ARM_IMAGE) == ["t4g.micro"]
    assert profiles(X86_IMAGE) == ["m5.large", "t2.micro", "t3.micro", "t3.small"]
    listed = ec2_api.images.ListImages(image_pb2.ListImagesRequest(), metadata=EC2).images
    assert {i.id: list(i.hardware_profile_ids) for i in listed}[ARM_IMAGE] == ["t4g.micro"]


def test_images_are_paged_by_describe_images_not_by_listing_everything(ec2_api: Api) -> None:
    everything = [
        i.id
        for i in ec2_api.images.ListImages(
            image_pb2.ListImagesRequest(page_size=1000), metadata=EC2
        ).images
    ]
    walked: list[str] = []
    token = ""
    while True:
        page = ec2_api.images.ListImages(
            image_pb2.ListImagesRequest(page_size=1, page_token=token), metadata=EC2
        )
        walked += [i.id for i in page.images]
        token = page.next_page_token
        if not token:
            break
    assert walked == everything and len(everything) >= 3
    # The driver's cursor travels inside our signed token: tampering is refused by us.
    first = ec2_api.images.ListImages(image_pb2.ListImagesRequest(page_size=1), metadata=EC2)
    tampered = first.next_page_token[:-2] + ("AA" if first.next_page_token[-2:] != "AA" else "BB")
    f = refusal(ec2_api.images.ListImages, image_pb2.ListImagesRequest(page_token=tampered))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


# ---- instances ----------------------------------------------------------------------------


def test_create_with_every_option(ec2_api: Api) -> None:
    ec2_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="every-option"), metadata=EC2)
    group = ec2_api.firewalls.CreateFirewall(
        firewall_pb2.CreateFirewallRequest(name="every-option", description="test"), metadata=EC2
    )
    reply = ec2_api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(
            image_id=X86_IMAGE,
            hardware_profile_id="t3.small",
            realm_id="us-east-1b",
            name="web-1",
            key_name="every-option",
            user_data=b"#cloud-config\n",
            firewall_ids=[group.id],
            instance_count=2,
        ),
        metadata=EC2,
    )
    assert len(reply.instances) == 2
    for created in reply.instances:
        assert created.state == S.INSTANCE_STATE_PENDING
        got = get(ec2_api, created.id)
        assert (got.name, got.hardware_profile_id, got.realm_id, got.key_name) == (
            "web-1",
            "t3.small",
            "us-east-1b",
            "every-option",
        )
        assert group.id in got.firewall_ids
        assert got.state == S.INSTANCE_STATE_RUNNING


def test_the_default_profile_follows_the_image(ec2_api: Api) -> None:
    assert create(ec2_api).hardware_profile_id == "t3.micro"
    arm = ec2_api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id=ARM_IMAGE), metadata=EC2
    ).instances[0]
    assert arm.hardware_profile_id == "t4g.micro"
    f = refusal(
        ec2_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id=ARM_IMAGE, hardware_profile_id="m5.large"),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ARCHITECTURE_MISMATCH")


def test_create_refusals(ec2_api: Api) -> None:
    f = refusal(
        ec2_api.instances.CreateInstance, instance_pb2.CreateInstanceRequest(image_id="ami-0bad")
    )
    assert f.code == grpc.StatusCode.NOT_FOUND
    f = refusal(
        ec2_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id=X86_IMAGE, hardware_profile_id="x9.huge"),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_HARDWARE_PROFILE")
    f = refusal(
        ec2_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id=X86_IMAGE, key_name="no-such-key"),
    )
    assert _named(f) == (
        grpc.StatusCode.NOT_FOUND,
        "key",
        "no-such-key",
    )


def _live_instance_ids(moto: MotoServer) -> set[str]:
    reservations = moto.client("ec2").describe_instances()["Reservations"]
    return {
        i["InstanceId"]
        for r in reservations
        for i in r["Instances"]
        if i["State"]["Name"] in ("pending", "running")
    }


def test_a_refused_create_leaves_no_instance_and_names_what_is_missing(
    ec2_api: Api, moto: MotoServer
) -> None:
    before = _live_instance_ids(moto)
    # An unknown load balancer: refused before RunInstances (the instances ran, and the
    # client heard NOT_FOUND about them).
    f = refusal(
        ec2_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id=X86_IMAGE, load_balancer_id="no-such-lb"),
    )
    assert _named(f) == (
        grpc.StatusCode.NOT_FOUND,
        "load_balancer",
        "no-such-lb",
    )
    # An unknown security group: NOT_FOUND names the firewall (it named "instance '?'").
    f = refusal(
        ec2_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(
            image_id=X86_IMAGE, firewall_ids=["sg-0123456789abcdef0"]
        ),
    )
    assert _named(f) == (
        grpc.StatusCode.NOT_FOUND,
        "firewall",
        "sg-0123456789abcdef0",
    )
    assert _live_instance_ids(moto) == before
    # An unknown availability zone: NOT_FOUND realm, as the contract says (EC2 calls it a
    # bad parameter: it was INVALID_ARGUMENT).
    f = refusal(
        ec2_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id=X86_IMAGE, realm_id="mars-north-1a"),
    )
    assert _named(f) == (
        grpc.StatusCode.NOT_FOUND,
        "realm",
        "mars-north-1a",
    )


def test_watch_shows_create_pending_running_and_stop_stopping_stopped(ec2_api: Api) -> None:
    watcher = Watcher(ec2_api.channel, EC2)
    time.sleep(0.3)
    instance = create(ec2_api)
    watcher.wait_until(
        lambda w: any(
            e.instance_id == instance.id and e.state == S.INSTANCE_STATE_RUNNING for e in w.events
        )
    )
    stopping = ec2_api.instances.StopInstance(
        instance_pb2.StopInstanceRequest(id=instance.id), metadata=EC2
    )
    assert stopping.state == S.INSTANCE_STATE_STOPPING
    watcher.wait_until(
        lambda w: any(
            e.instance_id == instance.id and e.state == S.INSTANCE_STATE_STOPPED for e in w.events
        )
    )
    started = ec2_api.instances.StartInstance(
        instance_pb2.StartInstanceRequest(id=instance.id), metadata=EC2
    )
    assert started.state in (S.INSTANCE_STATE_PENDING, S.INSTANCE_STATE_RUNNING)
    watcher.wait_until(lambda w: _last_state(w, instance.id) == S.INSTANCE_STATE_RUNNING)
    f = refusal(
        ec2_api.instances.DeleteInstance, instance_pb2.DeleteInstanceRequest(id=instance.id)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACTION_NOT_ALLOWED")
    rebooted = ec2_api.instances.RebootInstance(
        instance_pb2.RebootInstanceRequest(id=instance.id), metadata=EC2
    )
    assert rebooted.state == S.INSTANCE_STATE_RUNNING
    ec2_api.instances.StopInstance(instance_pb2.StopInstanceRequest(id=instance.id), metadata=EC2)
    watcher.wait_until(lambda w: _last_state(w, instance.id) == S.INSTANCE_STATE_STOPPED)
    gone = ec2_api.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(id=instance.id), metadata=EC2
    )
    assert gone.state == S.INSTANCE_STATE_FINISH
    watcher.wait_until(lambda w: _last_state(w, instance.id) == S.INSTANCE_STATE_FINISH)
    watcher.cancel()
    story = [t[1:] for t in transitions(watcher.events) if t[0] == instance.id]
    assert story == [
        ("START->PENDING", "CREATE"),
        ("PENDING->RUNNING", "AUTOMATIC"),
        ("RUNNING->STOPPING", "STOP"),
        ("STOPPING->STOPPED", "AUTOMATIC"),
        *(
            [("STOPPED->PENDING", "START"), ("PENDING->RUNNING", "AUTOMATIC")]
            if started.state == S.INSTANCE_STATE_PENDING
            else [("STOPPED->RUNNING", "OBSERVED")]
        ),
        ("RUNNING->RUNNING", "REBOOT"),
        ("RUNNING->STOPPING", "STOP"),
        ("STOPPING->STOPPED", "AUTOMATIC"),
        ("STOPPED->FINISH", "DESTROY"),
    ]
    f = refusal(ec2_api.instances.GetInstance, instance_pb2.GetInstanceRequest(id=instance.id))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_concurrent_stops_journal_one_stop_and_no_backward_step(ec2_api: Api) -> None:
    """Clients retrying StopInstance while the first is under way: EC2 accepts a stop of a
    stopping instance, so every call may succeed, each having read the instance RUNNING
    before any stopped it. The journal tells one stop; it told the others as a step back
    from STOPPING to RUNNING (observed), then another stop."""
    watcher = Watcher(ec2_api.channel, EC2)
    time.sleep(0.3)
    instance = create(ec2_api)
    watcher.wait_until(
        lambda w: any(
            e.instance_id == instance.id and e.state == S.INSTANCE_STATE_RUNNING for e in w.events
        )
    )
    request = instance_pb2.StopInstanceRequest(id=instance.id)

    def stop() -> str:
        try:
            ec2_api.instances.StopInstance(request, metadata=EC2, timeout=15)
        except grpc.RpcError as error:
            return failure(error).reason
        return "OK"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: stop(), range(4)))
    assert set(outcomes) <= {"OK", "ACTION_NOT_ALLOWED"} and "OK" in outcomes, outcomes
    watcher.wait_until(lambda w: _last_state(w, instance.id) == S.INSTANCE_STATE_STOPPED)
    watcher.cancel()
    story = [t[1:] for t in transitions(watcher.events) if t[0] == instance.id]
    assert story == [
        ("START->PENDING", "CREATE"),
        ("PENDING->RUNNING", "AUTOMATIC"),
        ("RUNNING->STOPPING", "STOP"),
        ("STOPPING->STOPPED", "AUTOMATIC"),
    ], (outcomes, story)


def _last_state(watcher: Watcher, instance_id: str) -> int:
    return [e.state for e in watcher.events if e.instance_id == instance_id][-1]


def test_an_instance_started_with_boto3_is_observed(ec2_api: Api, moto: MotoServer) -> None:
    watcher = Watcher(ec2_api.channel, EC2)
    time.sleep(0.5)
    ec2 = moto.client("ec2")
    outside = ec2.run_instances(ImageId=X86_IMAGE, MinCount=1, MaxCount=1)["Instances"][0]
    instance_id = outside["InstanceId"]
    watcher.wait_until(lambda w: any(e.instance_id == instance_id for e in w.events))
    first = next(e for e in watcher.events if e.instance_id == instance_id)
    assert first.previous_state == S.INSTANCE_STATE_START
    assert first.cause == instance_pb2.EVENT_CAUSE_OBSERVED
    ec2.terminate_instances(InstanceIds=[instance_id])
    watcher.wait_until(
        lambda w: any(
            e.instance_id == instance_id and e.state == S.INSTANCE_STATE_FINISH for e in w.events
        )
    )
    watcher.cancel()


# ---- keys, volumes, snapshots, addresses, firewalls, load balancers ------------------------


def test_keys_generated_once_and_imported(ec2_api: Api) -> None:
    key = ec2_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="laptop"), metadata=EC2)
    assert "PRIVATE KEY" in key.pem_rsa_key and key.fingerprint
    again = ec2_api.keys.GetKey(key_pb2.GetKeyRequest(id="laptop"), metadata=EC2)
    assert not again.pem_rsa_key
    f = refusal(ec2_api.keys.CreateKey, key_pb2.CreateKeyRequest(name="laptop"))
    assert f.code == grpc.StatusCode.ALREADY_EXISTS
    public = "ssh-rsa " + _rsa_blob() + " me@laptop"
    imported = ec2_api.keys.CreateKey(
        key_pb2.CreateKeyRequest(name="imported", public_key=public), metadata=EC2
    )
    assert imported.id == "imported" and not imported.pem_rsa_key
    # EC2 tells an imported key's public half only when asked (IncludePublicKey): Get and
    # List showed it empty.
    shown = ec2_api.keys.GetKey(key_pb2.GetKeyRequest(id="imported"), metadata=EC2).public_key
    listed = ec2_api.keys.ListKeys(key_pb2.ListKeysRequest(), metadata=EC2).keys
    assert shown.split()[:2] == public.split()[:2]
    assert next(k for k in listed if k.id == "imported").public_key == shown
    ec2_api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id="imported"), metadata=EC2)
    f = refusal(ec2_api.keys.DeleteKey, key_pb2.DeleteKeyRequest(id="imported"))
    assert f.code == grpc.StatusCode.NOT_FOUND


def _rsa_blob() -> str:
    import base64
    import struct

    def part(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    modulus = b"\x00" + secrets.token_bytes(256)
    return base64.b64encode(part(b"ssh-rsa") + part(b"\x01\x00\x01") + part(modulus)).decode()


def test_volumes_attach_detach_and_snapshots(ec2_api: Api) -> None:
    instance = create(ec2_api, realm_id="us-east-1a")
    volume = ec2_api.volumes.CreateStorageVolume(
        storage_volume_pb2.CreateStorageVolumeRequest(
            capacity_gb=10, realm_id="us-east-1a", name="data", description="test data"
        ),
        metadata=EC2,
    )
    assert (volume.capacity_gb, volume.name, volume.realm_id) == (10, "data", "us-east-1a")
    attached = ec2_api.volumes.AttachStorageVolume(
        storage_volume_pb2.AttachStorageVolumeRequest(
            id=volume.id, instance_id=instance.id, device="/dev/sdf"
        ),
        metadata=EC2,
    )
    assert (attached.instance_id, attached.device) == (instance.id, "/dev/sdf")
    assert attached.state == storage_volume_pb2.StorageVolume.STATE_IN_USE
    f = refusal(
        ec2_api.volumes.DeleteStorageVolume,
        storage_volume_pb2.DeleteStorageVolumeRequest(id=volume.id),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_IN_USE")
    detached = ec2_api.volumes.DetachStorageVolume(
        storage_volume_pb2.DetachStorageVolumeRequest(id=volume.id), metadata=EC2
    )
    assert not detached.instance_id
    snapshot = ec2_api.snapshots.CreateStorageSnapshot(
        storage_snapshot_pb2.CreateStorageSnapshotRequest(
            storage_volume_id=volume.id, name="nightly", description="before upgrade"
        ),
        metadata=EC2,
    )
    assert snapshot.storage_volume_id == volume.id
    listed = ec2_api.snapshots.ListStorageSnapshots(
        storage_snapshot_pb2.ListStorageSnapshotsRequest(storage_volume_id=volume.id),
        metadata=EC2,
    ).storage_snapshots
    assert [s.id for s in listed] == [snapshot.id]
    restored = ec2_api.volumes.CreateStorageVolume(
        storage_volume_pb2.CreateStorageVolumeRequest(
            snapshot_id=snapshot.id, capacity_gb=10, realm_id="us-east-1a"
        ),
        metadata=EC2,
    )
    ec2_api.snapshots.DeleteStorageSnapshot(
        storage_snapshot_pb2.DeleteStorageSnapshotRequest(id=snapshot.id), metadata=EC2
    )
    for vid in (volume.id, restored.id):
        ec2_api.volumes.DeleteStorageVolume(
            storage_volume_pb2.DeleteStorageVolumeRequest(id=vid), metadata=EC2
        )
    f = refusal(
        ec2_api.volumes.GetStorageVolume, storage_volume_pb2.GetStorageVolumeRequest(id=volume.id)
    )
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_addresses_allocate_associate_disassociate_release(ec2_api: Api) -> None:
    instance = create(ec2_api)
    address = ec2_api.addresses.CreateAddress(address_pb2.CreateAddressRequest(), metadata=EC2)
    associated = ec2_api.addresses.AssociateAddress(
        address_pb2.AssociateAddressRequest(id=address.id, instance_id=instance.id), metadata=EC2
    )
    assert associated.instance_id == instance.id
    free = ec2_api.addresses.DisassociateAddress(
        address_pb2.DisassociateAddressRequest(id=address.id), metadata=EC2
    )
    assert not free.instance_id
    f = refusal(
        ec2_api.addresses.DisassociateAddress, address_pb2.DisassociateAddressRequest(id=address.id)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ADDRESS_NOT_ASSOCIATED")
    ec2_api.addresses.DeleteAddress(address_pb2.DeleteAddressRequest(id=address.id), metadata=EC2)
    f = refusal(ec2_api.addresses.GetAddress, address_pb2.GetAddressRequest(id=address.id))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_firewalls_with_ingress_rules(ec2_api: Api) -> None:
    group = ec2_api.firewalls.CreateFirewall(
        firewall_pb2.CreateFirewallRequest(name="web", description="web servers"), metadata=EC2
    )
    f = refusal(
        ec2_api.firewalls.CreateFirewall,
        firewall_pb2.CreateFirewallRequest(name="web", description="again"),
    )
    assert f.code == grpc.StatusCode.ALREADY_EXISTS
    with_rule = ec2_api.firewalls.CreateFirewallRule(
        firewall_pb2.CreateFirewallRuleRequest(
            firewall_id=group.id,
            protocol="tcp",
            port_from=443,
            port_to=443,
            sources=[firewall_pb2.FirewallRuleSource(cidr="10.0.0.0/8")],
        ),
        metadata=EC2,
    )
    rule = next(r for r in with_rule.rules if r.port_from == 443)
    assert (rule.protocol, [s.cidr for s in rule.sources]) == ("tcp", ["10.0.0.0/8"])
    # The same rule again: ALREADY_EXISTS names the rule, not the group ("firewall
    # 'sg-...' already exists" about a group that does exist).
    f = refusal(
        ec2_api.firewalls.CreateFirewallRule,
        firewall_pb2.CreateFirewallRuleRequest(
            firewall_id=group.id,
            protocol="tcp",
            port_from=443,
            port_to=443,
            sources=[firewall_pb2.FirewallRuleSource(cidr="10.0.0.0/8")],
        ),
    )
    assert (f.code, f.metadata["resource_type"]) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "firewall_rule",
    )
    # An unknown source group: NOT_FOUND names it, not the group the rule was for.
    f = refusal(
        ec2_api.firewalls.CreateFirewallRule,
        firewall_pb2.CreateFirewallRuleRequest(
            firewall_id=group.id,
            protocol="tcp",
            port_from=22,
            port_to=22,
            sources=[firewall_pb2.FirewallRuleSource(firewall_id="sg-0fedcba9876543210")],
        ),
    )
    assert _named(f) == (
        grpc.StatusCode.NOT_FOUND,
        "firewall",
        "sg-0fedcba9876543210",
    )
    after = ec2_api.firewalls.DeleteFirewallRule(
        firewall_pb2.DeleteFirewallRuleRequest(firewall_id=group.id, id=rule.id), metadata=EC2
    )
    assert rule.id not in [r.id for r in after.rules]
    ec2_api.firewalls.DeleteFirewall(firewall_pb2.DeleteFirewallRequest(id=group.id), metadata=EC2)
    f = refusal(ec2_api.firewalls.GetFirewall, firewall_pb2.GetFirewallRequest(id=group.id))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_a_rule_from_a_prefix_list_is_deleted_whole(ec2_api: Api, moto: MotoServer) -> None:
    # A rule made outside deltacloud (the console) whose source is a managed prefix list:
    # its deletion answered success and left it in place.
    group = ec2_api.firewalls.CreateFirewall(
        firewall_pb2.CreateFirewallRequest(name="from-list", description="d"), metadata=EC2
    )
    ec2 = moto.client("ec2")
    listed = ec2.create_managed_prefix_list(
        PrefixListName="office",
        MaxEntries=2,
        AddressFamily="IPv4",
        Entries=[{"Cidr": "10.1.0.0/16"}],
    )["PrefixList"]["PrefixListId"]
    ec2.authorize_security_group_ingress(
        GroupId=group.id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "PrefixListIds": [{"PrefixListId": listed}],
            }
        ],
    )
    shown = ec2_api.firewalls.GetFirewall(
        firewall_pb2.GetFirewallRequest(id=group.id), metadata=EC2
    )
    ingress = firewall_pb2.FirewallRule.DIRECTION_INGRESS
    [rule] = [r for r in shown.rules if r.direction == ingress]
    after = ec2_api.firewalls.DeleteFirewallRule(
        firewall_pb2.DeleteFirewallRuleRequest(firewall_id=group.id, id=rule.id), metadata=EC2
    )
    assert [r for r in after.rules if r.direction == ingress] == []
    left = ec2.describe_security_groups(GroupIds=[group.id])["SecurityGroups"][0]
    assert left["IpPermissions"] == []


def test_load_balancers_register_and_unregister(ec2_api: Api) -> None:
    instance = create(ec2_api)
    balancer = ec2_api.load_balancers.CreateLoadBalancer(
        load_balancer_pb2.CreateLoadBalancerRequest(
            name="front",
            realm_ids=["us-east-1a"],
            listeners=[
                load_balancer_pb2.Listener(
                    protocol="http", load_balancer_port=80, instance_port=8080
                )
            ],
        ),
        metadata=EC2,
    )
    assert balancer.id == "front" and balancer.public_addresses
    registered = ec2_api.load_balancers.RegisterInstance(
        load_balancer_pb2.RegisterInstanceRequest(id="front", instance_id=instance.id), metadata=EC2
    )
    assert list(registered.instance_ids) == [instance.id]
    out = ec2_api.load_balancers.UnregisterInstance(
        load_balancer_pb2.UnregisterInstanceRequest(id="front", instance_id=instance.id),
        metadata=EC2,
    )
    assert list(out.instance_ids) == []
    ec2_api.load_balancers.DeleteLoadBalancer(
        load_balancer_pb2.DeleteLoadBalancerRequest(id="front"), metadata=EC2
    )
    f = refusal(
        ec2_api.load_balancers.DeleteLoadBalancer,
        load_balancer_pb2.DeleteLoadBalancerRequest(id="front"),
    )
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_only_an_instance_that_exists_is_registered(ec2_api: Api) -> None:
    # ELB registered any id (an instance never made, a volume's) and listed it after.
    balancer = ec2_api.load_balancers.CreateLoadBalancer(
        load_balancer_pb2.CreateLoadBalancerRequest(
            name=f"strict-{uuid.uuid4().hex[:6]}",
            realm_ids=["us-east-1a"],
            listeners=[
                load_balancer_pb2.Listener(protocol="tcp", load_balancer_port=22, instance_port=22)
            ],
        ),
        metadata=EC2,
    )
    for missing in ("i-deadbeef", "vol-1"):
        f = refusal(
            ec2_api.load_balancers.RegisterInstance,
            load_balancer_pb2.RegisterInstanceRequest(id=balancer.id, instance_id=missing),
        )
        assert _named(f) == (grpc.StatusCode.NOT_FOUND, "instance", missing)
    # One in a realm the balancer does not serve: FAILED_PRECONDITION, as the proto says.
    elsewhere = create(ec2_api, realm_id="us-east-1b")
    f = refusal(
        ec2_api.load_balancers.RegisterInstance,
        load_balancer_pb2.RegisterInstanceRequest(id=balancer.id, instance_id=elsewhere.id),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REALM_MISMATCH")
    got = ec2_api.load_balancers.GetLoadBalancer(
        load_balancer_pb2.GetLoadBalancerRequest(id=balancer.id), metadata=EC2
    )
    assert list(got.instance_ids) == []
    ec2_api.load_balancers.DeleteLoadBalancer(
        load_balancer_pb2.DeleteLoadBalancerRequest(id=balancer.id), metadata=EC2
    )


def test_attachment_and_association_states_are_failed_preconditions(ec2_api: Api) -> None:
    # The proto says FAILED_PRECONDITION for each (the mock driver too): detaching an
    # unattached volume and disassociating a free address were INVALID_ARGUMENT; attaching
    # an attached volume moved it to the new device, deleting an associated address
    # released it.
    instance = create(ec2_api, realm_id="us-east-1a")
    volumes = ec2_api.volumes
    volume = volumes.CreateStorageVolume(
        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1, realm_id="us-east-1a"),
        metadata=EC2,
    )
    f = refusal(
        volumes.DetachStorageVolume, storage_volume_pb2.DetachStorageVolumeRequest(id=volume.id)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_NOT_ATTACHED")
    volumes.AttachStorageVolume(
        storage_volume_pb2.AttachStorageVolumeRequest(
            id=volume.id, instance_id=instance.id, device="/dev/sdf"
        ),
        metadata=EC2,
    )
    f = refusal(
        volumes.AttachStorageVolume,
        storage_volume_pb2.AttachStorageVolumeRequest(
            id=volume.id, instance_id=instance.id, device="/dev/sdg"
        ),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_IN_USE")
    got = volumes.GetStorageVolume(
        storage_volume_pb2.GetStorageVolumeRequest(id=volume.id), metadata=EC2
    )
    assert (got.instance_id, got.device) == (instance.id, "/dev/sdf")
    # A volume of another realm than the instance's (EC2: InvalidVolume.ZoneMismatch).
    far = volumes.CreateStorageVolume(
        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1, realm_id="us-east-1b"),
        metadata=EC2,
    )
    f = refusal(
        volumes.AttachStorageVolume,
        storage_volume_pb2.AttachStorageVolumeRequest(
            id=far.id, instance_id=instance.id, device="/dev/sdh"
        ),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REALM_MISMATCH")
    volumes.DetachStorageVolume(
        storage_volume_pb2.DetachStorageVolumeRequest(id=volume.id), metadata=EC2
    )
    addresses = ec2_api.addresses
    address = addresses.CreateAddress(address_pb2.CreateAddressRequest(), metadata=EC2)
    f = refusal(
        addresses.DisassociateAddress, address_pb2.DisassociateAddressRequest(id=address.id)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ADDRESS_NOT_ASSOCIATED")
    addresses.AssociateAddress(
        address_pb2.AssociateAddressRequest(id=address.id, instance_id=instance.id), metadata=EC2
    )
    f = refusal(addresses.DeleteAddress, address_pb2.DeleteAddressRequest(id=address.id))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ADDRESS_IN_USE")
    got_address = addresses.GetAddress(address_pb2.GetAddressRequest(id=address.id), metadata=EC2)
    assert got_address.instance_id == instance.id
    addresses.DisassociateAddress(
        address_pb2.DisassociateAddressRequest(id=address.id), metadata=EC2
    )
    addresses.DeleteAddress(address_pb2.DeleteAddressRequest(id=address.id), metadata=EC2)


def test_firewall_rule_refusals_name_the_source_and_check_icmp_types(ec2_api: Api) -> None:
    group = ec2_api.firewalls.CreateFirewall(
        firewall_pb2.CreateFirewallRequest(name=f"icmp-{uuid.uuid4().hex[:6]}", description="d"),
        metadata=EC2,
    )

    def rule(**fields: Any) -> firewall_pb2.CreateFirewallRuleRequest:
        fields.setdefault("sources", [firewall_pb2.FirewallRuleSource(cidr="10.0.0.0/8")])
        return firewall_pb2.CreateFirewallRuleRequest(firewall_id=group.id, **fields)

    # A source group id not shaped like one: NOT_FOUND named the rule's own firewall.
    f = refusal(
        ec2_api.firewalls.CreateFirewallRule,
        rule(
            protocol="tcp",
            port_from=22,
            port_to=22,
            sources=[firewall_pb2.FirewallRuleSource(firewall_id="vol-1")],
        ),
    )
    assert _named(f) == (grpc.StatusCode.NOT_FOUND, "firewall", "vol-1")
    # For icmp the ports are the ICMP type and code: -1 (all) to 255. 999 was accepted.
    for port_from, port_to in ((999, 999), (8, 256), (-2, -1), (-1, 0)):
        f = refusal(
            ec2_api.firewalls.CreateFirewallRule,
            rule(protocol="icmp", port_from=port_from, port_to=port_to),
        )
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT, (port_from, port_to)
    # Destination unreachable (3), fragmentation needed (4): for icmp a type and a code, not
    # a range (echo request, 8/0, is taken too).
    made = ec2_api.firewalls.CreateFirewallRule(
        rule(protocol="icmp", port_from=3, port_to=4), metadata=EC2
    )
    assert [(r.port_from, r.port_to) for r in made.rules if r.protocol == "icmp"] == [(3, 4)]
    ec2_api.firewalls.DeleteFirewall(firewall_pb2.DeleteFirewallRequest(id=group.id), metadata=EC2)


def test_an_unknown_realm_is_not_found_for_volumes_and_load_balancers(ec2_api: Api) -> None:
    # A volume was made with no realm; ELB answered a 500 (UNAVAILABLE).
    f = refusal(
        ec2_api.volumes.CreateStorageVolume,
        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1, realm_id="us-east-1z"),
    )
    assert _named(f) == (grpc.StatusCode.NOT_FOUND, "realm", "us-east-1z")
    f = refusal(
        ec2_api.load_balancers.CreateLoadBalancer,
        load_balancer_pb2.CreateLoadBalancerRequest(
            name="nowhere",
            realm_ids=["us-east-1a", "us-east-1z"],
            listeners=[
                load_balancer_pb2.Listener(protocol="tcp", load_balancer_port=22, instance_port=22)
            ],
        ),
    )
    assert _named(f) == (grpc.StatusCode.NOT_FOUND, "realm", "us-east-1z")


def test_an_empty_firewall_id_is_invalid_argument(ec2_api: Api) -> None:
    f = refusal(
        ec2_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id=X86_IMAGE, firewall_ids=[""]),
    )
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT, f.message
    assert "firewall_ids" in f.message


# ---- buckets and blobs --------------------------------------------------------------------


def _upload(
    api: Api, bucket: str, blob: str, content: bytes, chunk: int = 1 * MIB
) -> bucket_pb2.Blob:
    header = bucket_pb2.UploadBlobHeader(
        bucket_id=bucket,
        blob_id=blob,
        content_type="application/x-test",
        user_metadata={"owner": "tests"},
    )

    def requests() -> Iterator[bucket_pb2.UploadBlobRequest]:
        yield bucket_pb2.UploadBlobRequest(header=header)
        for i in range(0, len(content), chunk):
            yield bucket_pb2.UploadBlobRequest(chunk=content[i : i + chunk])

    return api.buckets.UploadBlob(requests(), metadata=EC2, timeout=60)  # type: ignore[no-any-return]


def test_a_download_describes_the_version_it_sends_while_the_blob_is_replaced(
    ec2_api: Api,
) -> None:
    """One GetObject gives the download's header and its bytes: a HeadObject before it
    could describe the version a concurrent replace had just superseded."""
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="flip"), metadata=EC2)
    downloads, mixed = downloads_while_replaced(ec2_api, EC2, "flip", seconds=3)
    assert downloads > 20
    assert mixed == [], f"{len(mixed)} of {downloads} downloads mixed two versions"


def test_an_upload_is_answered_with_the_version_it_stored_while_others_replace_it(
    ec2_api: Api,
) -> None:
    """Two clients upload the same blob again and again: each answer describes the version
    its own upload stored, not one a HeadObject after it found (the other's)."""
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="race"), metadata=EC2)
    uploads, wrong = uploads_racing(ec2_api, EC2, "race", seconds=3)
    assert uploads > 20
    assert wrong == [], f"{len(wrong)} of {uploads} uploads answered with another's version"


@pytest.mark.parametrize(
    "chunk",
    [1 * MIB, 700_001],  # the second: pieces that never line up with the 5 MiB parts
)
def test_a_blob_over_the_multipart_threshold_round_trips(ec2_api: Api, chunk: int) -> None:
    bucket = f"big-blobs-{chunk}"
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name=bucket), metadata=EC2)
    content = secrets.token_bytes(12 * MIB + 12345)  # three parts of 5 MiB at most
    blob = _upload(ec2_api, bucket, "big.bin", content, chunk)
    assert blob.content_length == len(content)
    got = hashlib.sha256()
    size = 0
    for message in ec2_api.buckets.DownloadBlob(
        bucket_pb2.DownloadBlobRequest(bucket_id=bucket, id="big.bin"), metadata=EC2
    ):
        got.update(message.chunk)
        size += len(message.chunk)
    assert (size, got.hexdigest()) == (len(content), hashlib.sha256(content).hexdigest())


def test_an_upload_the_client_abandons_leaves_no_parts_and_no_object(
    ec2_api: Api, moto: MotoServer
) -> None:
    """The client cancels an upload after S3 has some of its parts: the server aborts the
    multipart upload (S3 would keep, and bill, the parts) and its worker is free again."""
    bucket = "abandoned-uploads"
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name=bucket), metadata=EC2)
    s3 = moto.client("s3")
    release = threading.Event()

    def requests() -> Iterator[bucket_pb2.UploadBlobRequest]:
        header = bucket_pb2.UploadBlobHeader(bucket_id=bucket, blob_id="never.bin")
        yield bucket_pb2.UploadBlobRequest(header=header)
        for _ in range(12):  # 12 MiB: the multipart upload starts, parts go up
            yield bucket_pb2.UploadBlobRequest(chunk=secrets.token_bytes(MIB))
        release.wait(30)  # then the client stalls, and gives up

    call = ec2_api.buckets.UploadBlob.future(requests(), metadata=EC2, timeout=60)
    try:
        deadline = time.monotonic() + 15
        while not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            assert time.monotonic() < deadline, "the multipart upload never started"
            time.sleep(0.05)
        call.cancel()
        deadline = time.monotonic() + 15
        while s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            assert time.monotonic() < deadline, "the abandoned multipart upload is still there"
            time.sleep(0.05)
    finally:
        release.set()
    listed = ec2_api.buckets.ListBlobs(
        bucket_pb2.ListBlobsRequest(bucket_id=bucket), metadata=EC2
    ).blobs
    assert [b.id for b in listed] == []


def test_the_upload_budget_makes_parts_wait_for_room_until_their_deadline() -> None:
    budget = ByteBudget(10)
    assert budget.acquire(6, None) == 6
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        budget.acquire(6, 0.2)  # 4 free: it waits, then gives up at its deadline
    assert caught.value.reason == "UPLOADS_BUSY"
    assert 0.15 < time.monotonic() - started < 2
    threading.Timer(0.1, budget.release, args=(6,)).start()
    assert budget.acquire(6, 5) == 6  # room came back in time
    budget.release(6)
    assert budget.acquire(99, 0) == 10  # a part larger than the budget takes all of it
    assert shared_budget(12345) is shared_budget(12345)  # one per size, for every region


def test_concurrent_uploads_share_a_small_memory_budget(moto: MotoServer, tmp_path: Path) -> None:
    """Room for two 5 MiB parts in flight in the whole server, three uploads of 16 MiB at
    once: each waits its turn, none fails, every byte arrives."""
    server = ec2_server(tmp_path, moto, multipart_threshold="5MiB", multipart_memory="10MiB")
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="budgeted"), metadata=EC2)
            contents = {f"b{i}": secrets.token_bytes(16 * MIB + i) for i in range(3)}
            with ThreadPoolExecutor(max_workers=3) as pool:
                blobs = list(
                    pool.map(lambda item: _upload(api, "budgeted", *item), contents.items())
                )
            assert [b.content_length for b in blobs] == [len(c) for c in contents.values()]
            for blob_id, content in contents.items():
                got = b"".join(
                    m.chunk
                    for m in api.buckets.DownloadBlob(
                        bucket_pb2.DownloadBlobRequest(bucket_id="budgeted", id=blob_id),
                        metadata=EC2,
                    )
                )
                assert got == content
    finally:
        server.kill()


def test_the_upload_budget_covers_the_part_an_upload_assembles(
    moto: MotoServer, tmp_path: Path
) -> None:
    """Room for one 5 MiB part in the whole server. An upload whose client stalls mid-part
    holds that room (the bytes it holds count, not only parts in flight): another upload
    waits, and hears UPLOADS_BUSY at its deadline, storing nothing. The stalled one then
    finishes, and the room comes back for the next."""
    server = ec2_server(tmp_path, moto, multipart_threshold="5MiB", multipart_memory="5MiB")
    release = threading.Event()
    first = secrets.token_bytes(8 * MIB)

    def stalled() -> Iterator[bucket_pb2.UploadBlobRequest]:
        yield bucket_pb2.UploadBlobRequest(
            header=bucket_pb2.UploadBlobHeader(bucket_id="room", blob_id="stalled")
        )
        for i in range(0, len(first), MIB):
            if i == 6 * MIB:  # its first part gone up, a MiB into the second
                release.wait(60)
            yield bucket_pb2.UploadBlobRequest(chunk=first[i : i + MIB])

    s3 = moto.client("s3")

    def first_part_up() -> bool:
        uploads = s3.list_multipart_uploads(Bucket="room").get("Uploads", [])
        return bool(uploads) and bool(
            s3.list_parts(Bucket="room", Key="stalled", UploadId=uploads[0]["UploadId"]).get(
                "Parts"
            )
        )

    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="room"), metadata=EC2)
            holding = api.buckets.UploadBlob.future(stalled(), metadata=EC2, timeout=60)
            deadline = time.monotonic() + 10
            while not first_part_up():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)  # the room its part held comes back to it for the second
            other = secrets.token_bytes(12 * MIB)
            with pytest.raises(grpc.RpcError) as caught:
                api.buckets.UploadBlob(
                    iter(
                        [
                            bucket_pb2.UploadBlobRequest(
                                header=bucket_pb2.UploadBlobHeader(bucket_id="room", blob_id="b")
                            ),
                            *(
                                bucket_pb2.UploadBlobRequest(chunk=other[i : i + MIB])
                                for i in range(0, len(other), MIB)
                            ),
                        ]
                    ),
                    metadata=EC2,
                    timeout=2,
                )
            busy = failure(caught.value)
            assert (busy.code, busy.reason) == (grpc.StatusCode.UNAVAILABLE, "UPLOADS_BUSY")
            release.set()
            assert holding.result(timeout=30).content_length == len(first)
            listed = api.buckets.ListBlobs(
                bucket_pb2.ListBlobsRequest(bucket_id="room"), metadata=EC2
            ).blobs
            assert [b.id for b in listed] == ["stalled"]
            assert _upload(api, "room", "after", other).content_length == len(other)
    finally:
        release.set()
        server.kill()


def test_a_page_of_blobs_is_one_listing_request_for_that_many(
    ec2_api: Api, moto: MotoServer
) -> None:
    """Blobs page natively (ListObjectsV2's MaxKeys and continuation token): a page of a
    bucket of millions is one request for the page's size, not the whole bucket listed for
    every page. The prefix is S3's, and checked again by the server."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="many")
    for i in range(25):
        s3.put_object(Bucket="many", Key=f"k{i:03d}", Body=b"x")
    s3.put_object(Bucket="many", Key="other", Body=b"y")
    pages: list[list[str]] = []
    with moto.recording() as requests:
        token = ""
        while True:
            page = ec2_api.buckets.ListBlobs(
                bucket_pb2.ListBlobsRequest(
                    bucket_id="many", prefix="k", page_size=10, page_token=token
                ),
                metadata=EC2,
            )
            pages.append([b.id for b in page.blobs])
            token = page.next_page_token
            if not token:
                break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [b for p in pages for b in p] == [f"k{i:03d}" for i in range(25)]
    listings = [r for r in requests if r["method"] == "GET" and "list-type=2" in r["url"]]
    assert len(listings) == len(pages)
    assert all("max-keys=10" in r["url"] and "prefix=k" in r["url"] for r in listings)
    first = ec2_api.buckets.ListBlobs(
        bucket_pb2.ListBlobsRequest(bucket_id="many", prefix="k", page_size=10), metadata=EC2
    )
    # S3's continuation token travels inside our signed token, bound to the same query.
    other_prefix = bucket_pb2.ListBlobsRequest(
        bucket_id="many", prefix="", page_token=first.next_page_token
    )
    f = refusal(ec2_api.buckets.ListBlobs, other_prefix)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


def test_parts_grow_with_the_announced_length_to_stay_within_s3s_limits() -> None:
    configured = 8 * MIB
    assert part_size_for(configured, None) == configured
    assert part_size_for(configured, 1024 * MIB) == configured
    for length in (100 * 1024**3, 1024**4, MAX_OBJECT_SIZE):
        size = part_size_for(configured, length)
        assert size % MIB == 0 and configured <= size <= MAX_PART_SIZE
        assert -(-length // size) <= MAX_PARTS, length  # parts needed
    assert part_size_for(configured, 100 * 1024**3) == 11 * MIB


def test_an_announced_length_over_s3s_largest_object_is_refused_before_reading(
    ec2_api: Api,
) -> None:
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="huge"), metadata=EC2)
    header = bucket_pb2.UploadBlobHeader(
        bucket_id="huge", blob_id="six-tib", content_length=6 * 1024**4
    )
    requests = iter(
        [bucket_pb2.UploadBlobRequest(header=header), bucket_pb2.UploadBlobRequest(chunk=b"x")]
    )
    f = refusal(ec2_api.buckets.UploadBlob, requests)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BLOB_TOO_LARGE")
    assert f.metadata["content_length"] == str(6 * 1024**4)
    listed = ec2_api.buckets.ListBlobs(
        bucket_pb2.ListBlobsRequest(bucket_id="huge"), metadata=EC2
    ).blobs
    assert list(listed) == []


def test_an_unannounced_upload_past_the_part_limit_fails_and_leaves_nothing(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 takes 10,000 parts (78 GiB at 8 MiB when the length is not announced): the part
    after the last is refused with BLOB_TOO_LARGE before it is sent, and the multipart
    upload is aborted (here with a limit of two parts, against moto)."""
    monkeypatch.setattr(ec2_storage, "MAX_PARTS", 2)
    driver = EC2Driver(
        "us-east-1",
        DriverConfig(tmp_path, {"endpoint_url": moto.url, "multipart_threshold": "5MiB"}),
    )
    ctx = CallContext(Credentials(ACCESS_KEY, SECRET_KEY), "us-east-1", time.monotonic() + 60)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="parts")
    content = secrets.token_bytes(12 * MIB)  # three parts of 5 MiB
    opts = m.PutBlob(
        bucket_id="parts",
        blob_id="too-many-parts",
        chunks=iter([content[i : i + MIB] for i in range(0, len(content), MIB)]),
    )
    with pytest.raises(ValidationError) as caught:
        driver.put_blob(ctx, opts)
    assert caught.value.reason == "BLOB_TOO_LARGE"
    assert s3.list_multipart_uploads(Bucket="parts").get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket="parts").get("KeyCount") == 0


@pytest.mark.parametrize("refusal", [412, 403])  # replaced; no permission to look at it
@pytest.mark.parametrize("size", [1000, 6 * MIB])  # one PutObject; a multipart upload
def test_an_upload_replaced_before_it_is_described_describes_itself(
    moto: MotoServer, tmp_path: Path, size: int, refusal: int
) -> None:
    """The HeadObject after an upload asks for the object written (If-Match its ETag): when
    another write replaced it first (412 here, made to happen between the two), or the
    object may not be looked at (403: the upload stands, an error would have it sent
    again), the upload is described from what it wrote: its length, S3's default content
    type, its metadata (keys in lower case, as S3 keeps them) and the time of the write's
    answer."""
    driver = EC2Driver(
        "us-east-1",
        DriverConfig(tmp_path, {"endpoint_url": moto.url, "multipart_threshold": "5MiB"}),
    )
    ctx = CallContext(Credentials(ACCESS_KEY, SECRET_KEY), "us-east-1", time.monotonic() + 60)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="replaced")
    real = driver.s3(ctx)
    asked: list[dict[str, Any]] = []

    class Replaced:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def head_object(self, **params: Any) -> Any:
            asked.append(params)
            if refusal == 403:  # a key allowed s3:PutObject, not s3:GetObject
                answer = {"Error": {"Code": "403"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
                raise ClientError(answer, "HeadObject")
            s3.put_object(Bucket="replaced", Key="b", Body=b"another", Metadata={"by": "other"})
            return real.head_object(**params)

    driver.s3 = lambda _ctx: Replaced()  # type: ignore[method-assign]
    before = datetime.now(UTC).replace(microsecond=0)
    blob = driver.put_blob(
        ctx,
        m.PutBlob(
            bucket_id="replaced",
            blob_id="b",
            chunks=iter([b"x" * size]),
            user_metadata={"Letter": "x"},
        ),
    )
    assert asked and asked[0]["IfMatch"]
    assert (blob.content_length, blob.content_type, blob.user_metadata) == (
        size,
        "binary/octet-stream",
        {"letter": "x"},
    )
    assert blob.last_modified is not None and blob.last_modified >= before


def test_a_metadata_update_copies_the_version_it_looked_at(
    moto: MotoServer, tmp_path: Path
) -> None:
    """The copy that updates a blob's metadata keeps the content type of the version it
    looked at, so it is made on the condition that the object is still that version
    (CopySourceIfMatch); replaced in between, the blob is looked at again and the new
    version keeps its own content type. (moto ignores CopySourceIfMatch: the client here
    answers 412 as S3 does, and replaces the blob before the first copy.)"""
    driver = EC2Driver("us-east-1", DriverConfig(tmp_path, {"endpoint_url": moto.url}))
    ctx = CallContext(Credentials(ACCESS_KEY, SECRET_KEY), "us-east-1", time.monotonic() + 60)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="relabel")
    s3.put_object(Bucket="relabel", Key="b", Body=b"first", ContentType="text/first")
    real = driver.s3(ctx)
    copies: list[str] = []

    class ReplacedOnce:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def copy_object(self, **params: Any) -> Any:
            copies.append(params["CopySourceIfMatch"])
            if len(copies) == 1:
                s3.put_object(Bucket="relabel", Key="b", Body=b"second", ContentType="text/second")
            if real.head_object(Bucket="relabel", Key="b")["ETag"] != params["CopySourceIfMatch"]:
                raise ClientError(
                    {
                        "Error": {"Code": "PreconditionFailed"},
                        "ResponseMetadata": {"HTTPStatusCode": 412},
                    },
                    "CopyObject",
                )
            return real.copy_object(**params)

    driver.s3 = lambda _ctx: ReplacedOnce()  # type: ignore[method-assign]
    assert driver.update_blob_metadata(ctx, "relabel", "b", {"Colour": "blue"}) == {
        "colour": "blue"
    }
    assert len(copies) == 2 and copies[0] != copies[1]
    head = s3.head_object(Bucket="relabel", Key="b")
    assert (head["ContentType"], head["Metadata"]) == ("text/second", {"colour": "blue"})
    assert s3.get_object(Bucket="relabel", Key="b")["Body"].read() == b"second"


def test_blob_metadata_is_replaced_in_place(ec2_api: Api) -> None:
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="meta"), metadata=EC2)
    _upload(ec2_api, "meta", "a.txt", b"hello")
    stored = ec2_api.buckets.UpdateBlobMetadata(
        bucket_pb2.UpdateBlobMetadataRequest(
            bucket_id="meta", id="a.txt", user_metadata={"colour": "blue"}
        ),
        metadata=EC2,
    )
    assert dict(stored.user_metadata) == {"colour": "blue"}
    blob = ec2_api.buckets.GetBlob(
        bucket_pb2.GetBlobRequest(bucket_id="meta", id="a.txt"), metadata=EC2
    )
    assert (blob.content_length, blob.content_type) == (5, "application/x-test")
    f = refusal(ec2_api.buckets.DeleteBucket, bucket_pb2.DeleteBucketRequest(id="meta"))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BUCKET_NOT_EMPTY")
    f = refusal(ec2_api.buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id="meta", id="nope"))
    assert f.code == grpc.StatusCode.NOT_FOUND
    f = refusal(ec2_api.buckets.ListBlobs, bucket_pb2.ListBlobsRequest(bucket_id="no-bucket"))
    assert f.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("metadata", "content_type", "reason"),
    [
        ({"k": "a\nb"}, "", "INVALID_HEADER_VALUE"),
        ({"a:b": "v"}, "", "INVALID_METADATA_KEY"),
        ({"a b": "v"}, "", "INVALID_METADATA_KEY"),
        ({}, "text/plain\nX-Evil: y", "INVALID_HEADER_VALUE"),
        ({"k": "  v"}, "", "INVALID_HEADER_VALUE"),  # S3 keeps "v": the answer said "  v"
    ],
)
def test_metadata_s3_cannot_keep_as_given_is_invalid_argument(
    ec2_api: Api, metadata: dict[str, str], content_type: str, reason: str
) -> None:
    # It answered UNAVAILABLE ("the endpoint cannot be reached"), or stored another value.
    bucket = f"headers-{uuid.uuid4().hex[:8]}"
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name=bucket), metadata=EC2)
    header = bucket_pb2.UploadBlobHeader(
        bucket_id=bucket, blob_id="b", content_type=content_type, user_metadata=metadata
    )
    f = refusal(ec2_api.buckets.UploadBlob, iter([bucket_pb2.UploadBlobRequest(header=header)]))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    _upload(ec2_api, bucket, "b", b"x")
    if metadata:
        f = refusal(
            ec2_api.buckets.UpdateBlobMetadata,
            bucket_pb2.UpdateBlobMetadataRequest(bucket_id=bucket, id="b", user_metadata=metadata),
        )
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)


def test_buckets_tell_their_location_and_are_made_in_any_region(ec2_api: Api) -> None:
    made = ec2_api.buckets.CreateBucket(
        bucket_pb2.CreateBucketRequest(name="far-away", location="eu-west-1"), metadata=EC2
    )
    assert made.location == "eu-west-1"
    got = ec2_api.buckets.GetBucket(bucket_pb2.GetBucketRequest(id="far-away"), metadata=EC2)
    assert got.location == "eu-west-1"  # it was ""
    # From another region's provider: a bucket in us-east-1 or a third region (S3 refused
    # both from eu-west-1's endpoint, IllegalLocationConstraintException).
    europe = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2", provider="eu-west-1")
    for name, location in (("from-eu-to-us", "us-east-1"), ("from-eu-to-ap", "ap-south-1")):
        made = ec2_api.buckets.CreateBucket(
            bucket_pb2.CreateBucketRequest(name=name, location=location), metadata=europe
        )
        assert made.location == location
        got = ec2_api.buckets.GetBucket(bucket_pb2.GetBucketRequest(id=name), metadata=europe)
        assert got.location == location
    f = refusal(
        ec2_api.buckets.CreateBucket,
        bucket_pb2.CreateBucketRequest(name="nowhere", location="Not A Region"),
    )
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT


def _upload_refusal(api: Api, bucket: str, md: object = EC2, **header: Any) -> Failure:
    first = bucket_pb2.UploadBlobRequest(
        header=bucket_pb2.UploadBlobHeader(bucket_id=bucket, blob_id="b", **header)
    )
    chunk = bucket_pb2.UploadBlobRequest(chunk=b"x")
    return refusal(api.buckets.UploadBlob, iter([first, chunk]), md)


def test_head_requests_with_credentials_the_backend_refuses_are_unauthenticated(
    signed_api: Api, authenticating_moto: MotoServer
) -> None:
    # HeadBucket and HeadObject are refused with a bare 403 (400 for a bad session token):
    # no body, no error code. They answered PERMISSION_DENIED (UNAVAILABLE for the token)
    # where every other call answers UNAUTHENTICATED.
    s3 = authenticating_moto.client("s3")
    bucket = f"heads-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    try:
        _refused_with_wrong_credentials(signed_api, authenticating_moto, bucket)
    finally:  # this moto is the conformance kit's too: leave it as found
        s3.delete_object(Bucket=bucket, Key="k")
        s3.delete_bucket(Bucket=bucket)


def _refused_with_wrong_credentials(
    signed_api: Api, authenticating_moto: MotoServer, bucket: str
) -> None:
    key, secret = authenticating_moto.access_key, authenticating_moto.secret_key
    for user, password in [
        (key, secret + "-wrong"),
        ("AKIAUNKNOWNTOMOTO00", "whatever"),
        (key, f"{secret}:NOT-A-SESSION-TOKEN"),
    ]:
        md = metadata(user, password, driver="ec2")
        for f in (
            refusal(signed_api.buckets.GetBucket, bucket_pb2.GetBucketRequest(id=bucket), md),
            refusal(
                signed_api.buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=bucket, id="k"), md
            ),
            _upload_refusal(signed_api, bucket, md),
        ):
            assert (f.code, f.reason) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "AUTHENTICATION_FAILED",
            ), (password, f.message)
            assert secret not in f.message
    # A real denial stays one: a user that may list its buckets and nothing more.
    iam = authenticating_moto.client("iam")
    user = f"lister-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="list",
        PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            '"Action": "s3:ListAllMyBuckets", "Resource": "*"}]}'
        ),
    )
    made = iam.create_access_key(UserName=user)["AccessKey"]
    md = metadata(made["AccessKeyId"], made["SecretAccessKey"], driver="ec2")
    signed_api.buckets.ListBuckets(bucket_pb2.ListBucketsRequest(), metadata=md, timeout=15)
    f = refusal(signed_api.buckets.GetBucket, bucket_pb2.GetBucketRequest(id=bucket), md)
    assert (f.code, f.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


@pytest.mark.parametrize("name", ["a/b", "with space", "\u00fc", "a" * 300])
def test_a_bucket_name_no_bucket_can_have_is_refused_in_our_words(ec2_api: Api, name: str) -> None:
    # botocore refuses such names before sending; its text ("Parameter validation
    # failed: Invalid bucket name ... regex ...") was the answer, INVALID_ARGUMENT.
    f = refusal(ec2_api.buckets.CreateBucket, bucket_pb2.CreateBucketRequest(name=name))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in f.message and "regex" not in f.message
    assert "Parameter validation" not in f.message and len(f.message) < 200
    buckets = ec2_api.buckets
    lookups = [
        (buckets.GetBucket, bucket_pb2.GetBucketRequest(id=name)),
        (buckets.DeleteBucket, bucket_pb2.DeleteBucketRequest(id=name)),
        (buckets.ListBlobs, bucket_pb2.ListBlobsRequest(bucket_id=name)),
        (buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=name, id="b")),
        (buckets.DeleteBlob, bucket_pb2.DeleteBlobRequest(bucket_id=name, id="b")),
        (buckets.GetBlobMetadata, bucket_pb2.GetBlobMetadataRequest(bucket_id=name, id="b")),
        (
            buckets.UpdateBlobMetadata,
            bucket_pb2.UpdateBlobMetadataRequest(bucket_id=name, id="b", user_metadata={"k": "v"}),
        ),
        (
            lambda request, **kw: list(buckets.DownloadBlob(request, **kw)),
            bucket_pb2.DownloadBlobRequest(bucket_id=name, id="b"),
        ),
    ]
    for call, request in lookups:
        f = refusal(call, request)
        assert _named(f) == (grpc.StatusCode.NOT_FOUND, "bucket", name), (request, f.message)
        assert "Parameter validation" not in f.message
    f = _upload_refusal(ec2_api, name)
    assert _named(f) == (grpc.StatusCode.NOT_FOUND, "bucket", name), f.message


def test_metadata_s3_cannot_store_is_refused_naming_user_metadata(ec2_api: Api) -> None:
    bucket = f"ascii-{uuid.uuid4().hex[:8]}"
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name=bucket), metadata=EC2)
    f = _upload_refusal(ec2_api, bucket, user_metadata={"k": "\u00fc\u2603"})
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_metadata" in f.message and "Non ascii" not in f.message, f.message
    _upload(ec2_api, bucket, "b", b"x")
    f = refusal(
        ec2_api.buckets.UpdateBlobMetadata,
        bucket_pb2.UpdateBlobMetadataRequest(
            bucket_id=bucket, id="b", user_metadata={"k": "\u00fc\u2603"}
        ),
    )
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_metadata" in f.message and "Non ascii" not in f.message, f.message


def test_a_missing_bucket_is_named_by_blob_calls(ec2_api: Api) -> None:
    # DownloadBlob said "bucket '?' not found"; GetBlob and UpdateBlobMetadata "blob 'b'
    # not found" (HeadObject's 404 has no body to tell a bucket from a blob).
    bucket = f"gone-{uuid.uuid4().hex[:8]}"
    buckets = ec2_api.buckets
    for call, request in [
        (buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=bucket, id="b")),
        (buckets.DeleteBlob, bucket_pb2.DeleteBlobRequest(bucket_id=bucket, id="b")),
        (
            buckets.UpdateBlobMetadata,
            bucket_pb2.UpdateBlobMetadataRequest(
                bucket_id=bucket, id="b", user_metadata={"k": "v"}
            ),
        ),
        (
            lambda request, **kw: list(buckets.DownloadBlob(request, **kw)),
            bucket_pb2.DownloadBlobRequest(bucket_id=bucket, id="b"),
        ),
    ]:
        f = refusal(call, request)
        assert _named(f) == (grpc.StatusCode.NOT_FOUND, "bucket", bucket), f.message
    # In a bucket that is there, the blob is what is missing.
    buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name=bucket), metadata=EC2)
    f = refusal(buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=bucket, id="b"))
    assert _named(f) == (grpc.StatusCode.NOT_FOUND, "blob", "b")
    f = refusal(
        lambda request, **kw: list(buckets.DownloadBlob(request, **kw)),
        bucket_pb2.DownloadBlobRequest(bucket_id=bucket, id="b"),
    )
    assert _named(f) == (grpc.StatusCode.NOT_FOUND, "blob", "b")


# ---- outage -------------------------------------------------------------------------------


def test_an_outage_is_unavailable_within_the_deadline_and_service_comes_back(
    moto: MotoServer, tmp_path: Path
) -> None:
    own = MotoServer().start()
    server = ec2_server(tmp_path, own)
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            request = realm_pb2.ListRealmsRequest()
            assert api.realms.ListRealms(request, metadata=EC2, timeout=10).realms
            own.stop()
            started = time.monotonic()
            f = refusal(api.realms.ListRealms, request, timeout=3)
            took = time.monotonic() - started
            assert (f.code, f.reason) == (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE")
            assert took < 3
            f = refusal(
                api.instances.ListInstances, instance_pb2.ListInstancesRequest(), timeout=10
            )
            assert (f.code, f.reason) == (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE")
            own.start()
            assert api.realms.ListRealms(request, metadata=EC2, timeout=10).realms
    finally:
        server.kill()
        own.stop()


def test_requests_to_the_cloud_are_counted_by_outcome(tmp_path: Path) -> None:
    """/metrics counts every request the driver sends to EC2, by operation and outcome:
    answered, refused (a missing image), and unanswered once the endpoint is down."""
    own = MotoServer().start()
    server = ec2_server(tmp_path, own, extra=["--metrics-listen", "127.0.0.1:0"])
    try:
        address = metrics_address(server)
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            request = realm_pb2.ListRealmsRequest()
            api.realms.ListRealms(request, metadata=EC2, timeout=10)
            refusal(api.images.GetImage, image_pb2.GetImageRequest(id="ami-0000dead"))
            own.stop()
            refusal(api.realms.ListRealms, request, timeout=3)
        series = parse(scrape(address))
    finally:
        server.kill()
        own.stop()
    attempts = "deltacloud_backend_attempts_total"
    zones = {"driver": "ec2", "service": "ec2", "operation": "DescribeAvailabilityZones"}
    assert value(series, attempts, **zones, outcome="ok") == 1
    assert value(series, attempts, **zones, outcome="network_error") >= 1
    images = {"driver": "ec2", "service": "ec2", "operation": "DescribeImages"}
    assert value(series, attempts, **images, outcome="client_error") >= 1
    calls = {"driver": "ec2", "method": "list_realms"}
    assert value(series, "deltacloud_driver_calls_total", **calls, code="OK") == 1
    assert value(series, "deltacloud_driver_calls_total", **calls, code="UNAVAILABLE") == 1


def test_attempts_are_classified_from_the_answer_or_its_absence() -> None:
    def answer(status: int, code: str = "") -> tuple[SimpleNamespace, dict[str, Any]]:
        return SimpleNamespace(status_code=status), ({"Error": {"Code": code}} if code else {})

    cases = {
        "ok": [answer(200), answer(204)],
        "throttled": [
            answer(503, "RequestLimitExceeded"),
            answer(400, "Throttling"),
            answer(503, "SlowDown"),
            answer(429),
        ],
        "server_error": [answer(500, "InternalError"), answer(503, "Unavailable")],
        # S3 can answer 200 with an error in the body (CompleteMultipartUpload).
        "client_error": [answer(400, "InvalidAMIID.NotFound"), answer(200, "InternalError")],
    }
    for outcome, responses in cases.items():
        for response in responses:
            assert attempt_outcome(response, None) == outcome, response
    assert attempt_outcome(None, ConnectionRefusedError()) == "network_error"


@contextlib.contextmanager
def behind_a_blackhole(
    moto: MotoServer, tmp_path: Path, workers: int, *extra: str
) -> Iterator[tuple[Blackhole, ServerProcess, Api]]:
    """An ec2 server with ``workers`` call workers (and ``extra`` flags) whose endpoint is
    moto through a proxy that can go silent (tests/blackhole.py), and an Api on it."""
    with Blackhole(int(moto.url.rsplit(":", 1)[1])) as hole:
        endpoint = SimpleNamespace(url=f"http://{hole.target}")
        flags = ["--workers", str(workers), *extra]
        server = ec2_server(tmp_path, endpoint, extra=flags)  # type: ignore[arg-type]
        try:
            with grpc.insecure_channel(server.target) as channel:
                yield hole, server, Api(channel)
        finally:
            server.kill()


def assert_another_driver_answers(api: Api, key_name: str) -> None:
    """A call to the mock driver (a write: it needs a call worker) answered within 5 s."""
    from deltacloud.v1 import key_pb2

    mock = metadata("mockuser", "mockpassword", driver="mock")
    key = api.keys.CreateKey(key_pb2.CreateKeyRequest(name=key_name), metadata=mock, timeout=5)
    assert key.id == key_name


def test_a_hung_endpoint_is_unavailable_within_the_deadline_and_frees_the_worker(
    moto: MotoServer, tmp_path: Path
) -> None:
    """An endpoint that accepts connections and never answers (a hung server, a path that
    drops everything): each call is answered BACKEND_UNAVAILABLE before the client's
    deadline, and its worker is free again by then: with a single worker, the next call is
    answered the same way rather than queued behind the first."""
    with behind_a_blackhole(moto, tmp_path, workers=1) as (hole, _, api):
        request = realm_pb2.ListRealmsRequest()
        assert api.realms.ListRealms(request, metadata=EC2, timeout=10).realms
        hole.hang()
        for deadline in (4.0, 4.0, 12.0):
            started = time.monotonic()
            f = refusal(api.realms.ListRealms, request, timeout=deadline)
            took = time.monotonic() - started
            assert (f.code, f.reason) == (
                grpc.StatusCode.UNAVAILABLE,
                "BACKEND_UNAVAILABLE",
            ), (deadline, took, f)
            assert took < deadline


def test_one_users_calls_to_a_hung_endpoint_leave_workers_for_the_others(
    moto: MotoServer, tmp_path: Path
) -> None:
    """Six calls of one user to an endpoint that stopped answering took every worker (each
    holds one until its backend budget runs out, about its deadline): another user's call
    to a healthy cloud waited behind them. With --calls-per-scope 2, the user holds two of
    the three workers, the others wait their turn, and the other call is answered at once;
    the waiting calls are still answered, within their deadline."""
    with behind_a_blackhole(moto, tmp_path, 3, "--calls-per-scope", "2") as (hole, _, api):
        request = realm_pb2.ListRealmsRequest()
        assert api.realms.ListRealms(request, metadata=EC2, timeout=10).realms
        hole.hang()
        started = time.monotonic()
        hung = [api.realms.ListRealms.future(request, metadata=EC2, timeout=12) for _ in range(6)]
        time.sleep(1.0)  # two on workers, waiting on the silent endpoint; four in line
        mock = metadata("mockuser", "mockpassword", driver="mock")
        other = key_pb2.CreateKeyRequest(name="while-one-user-hangs")
        assert api.keys.CreateKey(other, metadata=mock, timeout=3).id == other.name
        for future in hung:
            error = future.exception(timeout=30)
            assert isinstance(error, grpc.RpcError)
            assert error.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ), error
        assert time.monotonic() - started < 12 + 5


def test_watches_on_a_hung_endpoint_do_not_take_the_workers_other_calls_need(
    moto: MotoServer, tmp_path: Path
) -> None:
    """Each watched scope polls its backend: three scopes whose endpoint stops answering
    must not hold the server's two workers (a poll without deadline held one for a
    minute), so a call to another driver is answered meanwhile; and the polls give up."""
    with behind_a_blackhole(moto, tmp_path, workers=2) as (hole, server, api):
        often = instance_pb2.WatchInstanceEventsRequest(
            progress_interval=duration_pb2.Duration(nanos=200_000_000)
        )
        watchers = [
            Watcher(api.channel, metadata(f"AKIAWATCH{i}", SECRET_KEY, driver="ec2"), often)
            for i in range(3)
        ]
        try:
            for watcher in watchers:  # streaming: each scope's monitor polls
                watcher.wait_until(lambda w: len(w.messages) > 0)
            hole.hang()
            time.sleep(1.0)  # every scope's next poll is waiting on the silent endpoint
            assert_another_driver_answers(api, "while-polls-hang")
            # The hung polls give up at their deadline (POLL_DEADLINE), each scope's.
            deadline = time.monotonic() + POLL_DEADLINE + 5
            while server.log().count("observing instances failed") < 3:
                assert time.monotonic() < deadline, server.log()[-2000:]
                time.sleep(0.2)
        finally:
            for watcher in watchers:
                watcher.cancel()


def test_downloads_from_a_stalled_endpoint_do_not_take_the_workers_other_calls_need(
    moto: MotoServer, tmp_path: Path
) -> None:
    """A download reads its blob from the cloud a piece at a time on a worker: two whose
    endpoint goes silent mid-body must not hold the server's two workers, so a call to
    another driver is answered meanwhile."""
    with behind_a_blackhole(moto, tmp_path, workers=2) as (hole, _, api):
        api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="slow"), metadata=EC2)
        _upload(api, "slow", "big", secrets.token_bytes(48 * MIB))
        downloads = [
            api.buckets.DownloadBlob(
                bucket_pb2.DownloadBlobRequest(bucket_id="slow", id="big"),
                metadata=EC2,
                timeout=60,
            )
            for _ in range(2)
        ]
        received = [0, 0]
        frozen = threading.Event()

        def read(index: int) -> None:
            with contextlib.suppress(grpc.RpcError):  # cancelled at the end
                for message in downloads[index]:
                    received[index] += len(message.chunk)
                    if received[index] >= 2 * MIB:
                        # Neither may finish before the endpoint goes silent (gRPC's flow
                        # control holds the server back meanwhile).
                        frozen.wait(10)

        readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + 10
        while min(received) < 2 * MIB:  # both bodies are flowing
            assert time.monotonic() < deadline
            time.sleep(0.01)
        hole.freeze()  # the bodies stop mid-way, their connections open
        frozen.set()
        time.sleep(1.0)
        assert max(received) < 48 * MIB  # stalled, not finished
        assert_another_driver_answers(api, "while-downloads-stall")
        for stream in downloads:
            stream.cancel()
        for reader in readers:
            reader.join(10)


_CLIENT_MEMORY = """
import os
from deltacloud.drivers import CallContext, Credentials
from deltacloud.drivers.ec2.clients import ClientCache

def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

ctx = lambda i: CallContext(Credentials(f"AKIA{i:04d}", "secret"), "us-east-1")
caches = [ClientCache() for _ in range(9)]  # clients in caches of their own, all kept
caches[0].get(ctx(0), "ec2", "us-east-1", "http://127.0.0.1:9")  # loads the EC2 model
before = rss()
for i in range(1, 9):  # other credentials and regions, in the other caches
    caches[i].get(ctx(i), "ec2", f"eu-west-{i}", "http://127.0.0.1:9")
print((rss() - before) / 8)
"""


def test_each_cached_ec2_client_costs_little_memory() -> None:
    """A client per (credentials, region, endpoint, time budget) is kept: none may carry
    its own copy of the EC2 service model (20-24 MiB when
    each client had its own session)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads VmRSS from /proc")  # a fact of the platform
    result = subprocess.run(
        [sys.executable, "-c", _CLIENT_MEMORY], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    per_client = float(result.stdout.strip())
    assert per_client < 8, f"{per_client:.1f} MiB per cached EC2 client"


def test_every_regions_driver_shares_one_bounded_client_cache(tmp_path: Path) -> None:
    """client_cache_size bounds the clients of the whole server, not of each region (nine
    regions kept 64 clients each before; endpoint providers one cache each)."""
    config = DriverConfig(tmp_path, {"client_cache_size": "3"})
    drivers = [EC2Driver(region, config) for region in ("us-east-1", "eu-west-1")]
    for i in range(4):
        ctx = CallContext(Credentials(f"AKIA{i:04d}", "secret"), "", time.monotonic() + 30)
        for driver in drivers:
            assert driver.client(ctx, "ec2") is driver.client(ctx, "ec2")  # reused
    assert drivers[0]._clients is drivers[1]._clients
    assert len(drivers[0]._clients) == 3


def test_endpoint_providers_clients_name_do_not_grow_the_servers_drivers(tmp_path: Path) -> None:
    """Every ``REGION@URL`` provider a client sends builds a driver instance, even one the
    server then refuses (PROVIDER_ENDPOINT_NOT_ALLOWED): the server keeps the last
    MAX_UNLISTED_PROVIDERS of them, and every listed region's for good."""
    gateway = Gateway(ServerConfig(data_dir=tmp_path))
    cls = gateway.driver_class("ec2")
    region = gateway.instance(cls, "us-east-1")
    for port in range(1, MAX_UNLISTED_PROVIDERS + 100):
        gateway.instance(cls, f"us-east-1@http://127.0.0.1:{port}")
    assert gateway.driver_instances == MAX_UNLISTED_PROVIDERS + 1
    assert gateway.instance(cls, "us-east-1") is region
    newest = f"us-east-1@http://127.0.0.1:{MAX_UNLISTED_PROVIDERS + 99}"
    assert gateway.instance(cls, newest) is gateway.instance(cls, newest)
    gateway.close()


@pytest.mark.parametrize("limit", TIMEOUT_CLASSES)
def test_each_time_budget_fits_its_attempts_timeouts_and_sleeps(limit: float) -> None:
    budget = Budget.of(limit)
    assert budget.worst_case() <= limit + 1e-9
    assert budget.read >= budget.connect > 0
    assert timeout_class(limit) == limit
    assert timeout_class(limit + 0.001) == limit  # the largest budget that fits


# ---- the error mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("AuthFailure", 401, "AUTHENTICATION_FAILED"),
        ("InvalidClientTokenId", 403, "AUTHENTICATION_FAILED"),
        ("SignatureDoesNotMatch", 403, "AUTHENTICATION_FAILED"),
        ("InvalidInstanceID.NotFound", 400, "RESOURCE_NOT_FOUND"),
        ("NoSuchKey", 404, "RESOURCE_NOT_FOUND"),
        ("IncorrectInstanceState", 400, "INCORRECT_INSTANCE_STATE"),
        ("UnsupportedOperation", 400, "UNSUPPORTED_FOR_THIS_INSTANCE"),
        ("RequestLimitExceeded", 503, "BACKEND_UNAVAILABLE"),
        ("Throttling", 400, "BACKEND_UNAVAILABLE"),
        ("UnauthorizedOperation", 403, "PERMISSION_DENIED"),
        ("InstanceLimitExceeded", 400, "QUOTA_EXCEEDED"),
        ("IdempotentParameterMismatch", 400, "REQUEST_ID_REUSED"),
        ("SomethingNew", 500, "BACKEND_ERROR"),
        # Refusals no retry can change: they answered UNAVAILABLE or INVALID_ARGUMENT.
        ("InvalidSnapshot.InUse", 400, "IN_USE"),
        ("CannotDelete", 400, "FAILED_PRECONDITION"),
        ("KeyTooLongError", 400, "BACKEND_REFUSED_PARAMETERS"),
        ("MetadataTooLarge", 400, "BACKEND_REFUSED_PARAMETERS"),
        ("DuplicateListener", 400, "BACKEND_REFUSED_PARAMETERS"),
        ("UnsupportedProtocol", 400, "BACKEND_REFUSED_PARAMETERS"),
        ("TooManyLoadBalancers", 400, "QUOTA_EXCEEDED"),
    ],
)
def test_backend_codes_map_to_sdk_errors(code: str, status: int, reason: str) -> None:

    error = ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "AnyOperation",
    )
    mapped = translate(error)
    assert mapped.reason == reason
    if reason not in ("AUTHENTICATION_FAILED", "RESOURCE_NOT_FOUND"):
        assert mapped.metadata["backend_code"] == code


@pytest.mark.parametrize(
    ("code", "message", "asked", "named"),
    [
        # Another group than the one asked for: the one the message quotes.
        (
            "InvalidGroup.NotFound",
            "The security group 'sg-9' does not exist",
            "firewall:sg-1",
            "firewall:sg-9",
        ),
        (
            "InvalidGroup.NotFound",
            "The security group 'sg-9' does not exist",
            "instance:",
            "firewall:sg-9",
        ),
        # A quote that is not an id of the kind: what was asked for.
        (
            "InvalidKeyPair.NotFound",
            "The key pair '{'KeyName': 'k'}' does not exist",
            "key:k",
            "key:k",
        ),
        (
            "InvalidAMIID.Malformed",
            "Invalid id: 'not-an-ami'",
            "image:not-an-ami",
            "image:not-an-ami",
        ),
        # Another kind, no id to tell: that kind, and no id.
        ("NoSuchBucket", "The specified bucket does not exist", "blob:k", "bucket:?"),
        (
            "InvalidPermission.Duplicate",
            'the rule "tcp 443" already exists',
            "firewall:sg-1",
            "firewall_rule:?",
        ),
    ],
)
def test_refusals_name_what_the_backend_says_is_missing_or_there(
    code: str, message: str, asked: str, named: str
) -> None:
    error = ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        "AnyOperation",
    )
    resource_type, _, resource_id = asked.partition(":")
    mapped = translate(error, resource_type, resource_id)
    assert f"{mapped.metadata['resource_type']}:{mapped.metadata['resource_id']}" == named


def test_a_value_no_http_header_can_carry_is_invalid_argument_not_unavailable() -> None:
    from botocore.exceptions import HTTPClientError

    wrapped = HTTPClientError(error=ValueError("Invalid header value b'a\\nb'"))
    mapped = translate(wrapped, "blob", "k")
    assert (type(mapped).__name__, mapped.reason) == ("ValidationError", "INVALID_HEADER_VALUE")
    refused = HTTPClientError(error=ConnectionRefusedError(111, "refused"))
    assert translate(refused).reason == "BACKEND_UNAVAILABLE"


def test_an_instance_store_instance_does_not_offer_stop() -> None:
    from deltacloud.drivers import InstanceAction
    from deltacloud.drivers.ec2 import EC2Driver

    described = {"InstanceId": "i-1", "State": {"Name": "running"}}
    machine = EC2Driver.instance_states
    assert machine is not None
    ebs = EC2Driver._instance({**described, "RootDeviceType": "ebs"})
    store = EC2Driver._instance({**described, "RootDeviceType": "instance-store"})
    assert InstanceAction.STOP in ebs.offered_actions(machine)
    assert store.offered_actions(machine) == [
        a for a in ebs.offered_actions(machine) if a is not InstanceAction.STOP
    ]


def test_connection_failures_are_backend_unavailable() -> None:
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    for error in (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ):
        assert translate(error).reason == "BACKEND_UNAVAILABLE"


def test_credentials_stay_out_of_debug_logs(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = PlainServer(
        tmp_path_factory.mktemp("ec2-debug"),
        extra_args=[*server_flags(moto), "--log-level", "DEBUG"],
    ).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=EC2)
            created = create(api)
            api.instances.GetInstance(instance_pb2.GetInstanceRequest(id=created.id), metadata=EC2)
            refusal(api.images.GetImage, image_pb2.GetImageRequest(id="ami-0000dead"))
        assert server.stop() == 0
        log = server.log()
        assert '"level": "DEBUG"' in log  # it did log at DEBUG
        assert ACCESS_KEY not in log and SECRET_KEY not in log
    finally:
        server.kill()


def ec2_forms(requests: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The EC2 query-API requests among moto's recorded ones, as {parameter: value}."""
    forms = []
    for request in requests:
        body = request.get("body") or ""
        if request.get("body_encoded") in (True, "True"):
            body = base64.b64decode(body).decode()
        form = dict(urllib.parse.parse_qsl(body))
        if "Action" in form:
            forms.append(form)
    return forms


def test_request_ids_reach_ec2_as_client_tokens(ec2_api: Api, moto: MotoServer) -> None:
    """A create's request id goes to RunInstances and CreateVolume as ClientToken (EC2 then
    answers a retry the server could not: one whose first answer it never kept); a retry
    the server kept the answer of asks the cloud nothing."""
    instance_request = instance_pb2.CreateInstanceRequest(
        image_id=X86_IMAGE, request_id=str(uuid.uuid4())
    )
    volume_request = storage_volume_pb2.CreateStorageVolumeRequest(
        capacity_gb=1, request_id=str(uuid.uuid4())
    )
    with moto.recording() as requests:
        instance = ec2_api.instances.CreateInstance(instance_request, metadata=EC2, timeout=15)
        volume = ec2_api.volumes.CreateStorageVolume(volume_request, metadata=EC2, timeout=15)
    sent = {form["Action"]: form for form in ec2_forms(requests)}
    assert sent["RunInstances"]["ClientToken"] == instance_request.request_id
    assert sent["CreateVolume"]["ClientToken"] == volume_request.request_id
    with moto.recording() as requests:
        again = ec2_api.instances.CreateInstance(instance_request, metadata=EC2, timeout=15)
        same_volume = ec2_api.volumes.CreateStorageVolume(volume_request, metadata=EC2, timeout=15)
    assert (again, same_volume) == (instance, volume)
    actions = [form["Action"] for form in ec2_forms(requests)]
    assert "RunInstances" not in actions and "CreateVolume" not in actions


def test_a_snapshot_or_address_retried_on_another_server_is_the_one_first_made(
    ec2_api: Api, moto: MotoServer, tmp_path: Path
) -> None:
    """EC2 takes no ClientToken for snapshots and elastic IPs: the request id goes on them
    as a tag, so a retry that lands on another server in front of the same cloud (whose
    request log never saw it) is answered with what the first attempt made, not a second
    one; the same id with another volume is refused."""
    volume = ec2_api.volumes.CreateStorageVolume(
        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1), metadata=EC2, timeout=15
    )
    snapshot_request = storage_snapshot_pb2.CreateStorageSnapshotRequest(
        storage_volume_id=volume.id, name="retried", request_id=str(uuid.uuid4())
    )
    address_request = address_pb2.CreateAddressRequest(request_id=str(uuid.uuid4()))
    snapshot = ec2_api.snapshots.CreateStorageSnapshot(snapshot_request, metadata=EC2, timeout=15)
    address = ec2_api.addresses.CreateAddress(address_request, metadata=EC2, timeout=15)
    other = ec2_server(tmp_path, moto)
    try:
        with grpc.insecure_channel(other.target) as channel:
            api = Api(channel)
            again = api.snapshots.CreateStorageSnapshot(snapshot_request, metadata=EC2, timeout=15)
            same = api.addresses.CreateAddress(address_request, metadata=EC2, timeout=15)
            assert (again.id, again.name, same.id) == (snapshot.id, "retried", address.id)
            second = api.volumes.CreateStorageVolume(
                storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1), metadata=EC2
            )
            reused = storage_snapshot_pb2.CreateStorageSnapshotRequest(
                storage_volume_id=second.id, request_id=snapshot_request.request_id
            )
            f = refusal(api.snapshots.CreateStorageSnapshot, reused)
            assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    finally:
        other.kill()
    ec2 = moto.client("ec2")
    tagged = [{"Name": "tag:deltacloud:request-id", "Values": [snapshot_request.request_id]}]
    assert len(ec2.describe_snapshots(OwnerIds=["self"], Filters=tagged)["Snapshots"]) == 1
    tagged[0]["Values"] = [address_request.request_id]
    assert len(ec2.describe_addresses(Filters=tagged)["Addresses"]) == 1


def test_a_burst_of_creates_does_not_list_the_account_once_per_create(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each create makes an instance pending, and the scope's monitor observes the account
    at the fast interval from its last poll: not at once after every create (a full
    DescribeInstances of a large account per create took each create 47 ms on the mock at
    1,200 instances). Eight creates within the first interval: at most the poll the first
    create starts, and one per interval elapsed after it."""
    server = ec2_server(tmp_path_factory.mktemp("burst"), moto, ["--watch-fast-poll-interval", "2"])
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            create(api)  # the monitor runs from here on
            with moto.recording() as requests:
                started = time.monotonic()
                for _ in range(8):
                    create(api)
                elapsed = time.monotonic() - started
    finally:
        server.kill()
    polls = [
        form
        for form in ec2_forms(requests)
        if form["Action"] == "DescribeInstances" and "InstanceId.1" not in form
    ]
    assert len(polls) <= elapsed / 2 + 1, (len(polls), elapsed)
