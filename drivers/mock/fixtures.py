"""The mock driver's fixtures: static realms and hardware profiles, and the records the
database is seeded with on first use (as Deltacloud's mock did from its YAML files).

Record layouts (JSON payloads of the ``objects`` table) are documented in
:mod:`deltacloud.drivers.mock.records`; every fixture is owned by ``mockuser`` except the
images, which are shared and carry their ``owner_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..hardware import HardwareProfile, enum_of, fixed, range_of
from ..models import Realm
from ..state_machine import InstanceState
from .keys import fingerprint, public_key_from_seed
from .store import Tx

MOCK_USER = "mockuser"
MOCK_PASSWORD = "mockpassword"

REALMS: tuple[Realm, ...] = (
    Realm(id="us", name="United States", state="AVAILABLE"),
    Realm(id="eu", name="Europe", state="AVAILABLE"),
)

HARDWARE_PROFILES: tuple[HardwareProfile, ...] = (
    HardwareProfile(
        "m1-small",
        cpu=fixed(1),
        memory=fixed(1740.8),
        storage=fixed(160),
        architecture=fixed("i386"),
    ),
    HardwareProfile(
        "m1-large",
        cpu=range_of(1, 6, default=1),
        memory=range_of(7680, 15360, default=10240),
        storage=enum_of(850, 1024),
        architecture=fixed("x86_64"),
    ),
    HardwareProfile(
        "m1-xlarge",
        cpu=fixed(4),
        memory=range_of(12288, 32768),
        storage=enum_of(1024, 2048, 4096),
        architecture=fixed("x86_64"),
    ),
    HardwareProfile("opaque"),
)

#: Fixed creation times keep the fixtures identical from one data directory to the next.
_EPOCH = datetime(2010, 1, 1, tzinfo=UTC).isoformat()

_IMAGES: list[dict[str, Any]] = [
    {
        "id": "img1",
        "name": "Fedora 10",
        "owner_id": "fedoraproject",
        "description": "Fedora 10 (64 bit)",
        "architecture": "x86_64",
    },
    {
        "id": "img2",
        "name": "Fedora 10",
        "owner_id": "fedoraproject",
        "description": "Fedora 10 (32 bit)",
        "architecture": "i386",
    },
    {
        "id": "img3",
        "name": "JBoss",
        "owner_id": MOCK_USER,
        "description": "JBoss application server on Fedora (32 bit)",
        "architecture": "i386",
    },
]

# (id, name, image, profile, overrides, realm, can be imaged)
_INSTANCES: list[tuple[str, str, str, str, dict[str, float], str, bool]] = [
    (
        "inst0",
        "Mock Instance With Profile Change",
        "img1",
        "m1-large",
        {"memory": 12288.0},
        "us",
        True,
    ),
    ("inst1", "MockUserInstance", "img3", "m1-small", {}, "us", True),
    ("inst2", "AnotherInstance", "img1", "m1-large", {}, "us", True),
    ("inst3", "", "img3", "m1-small", {}, "eu", False),
]

_BLOBS: dict[str, list[str]] = {
    "bucket1": ["blob1", "blob2", "blob3"],
    "bucket2": ["blob4", "blob5"],
}


def instance_addresses(image_id: str, instance_id: str) -> tuple[list[dict[str, str]], ...]:
    """The mock's hostname addresses: ``<image>.<instance>.public.com`` / ``.private.com``."""
    return (
        [{"address": f"{image_id}.{instance_id}.public.com", "type": "hostname"}],
        [{"address": f"{image_id}.{instance_id}.private.com", "type": "hostname"}],
    )


def seed(tx: Tx) -> None:
    """Insert every fixture (called once, inside the transaction creating the schema)."""
    for image in _IMAGES:
        tx.put(
            "image",
            "",
            image["id"],
            {**image, "state": "AVAILABLE", "create_time": _EPOCH, "root_type": "persistent"},
        )
    architectures = {image["id"]: image["architecture"] for image in _IMAGES}
    for inst_id, name, image_id, profile, overrides, realm, imageable in _INSTANCES:
        public, private = instance_addresses(image_id, inst_id)
        tx.put(
            "instance",
            MOCK_USER,
            inst_id,
            {
                "id": inst_id,
                "name": name,
                "owner_id": MOCK_USER,
                "image_id": image_id,
                "architecture": architectures[image_id],
                "realm_id": realm,
                "hardware_profile_id": profile,
                "overrides": overrides,
                "public_addresses": public,
                "private_addresses": private,
                "launch_time": _EPOCH,
                "key_name": "",
                "firewall_ids": [],
                "state": InstanceState.RUNNING.value,
                "state_since": 0.0,
                "imageable": imageable,
                "user_data": "",
            },
        )
    public_key = public_key_from_seed(bytes(range(256)), "test-key@mock")
    tx.put(
        "key",
        MOCK_USER,
        "test-key",
        {
            "id": "test-key",
            "name": "test-key",
            "credential_type": "KEY",
            "fingerprint": fingerprint(public_key),
            "username": "",
            "password": "",
            "public_key": public_key,
            "state": "AVAILABLE",
        },
    )
    for vol_id, state, instance_id, device in [
        ("vol1", "AVAILABLE", "", ""),
        ("vol2", "AVAILABLE", "", ""),
        ("vol3", "IN_USE", "inst1", "/dev/sda1"),
    ]:
        tx.put(
            "volume",
            MOCK_USER,
            vol_id,
            {
                "id": vol_id,
                "name": vol_id,
                "description": f"mock volume {vol_id}",
                "create_time": _EPOCH,
                "state": state,
                "capacity_gb": 1,
                "instance_id": instance_id,
                "device": device,
                "realm_id": "us",
                "kind": "standard",
            },
        )
    for snap_id, volume_id in [("snap1", "vol1"), ("snap2", "vol2"), ("snap3", "vol2")]:
        tx.put(
            "snapshot",
            MOCK_USER,
            snap_id,
            {
                "id": snap_id,
                "storage_volume_id": volume_id,
                "name": snap_id,
                "description": f"snapshot of {volume_id}",
                "capacity_gb": 1,
                "state": "COMPLETED",
                "create_time": _EPOCH,
            },
        )
    for n in range(1, 5):
        ip = f"192.168.0.{n}"
        tx.put("address", MOCK_USER, ip, {"id": ip, "instance_id": ""})
    for bucket_id, blob_ids in _BLOBS.items():
        tx.put("bucket", MOCK_USER, bucket_id, {"id": bucket_id, "name": bucket_id, "location": ""})
        for blob_id in blob_ids:
            content = f"content of blob {blob_id.removeprefix('blob')}".encode()
            file_name, size = tx.store.write_blob_file([content])
            tx.files_written.append(tx.store.blob_path(file_name))
            metadata = {"SOMENEWKEY": "NEWVALUE"} if blob_id == "blob1" else {}
            tx.put(
                "blob",
                MOCK_USER,
                blob_id,
                {
                    "id": blob_id,
                    "bucket_id": bucket_id,
                    "content_length": size,
                    "content_type": "text/plain",
                    "last_modified": _EPOCH,
                    "user_metadata": metadata,
                    "file": file_name,
                },
                parent=bucket_id,
            )
    for kind, prefix in (("image", "img"), ("volume", "vol"), ("snapshot", "snap")):
        tx.remember_ids(kind, prefix)
