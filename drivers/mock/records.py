"""Conversion of the mock driver's stored JSON records to SDK models.

Records mirror the models field by field, with datetimes as ISO-8601 UTC strings, plus a
few fields only the driver sees:

- instance: ``overrides`` (hardware overrides by property), ``state_since`` (wall-clock
  seconds when the state was entered, for automatic transitions), ``imageable`` (inst3 of
  the fixtures may not be imaged), ``user_data`` (base64);
- blob: ``file`` (name of the content file under ``blobs/``);
- firewall: ``next_rule`` (counter for rule ids).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .. import models as m
from ..filters import natural_key
from ..hardware import HardwareOverrides, HardwareProfile
from ..state_machine import InstanceState
from .store import Record


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    # Always hand out timezone-aware UTC datetimes.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def image(rec: Record, profiles: Iterable[HardwareProfile]) -> m.Image:
    arch = str(rec.get("architecture", ""))
    return m.Image(
        id=rec["id"],
        name=rec.get("name", ""),
        owner_id=rec.get("owner_id", ""),
        description=rec.get("description", ""),
        architecture=arch,
        state=rec.get("state", "AVAILABLE"),
        # The profiles an instance of this image can use: same architecture, or undescribed.
        hardware_profile_ids=[p.id for p in profiles if p.architecture_label in (None, arch)],
        create_time=parse_time(rec.get("create_time")),
        root_type=rec.get("root_type", ""),
    )


def overrides(values: dict[str, Any]) -> HardwareOverrides:
    return HardwareOverrides(
        cpu=_float_or_none(values.get("cpu")),
        memory=_float_or_none(values.get("memory")),
        storage=_float_or_none(values.get("storage")),
        architecture=values.get("architecture"),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def instance(rec: Record, volume_ids: list[str], address_ids: list[str]) -> m.Instance:
    """``volume_ids`` and ``address_ids`` are the volumes attached to and the addresses
    associated with the instance (kept on those objects: one source of truth)."""
    public = [m.InstanceAddress(a["address"], a["type"]) for a in rec["public_addresses"]]
    public += [m.InstanceAddress(ip, "ipv4") for ip in address_ids]
    return m.Instance(
        id=rec["id"],
        state=InstanceState(rec["state"]),
        name=rec.get("name", ""),
        owner_id=rec.get("owner_id", ""),
        image_id=rec.get("image_id", ""),
        realm_id=rec.get("realm_id", ""),
        hardware_profile_id=rec.get("hardware_profile_id", ""),
        hardware_profile_overrides=overrides(rec.get("overrides", {})),
        public_addresses=public,
        private_addresses=[
            m.InstanceAddress(a["address"], a["type"]) for a in rec["private_addresses"]
        ],
        launch_time=parse_time(rec.get("launch_time")),
        key_name=rec.get("key_name", ""),
        firewall_ids=list(rec.get("firewall_ids", [])),
        storage_volume_ids=sorted(volume_ids, key=natural_key),
    )


def key(rec: Record) -> m.Key:
    # pem_rsa_key is never stored, so it can never be returned after the create call.
    return m.Key(
        id=rec["id"],
        name=rec.get("name") or rec["id"],
        credential_type=rec.get("credential_type", "KEY"),
        fingerprint=rec.get("fingerprint", ""),
        username=rec.get("username", ""),
        password=rec.get("password", ""),
        public_key=rec.get("public_key", ""),
        state=rec.get("state", "AVAILABLE"),
    )


def volume(rec: Record) -> m.StorageVolume:
    return m.StorageVolume(
        id=rec["id"],
        name=rec.get("name", ""),
        description=rec.get("description", ""),
        create_time=parse_time(rec.get("create_time")),
        state=rec.get("state", "AVAILABLE"),
        capacity_gb=int(rec.get("capacity_gb", 0)),
        instance_id=rec.get("instance_id", ""),
        device=rec.get("device", ""),
        realm_id=rec.get("realm_id", ""),
        kind=rec.get("kind", ""),
    )


def snapshot(rec: Record) -> m.StorageSnapshot:
    return m.StorageSnapshot(
        id=rec["id"],
        storage_volume_id=rec.get("storage_volume_id", ""),
        name=rec.get("name", ""),
        description=rec.get("description", ""),
        state=rec.get("state", "COMPLETED"),
        create_time=parse_time(rec.get("create_time")),
    )


def bucket(rec: Record, blob_count: int) -> m.Bucket:
    return m.Bucket(
        id=rec["id"],
        name=rec.get("name") or rec["id"],
        blob_count=blob_count,
        location=rec.get("location", ""),
    )


def blob(rec: Record) -> m.Blob:
    return m.Blob(
        id=rec["id"],
        bucket_id=rec["bucket_id"],
        content_length=int(rec.get("content_length", 0)),
        content_type=rec.get("content_type", ""),
        last_modified=parse_time(rec.get("last_modified")),
        user_metadata=dict(rec.get("user_metadata", {})),
    )


def address(rec: Record) -> m.Address:
    return m.Address(id=rec["id"], instance_id=rec.get("instance_id", ""))


def firewall_rule_record(rule_id: str, opts: m.CreateFirewallRule) -> Record:
    return {
        "id": rule_id,
        "protocol": opts.protocol,
        "port_from": opts.port_from,
        "port_to": opts.port_to,
        "sources": [{"cidr": s.cidr, "firewall_id": s.firewall_id} for s in opts.sources],
        "direction": opts.direction,
    }


def firewall(rec: Record) -> m.Firewall:
    return m.Firewall(
        id=rec["id"],
        name=rec.get("name") or rec["id"],
        description=rec.get("description", ""),
        owner_id=rec.get("owner_id", ""),
        rules=[
            m.FirewallRule(
                id=r["id"],
                protocol=r["protocol"],
                port_from=int(r["port_from"]),
                port_to=int(r["port_to"]),
                sources=[m.RuleSource(s["cidr"], s["firewall_id"]) for s in r["sources"]],
                direction=r.get("direction", "INGRESS"),
            )
            for r in rec.get("rules", [])
        ],
    )


def load_balancer(rec: Record) -> m.LoadBalancer:
    return m.LoadBalancer(
        id=rec["id"],
        name=rec.get("name") or rec["id"],
        realm_ids=list(rec.get("realm_ids", [])),
        listeners=[
            m.Listener(
                protocol=li["protocol"],
                load_balancer_port=int(li["load_balancer_port"]),
                instance_port=int(li["instance_port"]),
            )
            for li in rec.get("listeners", [])
        ],
        instance_ids=list(rec.get("instance_ids", [])),
        public_addresses=list(rec.get("public_addresses", [])),
        create_time=parse_time(rec.get("create_time")),
    )
