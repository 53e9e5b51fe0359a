"""The protobuf contract: buf lint is clean, gen/ is fresh, and every generated module imports."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "node_modules" / ".bin" / "buf"
PROTO_DIR = ROOT / "protos" / "deltacloud" / "v1"
PROTO_STEMS = sorted(p.stem for p in PROTO_DIR.glob("*.proto"))

# Every collection service the contract must offer, by proto file.
EXPECTED_SERVICES = {
    "address": "AddressService",
    "bucket": "BucketService",
    "discovery": "DiscoveryService",
    "firewall": "FirewallService",
    "hardware_profile": "HardwareProfileService",
    "image": "ImageService",
    "instance": "InstanceService",
    "key": "KeyService",
    "load_balancer": "LoadBalancerService",
    "realm": "RealmService",
    "storage_snapshot": "StorageSnapshotService",
    "storage_volume": "StorageVolumeService",
}


def _ensure_importable() -> None:
    """Use the installed deltacloud.v1 package; fall back to gen/ before `pip install -e .`.

    `deltacloud` is a namespace package, so adding gen/ to sys.path extends it."""
    try:
        importlib.import_module("deltacloud.v1.common_pb2")
    except ImportError:
        sys.path.insert(0, str(ROOT / "gen"))
        importlib.invalidate_caches()


def test_buf_lint_passes() -> None:
    if not BUF.exists():
        pytest.fail(f"{BUF} is missing: run `make setup` to install buf from npm")
    result = subprocess.run(
        [str(BUF), "lint", "protos"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "genproto.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        "gen/ is stale; run `make proto` (python scripts/genproto.py):\n"
        f"{result.stdout}{result.stderr}"
    )


def test_every_proto_has_a_service_file_in_the_contract() -> None:
    assert sorted([*EXPECTED_SERVICES, "common"]) == PROTO_STEMS


@pytest.mark.parametrize("stem", PROTO_STEMS)
def test_generated_modules_import(stem: str) -> None:
    _ensure_importable()
    pb2 = importlib.import_module(f"deltacloud.v1.{stem}_pb2")
    grpc_mod = importlib.import_module(f"deltacloud.v1.{stem}_pb2_grpc")
    assert pb2.DESCRIPTOR.package == "deltacloud.v1"
    assert pb2.DESCRIPTOR.name == f"deltacloud/v1/{stem}.proto"
    service = EXPECTED_SERVICES.get(stem)
    if service is None:
        assert not pb2.DESCRIPTOR.services_by_name, "common.proto must define no service"
        return
    assert list(pb2.DESCRIPTOR.services_by_name) == [service]
    assert hasattr(grpc_mod, f"{service}Stub")
    assert hasattr(grpc_mod, f"{service}Servicer")
    assert hasattr(grpc_mod, f"add_{service}Servicer_to_server")
    assert pb2.DESCRIPTOR.services_by_name[service].methods, f"{service} has no RPCs"


def test_instance_state_machine_vocabulary() -> None:
    _ensure_importable()
    common_pb2 = importlib.import_module("deltacloud.v1.common_pb2")
    states = [v.name for v in common_pb2.InstanceState.DESCRIPTOR.values]
    actions = [v.name for v in common_pb2.InstanceAction.DESCRIPTOR.values]
    assert states == [
        "INSTANCE_STATE_UNSPECIFIED",
        "INSTANCE_STATE_START",
        "INSTANCE_STATE_PENDING",
        "INSTANCE_STATE_RUNNING",
        "INSTANCE_STATE_STOPPING",
        "INSTANCE_STATE_STOPPED",
        "INSTANCE_STATE_FINISH",
        "INSTANCE_STATE_ERROR",
    ]
    assert actions == [
        "INSTANCE_ACTION_UNSPECIFIED",
        "INSTANCE_ACTION_CREATE",
        "INSTANCE_ACTION_START",
        "INSTANCE_ACTION_STOP",
        "INSTANCE_ACTION_REBOOT",
        "INSTANCE_ACTION_DESTROY",
    ]


def test_list_methods_follow_the_paging_convention() -> None:
    """Every ListXs request starts with page_size=1/page_token=2 and every response has
    next_page_token=2 (except ListInstanceStates, which returns the state machine)."""
    _ensure_importable()
    checked = 0
    for stem, service in EXPECTED_SERVICES.items():
        pb2 = importlib.import_module(f"deltacloud.v1.{stem}_pb2")
        for method in pb2.DESCRIPTOR.services_by_name[service].methods:
            if not method.name.startswith("List") or method.name == "ListInstanceStates":
                continue
            req = method.input_type.fields_by_name
            resp = method.output_type.fields_by_name
            assert req["page_size"].number == 1, method.full_name
            assert req["page_token"].number == 2, method.full_name
            assert resp["next_page_token"].number == 2, method.full_name
            repeated = [f for f in method.output_type.fields if f.number == 1]
            assert repeated and repeated[0].is_repeated, method.full_name
            checked += 1
    assert checked == 14


def test_watch_instance_events_is_server_streaming() -> None:
    _ensure_importable()
    instance_pb2 = importlib.import_module("deltacloud.v1.instance_pb2")
    method = instance_pb2.DESCRIPTOR.services_by_name["InstanceService"].methods_by_name[
        "WatchInstanceEvents"
    ]
    assert method.server_streaming and not method.client_streaming
    assert method.output_type.name == "WatchInstanceEventsResponse"
