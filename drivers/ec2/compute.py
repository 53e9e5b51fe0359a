"""EC2 compute: availability zones (realms), instance types (hardware profiles), AMIs
(images), instances, key pairs, EBS volumes and snapshots, elastic IPs (addresses) and
security groups (firewalls)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from deltacloud.drivers import (
    COLLECTIONS,
    ActionNotAllowedError,
    AlreadyExistsError,
    CallContext,
    ConflictError,
    Filters,
    HardwareProfile,
    InstanceAction,
    InstanceState,
    NotFoundError,
    ValidationError,
    filter_on,
    fixed,
)
from deltacloud.drivers import models as m
from deltacloud.drivers.public_keys import check_public_key

from . import names
from .errors import translated
from .session import EC2Base, tag

#: EC2 instance state names -> the SDK's states. shutting-down and terminated instances
#: are on their way to FINISH: the driver does not list them (they vanish, which the
#: server's monitor reports as FINISH).
EC2_STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPED,
    "shutting-down": InstanceState.FINISH,
    "terminated": InstanceState.FINISH,
}
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
VOLUME_STATES = {
    "creating": "CREATING",
    "available": "AVAILABLE",
    "in-use": "IN_USE",
    "deleting": "DELETING",
    "deleted": "DELETING",
    "error": "ERROR",
}
#: Attachment states of a volume being attached or detached: the volume's own State says
#: available (attaching) or in-use (detaching) meanwhile; the API's word is ATTACHING.
MOVING_ATTACHMENTS = frozenset({"attaching", "detaching"})
SNAPSHOT_STATES = {"pending": "PENDING", "completed": "COMPLETED", "error": "ERROR"}
IMAGE_STATES = {"available": "AVAILABLE", "pending": "PENDING"}


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get(key, []))
    return items


#: The tag that keeps a create's request id where EC2 takes no ClientToken (snapshots,
#: elastic IPs): a retry finds what its first attempt made, on whichever server it lands.
REQUEST_ID_TAG = "deltacloud:request-id"


def _tags(
    name: str = "", description: str = "", kind: str = "", request_id: str = ""
) -> list[dict[str, Any]]:
    tags = [{"Key": "Name", "Value": name}] if name else []
    if description:
        tags.append({"Key": "Description", "Value": description})
    if request_id:
        tags.append({"Key": REQUEST_ID_TAG, "Value": request_id})
    return [{"ResourceType": kind, "Tags": tags}] if tags else []


def _made_for(request_id: str) -> list[dict[str, Any]]:
    """The filter finding what a create with ``request_id`` made."""
    return [{"Name": f"tag:{REQUEST_ID_TAG}", "Values": [request_id]}]


def _reused(kind: str, request_id: str, made: str, asked: str) -> ValidationError:
    return ValidationError(
        f"request id {request_id} made a {kind} of {made}, not of {asked}",
        reason="REQUEST_ID_REUSED",
        metadata={"request_id": request_id},
    )


class Compute(EC2Base, abstract=True):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._profiles: list[HardwareProfile] | None = None
        self._profiles_lock = threading.Lock()
        #: The region's zone names, as last described (see _check_realm).
        self._realm_ids: frozenset[str] = frozenset()

    def ec2(self, ctx: CallContext) -> Any:
        return self.client(ctx, "ec2")

    # ---- realms ------------------------------------------------------------------------

    def list_realms(self, ctx: CallContext, filters: Filters) -> list[m.Realm]:
        with translated("realm"):
            zones = self.ec2(ctx).describe_availability_zones()["AvailabilityZones"]
        realms = [
            m.Realm(
                id=z["ZoneName"],
                name=z["ZoneName"],
                state="AVAILABLE" if z.get("State") == "available" else "UNAVAILABLE",
            )
            for z in zones
        ]
        return filter_on(realms, filters, *COLLECTIONS["realms"].filters)

    def _check_realm(self, ctx: CallContext, realm_id: str) -> None:
        """NOT_FOUND for a realm the region has no availability zone of: EC2 takes some
        unknown zones (moto makes a volume in none, ELB fails). The zones are described once
        and kept; a name not among them is looked up again before it is refused (a zone
        opted into since)."""
        if realm_id in self._realm_ids:
            return
        known = frozenset(r.id for r in self.list_realms(ctx, {}))
        self._realm_ids = known
        if realm_id not in known:
            raise NotFoundError("realm", realm_id)

    # ---- hardware profiles: instance types, fetched once per region ---------------------

    def list_hardware_profiles(self, ctx: CallContext, filters: Filters) -> list[HardwareProfile]:
        profiles = filter_on(self._catalog(ctx), filters, "id")
        arch = filters.get("architecture")
        if arch:
            profiles = [p for p in profiles if p.architecture and p.architecture.allows(str(arch))]
        return profiles

    def _catalog(self, ctx: CallContext) -> list[HardwareProfile]:
        with self._profiles_lock:
            if self._profiles is not None:
                return self._profiles
        params: dict[str, Any] = {}
        if self.instance_types:
            params["InstanceTypes"] = self.instance_types
        with translated("hardware_profile"):
            types = _pages(self.ec2(ctx), "describe_instance_types", "InstanceTypes", **params)
        profiles = sorted((self._profile(t) for t in types), key=lambda p: p.id)
        with self._profiles_lock:
            self._profiles = profiles
        return profiles

    @staticmethod
    def _profile(t: dict[str, Any]) -> HardwareProfile:
        archs = t.get("ProcessorInfo", {}).get("SupportedArchitectures") or []
        arch = "x86_64" if "x86_64" in archs else (archs[0] if archs else "")
        storage = t.get("InstanceStorageInfo", {}).get("TotalSizeInGB")
        return HardwareProfile(
            t["InstanceType"],
            cpu=fixed(t.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
            memory=fixed(t.get("MemoryInfo", {}).get("SizeInMiB", 0)),
            storage=fixed(storage) if storage else None,
            architecture=fixed(arch) if arch else None,
        )

    def default_hardware_profile_id(self, ctx: CallContext, image_id: str) -> str:
        image = self.get_image(ctx, image_id)
        wanted = self.default_types.get(image.architecture or "x86_64")
        known = {p.id: p for p in self._catalog(ctx)}
        profile = known.get(wanted or "")
        if profile is not None and (
            not image.architecture
            or profile.architecture is None
            or profile.architecture.allows(image.architecture)
        ):
            return profile.id
        return super().default_hardware_profile_id(ctx, image_id)

    # ---- images: AMIs, with owner and architecture pushed down to DescribeImages ---------

    def list_images(self, ctx: CallContext, filters: Filters) -> list[m.Image]:
        image_id = str(filters.get("id") or "")
        if image_id:
            try:
                return filter_on(
                    [self.get_image(ctx, image_id)], filters, *COLLECTIONS["images"].filters
                )
            except NotFoundError:
                return []
        owner = _owner_filter(filters)
        arch = str(filters.get("architecture") or "")
        owners = [owner] if owner else self.image_owners
        # ListImages pages with list_page; this whole list serves other callers only.
        params: dict[str, Any] = {"Owners": owners}
        if arch:
            params["Filters"] = [{"Name": "architecture", "Values": [arch]}]
        with translated("image"):
            found = self.ec2(ctx).describe_images(**params)["Images"]
        catalog = self._catalog(ctx)
        return [self._image(i, catalog) for i in found]

    def image_page(
        self, ctx: CallContext, filters: Filters, page_size: int, cursor: str
    ) -> tuple[list[Any], str]:
        """Images a page at a time with DescribeImages' MaxResults/NextToken. The cursor is
        ``NEXTTOKEN|OFFSET``: MaxResults is at least 5, and an endpoint may ignore it, so
        the offset says where in the fetched page the next one starts."""
        if filters.get("id"):
            return self.list_images(ctx, filters), ""
        token, _, offset_text = cursor.partition("|")
        try:
            offset = int(offset_text or 0)
        except ValueError:
            raise ValidationError("malformed image page cursor") from None
        owner = _owner_filter(filters)
        arch = str(filters.get("architecture") or "")
        params: dict[str, Any] = {
            "Owners": [owner] if owner else self.image_owners,
            "MaxResults": max(5, min(1000, page_size)),
        }
        if arch:
            params["Filters"] = [{"Name": "architecture", "Values": [arch]}]
        if token:
            params["NextToken"] = token
        with translated("image"):
            answer = self.ec2(ctx).describe_images(**params)
        fetched = answer.get("Images", [])
        catalog = self._catalog(ctx)
        page = [self._image(i, catalog) for i in fetched[offset : offset + page_size]]
        if offset + page_size < len(fetched):
            return page, f"{token}|{offset + page_size}"
        following = answer.get("NextToken") or ""
        return page, f"{following}|0" if following else ""

    def get_image(self, ctx: CallContext, image_id: str) -> m.Image:
        with translated("image", image_id):
            found = self.ec2(ctx).describe_images(ImageIds=[image_id])["Images"]
        if not found:
            raise NotFoundError("image", image_id)
        return self._image(found[0], self._catalog(ctx))

    @staticmethod
    def _image(i: dict[str, Any], catalog: list[HardwareProfile]) -> m.Image:
        """``catalog``: the region's profiles; the image lists those of its architecture
        (with ``ec2.instance_types`` the operator keeps that list short)."""
        arch = i.get("Architecture", "")
        fitting = [
            p.id
            for p in catalog
            if not arch or p.architecture is None or p.architecture.allows(arch)
        ]
        return m.Image(
            id=i["ImageId"],
            name=i.get("Name", ""),
            owner_id=i.get("OwnerId", ""),
            description=i.get("Description", ""),
            architecture=arch,
            state=IMAGE_STATES.get(i.get("State", ""), "UNAVAILABLE"),
            hardware_profile_ids=fitting,
            create_time=_when(i.get("CreationDate")),
            root_type=i.get("RootDeviceType", ""),
        )

    def create_image(self, ctx: CallContext, opts: m.CreateImage) -> m.Image:
        if opts.name:
            names.check_image_name(opts.name)
        name = opts.name or f"{opts.instance_id}-{int(time.time())}"
        params: dict[str, Any] = {"InstanceId": opts.instance_id, "Name": name}
        if opts.description:
            params["Description"] = opts.description
        with translated("instance", opts.instance_id):
            image_id = self.ec2(ctx).create_image(**params)["ImageId"]
        return self.get_image(ctx, image_id)

    def delete_image(self, ctx: CallContext, image_id: str) -> None:
        self.get_image(ctx, image_id)
        with translated("image", image_id):
            self.ec2(ctx).deregister_image(ImageId=image_id)

    # ---- instances -----------------------------------------------------------------------

    def list_instances(self, ctx: CallContext, filters: Filters) -> list[m.Instance]:
        instance_id = str(filters.get("id") or "")
        params: dict[str, Any] = {}
        if instance_id:
            # One id: a plain lookup (the backend filters nothing); dead ones dropped below.
            params["InstanceIds"] = [instance_id]
        else:
            ec2_filters = [{"Name": "instance-state-name", "Values": LIVE_STATES}]
            realm = str(filters.get("realm_id") or "")
            if realm:
                ec2_filters.append({"Name": "availability-zone", "Values": [realm]})
            params["Filters"] = ec2_filters
        try:
            with translated("instance", instance_id):
                if instance_id:  # one page at most: no paginator machinery
                    answer = self.ec2(ctx).describe_instances(**params)
                    reservations = answer.get("Reservations", [])
                else:
                    reservations = _pages(
                        self.ec2(ctx), "describe_instances", "Reservations", **params
                    )
        except NotFoundError:
            if instance_id:
                return []
            raise
        found = [
            self._instance(i, r.get("OwnerId", ""))
            for r in reservations
            for i in r.get("Instances", [])
            if i.get("State", {}).get("Name") in LIVE_STATES
        ]
        return filter_on(found, filters, *COLLECTIONS["instances"].filters)

    def get_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        found = self.list_instances(ctx, {"id": instance_id})
        if not found:
            raise NotFoundError("instance", instance_id)
        return found[0]

    @staticmethod
    def _instance(i: dict[str, Any], owner: str = "") -> m.Instance:
        public: list[m.InstanceAddress] = []
        private: list[m.InstanceAddress] = []
        if i.get("PublicIpAddress"):
            public.append(m.InstanceAddress(i["PublicIpAddress"]))
        if i.get("PublicDnsName"):
            public.append(m.InstanceAddress(i["PublicDnsName"], "hostname"))
        if i.get("PrivateIpAddress"):
            private.append(m.InstanceAddress(i["PrivateIpAddress"]))
        if i.get("PrivateDnsName"):
            private.append(m.InstanceAddress(i["PrivateDnsName"], "hostname"))
        groups = [g["GroupId"] for g in i.get("SecurityGroups", []) if g.get("GroupId")]
        if not groups:
            for eni in i.get("NetworkInterfaces", []):
                groups += [g["GroupId"] for g in eni.get("Groups", []) if g.get("GroupId")]
        # An instance-store instance cannot be stopped (EC2 answers UnsupportedOperation).
        unavailable = (
            frozenset({InstanceAction.STOP})
            if i.get("RootDeviceType") == "instance-store"
            else frozenset()
        )
        volumes = [
            b["Ebs"]["VolumeId"]
            for b in i.get("BlockDeviceMappings", [])
            if b.get("Ebs", {}).get("VolumeId")
        ]
        return m.Instance(
            id=i["InstanceId"],
            state=EC2_STATES.get(i.get("State", {}).get("Name", ""), InstanceState.ERROR),
            name=tag(i.get("Tags"), "Name"),
            owner_id=owner,
            image_id=i.get("ImageId", ""),
            realm_id=i.get("Placement", {}).get("AvailabilityZone", ""),
            hardware_profile_id=i.get("InstanceType", ""),
            public_addresses=public,
            private_addresses=private,
            launch_time=_when(i.get("LaunchTime")),
            key_name=i.get("KeyName", ""),
            firewall_ids=list(dict.fromkeys(groups)),
            storage_volume_ids=volumes,
            unavailable_actions=unavailable,
        )

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        names.check_tag_value("name", opts.name)
        image = self.get_image(ctx, opts.image_id)
        profile_id = opts.hardware_profile_id or self.default_hardware_profile_id(ctx, image.id)
        profile = self.get_hardware_profile(ctx, profile_id)
        arch = profile.architecture
        if image.architecture and arch is not None and not arch.allows(image.architecture):
            raise ValidationError(
                f"instance type {profile.id} runs {arch.default}, image {image.id} is "
                f"{image.architecture}",
                reason="ARCHITECTURE_MISMATCH",
                metadata={"hardware_profile_id": profile.id, "image_id": image.id},
            )
        count = max(1, opts.instance_count)
        params: dict[str, Any] = {
            "ImageId": image.id,
            "InstanceType": profile.id,
            "MinCount": count,
            "MaxCount": count,
        }
        if opts.realm_id:
            params["Placement"] = {"AvailabilityZone": opts.realm_id}
        if opts.key_name:
            self.get_key(ctx, opts.key_name)  # not every EC2-compatible endpoint checks
            params["KeyName"] = opts.key_name
        if opts.user_data:
            params["UserData"] = opts.user_data  # botocore base64-encodes it
        if opts.firewall_ids:
            if not all(opts.firewall_ids):
                raise ValidationError(
                    "firewall_ids holds an empty id",
                    metadata={"option": "firewall_ids"},
                )
            params["SecurityGroupIds"] = list(opts.firewall_ids)
        if opts.name:
            params["TagSpecifications"] = _tags(opts.name, kind="instance")
        if ctx.request_id:  # EC2 answers a retry with the first reservation
            params["ClientToken"] = ctx.request_id
        register = getattr(self, "_register_instances", None)
        if opts.load_balancer_id and register is not None:
            # Before anything runs: an unknown load balancer must not leave instances
            # nobody was told about.
            getattr(self, "get_load_balancer")(ctx, opts.load_balancer_id)  # noqa: B009
        with self._realm_checked(ctx, opts.realm_id), translated("instance"):
            reservation = self.ec2(ctx).run_instances(**params)
        created = [
            self._instance(i, reservation.get("OwnerId", ""))
            for i in reservation.get("Instances", [])
        ]
        for instance in created:  # the answer of RunInstances says pending
            instance.state = InstanceState.PENDING
        if opts.load_balancer_id and register is not None:
            try:
                register(ctx, opts.load_balancer_id, [i.id for i in created])
            except Exception:
                # The create answers an error: it must not leave instances running.
                with contextlib.suppress(Exception):
                    self.ec2(ctx).terminate_instances(InstanceIds=[i.id for i in created])
                raise
        return created

    @contextlib.contextmanager
    def _realm_checked(self, ctx: CallContext, realm_id: str) -> Iterator[None]:
        """EC2 refuses an unknown availability zone as a bad parameter (INVALID_ARGUMENT);
        the contract says NOT_FOUND, as for any unknown object. Looked up only when a
        create given a realm is refused so: a create costs no extra request."""
        try:
            yield
        except ValidationError:
            if realm_id and realm_id not in {r.id for r in self.list_realms(ctx, {})}:
                raise NotFoundError("realm", realm_id) from None
            raise

    def _act(self, ctx: CallContext, instance_id: str, action: InstanceAction) -> m.Instance:
        instance = self.get_instance(ctx, instance_id)
        machine = self.instance_states
        assert machine is not None
        target = machine.target(instance.state, action)
        if target is None:  # moved since the server checked
            allowed = [a.value for a in machine.allowed_actions(instance.state)]
            raise ActionNotAllowedError(instance_id, action.value, instance.state.value, allowed)
        ec2 = self.ec2(ctx)
        with translated("instance", instance_id):
            if action is InstanceAction.START:
                answer = ec2.start_instances(InstanceIds=[instance_id])["StartingInstances"]
            elif action is InstanceAction.STOP:
                answer = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]
            elif action is InstanceAction.REBOOT:
                ec2.reboot_instances(InstanceIds=[instance_id])
                answer = []
            else:
                answer = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
        state = target
        if answer and action is not InstanceAction.DESTROY:
            reported = EC2_STATES.get(answer[0].get("CurrentState", {}).get("Name", ""))
            if reported is not None and reported is not InstanceState.FINISH:
                state = reported
        instance.state = state
        return instance

    def start_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.START)

    def stop_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.STOP)

    def reboot_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.REBOOT)

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.DESTROY)

    # ---- keys ----------------------------------------------------------------------------

    def list_keys(self, ctx: CallContext, filters: Filters) -> list[m.Key]:
        with translated("key"):
            pairs = self.ec2(ctx).describe_key_pairs(IncludePublicKey=True)["KeyPairs"]
        keys = [self._key(p) for p in pairs]
        return filter_on(keys, filters, *COLLECTIONS["keys"].filters)

    def get_key(self, ctx: CallContext, key_id: str) -> m.Key:
        names.existing_key(key_id)
        with translated("key", key_id):
            pairs = self.ec2(ctx).describe_key_pairs(KeyNames=[key_id], IncludePublicKey=True)[
                "KeyPairs"
            ]
        if not pairs:
            raise NotFoundError("key", key_id)
        return self._key(pairs[0])

    @staticmethod
    def _key(p: dict[str, Any], private: str = "") -> m.Key:
        return m.Key(
            id=p["KeyName"],
            name=p["KeyName"],
            fingerprint=p.get("KeyFingerprint", ""),
            public_key=p.get("PublicKey", ""),
            pem_rsa_key=private,
        )

    def create_key(self, ctx: CallContext, opts: m.CreateKey) -> m.Key:
        names.check_key_name(opts.name)
        if opts.public_key.strip():
            check_public_key(opts.public_key)
        ec2 = self.ec2(ctx)
        with translated("key", opts.name):
            if opts.public_key.strip():
                answer = ec2.import_key_pair(
                    KeyName=opts.name, PublicKeyMaterial=opts.public_key.strip().encode()
                )
                return self._key({**answer, "PublicKey": opts.public_key.strip()})
            answer = ec2.create_key_pair(KeyName=opts.name)
        # The private key is in this answer only: EC2 keeps none.
        return self._key(answer, private=answer.get("KeyMaterial", ""))

    def delete_key(self, ctx: CallContext, key_id: str) -> None:
        self.get_key(ctx, key_id)  # DeleteKeyPair succeeds on unknown names
        with translated("key", key_id):
            self.ec2(ctx).delete_key_pair(KeyName=key_id)

    # ---- storage volumes (EBS) -----------------------------------------------------------

    def list_storage_volumes(self, ctx: CallContext, filters: Filters) -> list[m.StorageVolume]:
        volume_id = str(filters.get("id") or "")
        params: dict[str, Any] = {"VolumeIds": [volume_id]} if volume_id else {}
        try:
            with translated("storage_volume", volume_id):
                found = _pages(self.ec2(ctx), "describe_volumes", "Volumes", **params)
        except NotFoundError:
            if volume_id:
                return []
            raise
        volumes = [self._volume(v) for v in found]
        return filter_on(volumes, filters, *COLLECTIONS["storage_volumes"].filters)

    @staticmethod
    def _volume(v: dict[str, Any]) -> m.StorageVolume:
        # An attachment that ended ("detached") may still be described for a while.
        attachments = [a for a in v.get("Attachments") or [] if a.get("State") != "detached"]
        attached = attachments[0] if attachments else {}
        state = VOLUME_STATES.get(v.get("State", ""), "ERROR")
        if state in ("AVAILABLE", "IN_USE") and attached.get("State") in MOVING_ATTACHMENTS:
            state = "ATTACHING"
        return m.StorageVolume(
            id=v["VolumeId"],
            name=tag(v.get("Tags"), "Name"),
            description=tag(v.get("Tags"), "Description"),
            create_time=_when(v.get("CreateTime")),
            state=state,
            capacity_gb=int(v.get("Size", 0)),
            instance_id=attached.get("InstanceId", ""),
            device=attached.get("Device", ""),
            realm_id=v.get("AvailabilityZone", ""),
            kind=v.get("VolumeType", ""),
        )

    def create_storage_volume(
        self, ctx: CallContext, opts: m.CreateStorageVolume
    ) -> m.StorageVolume:
        names.check_tag_value("name", opts.name)
        names.check_tag_value("description", opts.description)
        params: dict[str, Any] = {}
        if opts.capacity_gb:
            params["Size"] = opts.capacity_gb
        elif not opts.snapshot_id:
            raise ValidationError("capacity_gb (or snapshot_id) is required")
        if opts.realm_id:
            self._check_realm(ctx, opts.realm_id)
        realm = opts.realm_id or self.list_realms(ctx, {})[0].id
        params["AvailabilityZone"] = realm
        if opts.snapshot_id:
            params["SnapshotId"] = opts.snapshot_id
        tags = _tags(opts.name, opts.description, "volume")
        if tags:
            params["TagSpecifications"] = tags
        if ctx.request_id:
            params["ClientToken"] = ctx.request_id
        with (
            self._realm_checked(ctx, opts.realm_id),
            translated("storage_snapshot", opts.snapshot_id),
        ):
            v = self.ec2(ctx).create_volume(**params)
        return self._volume(v)

    def delete_storage_volume(self, ctx: CallContext, volume_id: str) -> None:
        with translated("storage_volume", volume_id):
            self.ec2(ctx).delete_volume(VolumeId=volume_id)

    def attach_storage_volume(
        self, ctx: CallContext, volume_id: str, instance_id: str, device: str
    ) -> m.StorageVolume:
        volume = self.get_storage_volume(ctx, volume_id)
        instance = self.get_instance(ctx, instance_id)
        if volume.instance_id or volume.state == "IN_USE":
            # EC2 refuses it (VolumeInUse); moto moved the attachment to the new device.
            raise ConflictError(
                f"storage volume {volume_id!r} is attached already"
                + (f" (to instance {volume.instance_id!r})" if volume.instance_id else ""),
                reason="VOLUME_IN_USE",
                metadata={"storage_volume_id": volume_id, "instance_id": volume.instance_id},
            )
        if volume.realm_id and instance.realm_id and volume.realm_id != instance.realm_id:
            raise ConflictError(
                f"storage volume {volume_id!r} is in realm {volume.realm_id!r}, "
                f"instance {instance_id!r} in realm {instance.realm_id!r}",
                reason="REALM_MISMATCH",
                metadata={
                    "storage_volume_id": volume_id,
                    "instance_id": instance_id,
                    "volume_realm_id": volume.realm_id,
                    "instance_realm_id": instance.realm_id,
                },
            )
        with translated("storage_volume", volume_id):
            self.ec2(ctx).attach_volume(
                VolumeId=volume_id, InstanceId=instance_id, Device=device or "/dev/sdf"
            )
        return self.get_storage_volume(ctx, volume_id)

    def detach_storage_volume(self, ctx: CallContext, volume_id: str) -> m.StorageVolume:
        volume = self.get_storage_volume(ctx, volume_id)
        if not volume.instance_id:
            raise ConflictError(
                f"storage volume {volume_id!r} is not attached",
                reason="VOLUME_NOT_ATTACHED",
                metadata={"storage_volume_id": volume_id},
            )
        with translated("storage_volume", volume_id):
            self.ec2(ctx).detach_volume(VolumeId=volume_id, InstanceId=volume.instance_id)
        return self.get_storage_volume(ctx, volume_id)

    # ---- storage snapshots ---------------------------------------------------------------

    def list_storage_snapshots(self, ctx: CallContext, filters: Filters) -> list[m.StorageSnapshot]:
        snapshot_id = str(filters.get("id") or "")
        params: dict[str, Any] = {"OwnerIds": ["self"]}
        if snapshot_id:
            params = {"SnapshotIds": [snapshot_id]}
        try:
            with translated("storage_snapshot", snapshot_id):
                found = _pages(self.ec2(ctx), "describe_snapshots", "Snapshots", **params)
        except NotFoundError:
            if snapshot_id:
                return []
            raise
        snapshots = [self._snapshot(s) for s in found]
        return filter_on(snapshots, filters, *COLLECTIONS["storage_snapshots"].filters)

    @staticmethod
    def _snapshot(s: dict[str, Any]) -> m.StorageSnapshot:
        return m.StorageSnapshot(
            id=s["SnapshotId"],
            storage_volume_id=s.get("VolumeId", ""),
            name=tag(s.get("Tags"), "Name"),
            description=s.get("Description", ""),
            state=SNAPSHOT_STATES.get(s.get("State", ""), "ERROR"),
            create_time=_when(s.get("StartTime")),
        )

    def create_storage_snapshot(
        self, ctx: CallContext, opts: m.CreateStorageSnapshot
    ) -> m.StorageSnapshot:
        names.check_tag_value("name", opts.name)
        params: dict[str, Any] = {"VolumeId": opts.storage_volume_id}
        if opts.description:
            params["Description"] = opts.description
        if ctx.request_id:  # EC2 takes no ClientToken here: the snapshot keeps it as a tag
            with translated("storage_snapshot"):
                made = self.ec2(ctx).describe_snapshots(
                    OwnerIds=["self"], Filters=_made_for(ctx.request_id)
                )["Snapshots"]
            if made:
                volume = made[0].get("VolumeId", "?")
                if volume != opts.storage_volume_id:
                    raise _reused("snapshot", ctx.request_id, volume, opts.storage_volume_id)
                return self._snapshot(made[0])
        tags = _tags(opts.name, kind="snapshot", request_id=ctx.request_id)
        if tags:
            params["TagSpecifications"] = tags
        with translated("storage_volume", opts.storage_volume_id):
            s = self.ec2(ctx).create_snapshot(**params)
        return self._snapshot(s)

    def delete_storage_snapshot(self, ctx: CallContext, snapshot_id: str) -> None:
        with translated("storage_snapshot", snapshot_id):
            self.ec2(ctx).delete_snapshot(SnapshotId=snapshot_id)

    # ---- addresses (elastic IPs) ---------------------------------------------------------

    def _described_addresses(self, ctx: CallContext) -> list[dict[str, Any]]:
        with translated("address"):
            return list(self.ec2(ctx).describe_addresses()["Addresses"])

    def _address_record(self, ctx: CallContext, address_id: str) -> dict[str, Any]:
        for a in self._described_addresses(ctx):
            if a.get("PublicIp") == address_id:
                return a
        raise NotFoundError("address", address_id)

    @staticmethod
    def _address(a: dict[str, Any]) -> m.Address:
        return m.Address(id=a["PublicIp"], instance_id=a.get("InstanceId", "") or "")

    def list_addresses(self, ctx: CallContext, filters: Filters) -> list[m.Address]:
        found = [self._address(a) for a in self._described_addresses(ctx)]
        return filter_on(found, filters, *COLLECTIONS["addresses"].filters)

    def get_address(self, ctx: CallContext, address_id: str) -> m.Address:
        return self._address(self._address_record(ctx, address_id))

    def create_address(self, ctx: CallContext) -> m.Address:
        params: dict[str, Any] = {"Domain": "vpc"}
        if ctx.request_id:  # EC2 takes no ClientToken here: the address keeps it as a tag
            with translated("address"):
                made = self.ec2(ctx).describe_addresses(Filters=_made_for(ctx.request_id))
            if made["Addresses"]:
                return self._address(made["Addresses"][0])
            params["TagSpecifications"] = _tags(kind="elastic-ip", request_id=ctx.request_id)
        with translated("address"):
            a = self.ec2(ctx).allocate_address(**params)
        return self._address(a)

    def delete_address(self, ctx: CallContext, address_id: str) -> None:
        a = self._address_record(ctx, address_id)
        if a.get("InstanceId") or a.get("AssociationId"):
            # EC2 refuses it for a VPC address (InvalidIPAddress.InUse); moto released it.
            raise ConflictError(
                f"address {address_id!r} is associated with an instance",
                reason="ADDRESS_IN_USE",
                metadata={"address_id": address_id, "instance_id": a.get("InstanceId") or ""},
            )
        with translated("address", address_id):
            if a.get("AllocationId"):
                self.ec2(ctx).release_address(AllocationId=a["AllocationId"])
            else:
                self.ec2(ctx).release_address(PublicIp=address_id)

    def associate_address(self, ctx: CallContext, address_id: str, instance_id: str) -> m.Address:
        a = self._address_record(ctx, address_id)
        self.get_instance(ctx, instance_id)
        if a.get("InstanceId") or a.get("AssociationId"):
            raise ConflictError(
                f"address {address_id!r} is associated already",
                reason="ADDRESS_IN_USE",
                metadata={"address_id": address_id, "instance_id": a.get("InstanceId") or ""},
            )
        params: dict[str, Any] = {"InstanceId": instance_id}
        if a.get("AllocationId"):
            params["AllocationId"] = a["AllocationId"]
        else:
            params["PublicIp"] = address_id
        with translated("address", address_id):
            self.ec2(ctx).associate_address(**params)
        return self.get_address(ctx, address_id)

    def disassociate_address(self, ctx: CallContext, address_id: str) -> m.Address:
        a = self._address_record(ctx, address_id)
        if not a.get("InstanceId") and not a.get("AssociationId"):
            raise ConflictError(
                f"address {address_id!r} is not associated",
                reason="ADDRESS_NOT_ASSOCIATED",
                metadata={"address_id": address_id},
            )
        with translated("address", address_id):
            if a.get("AssociationId"):
                self.ec2(ctx).disassociate_address(AssociationId=a["AssociationId"])
            else:
                self.ec2(ctx).disassociate_address(PublicIp=address_id)
        return self.get_address(ctx, address_id)

    # ---- firewalls (security groups) -----------------------------------------------------

    def list_firewalls(self, ctx: CallContext, filters: Filters) -> list[m.Firewall]:
        group_id = str(filters.get("id") or "")
        params: dict[str, Any] = {"GroupIds": [group_id]} if group_id else {}
        try:
            with translated("firewall", group_id):
                groups = _pages(
                    self.ec2(ctx), "describe_security_groups", "SecurityGroups", **params
                )
        except NotFoundError:
            if group_id:
                return []
            raise
        found = [self._firewall(g) for g in groups]
        return filter_on(found, filters, *COLLECTIONS["firewalls"].filters)

    def _group(self, ctx: CallContext, firewall_id: str) -> dict[str, Any]:
        with translated("firewall", firewall_id):
            groups = self.ec2(ctx).describe_security_groups(GroupIds=[firewall_id])
        found = groups.get("SecurityGroups", [])
        if not found:
            raise NotFoundError("firewall", firewall_id)
        return dict(found[0])

    def get_firewall(self, ctx: CallContext, firewall_id: str) -> m.Firewall:
        return self._firewall(self._group(ctx, firewall_id))

    @staticmethod
    def _rule_id(direction: str, p: dict[str, Any]) -> str:
        proto = str(p.get("IpProtocol", "-1"))
        return f"{direction.lower()}:{proto}:{p.get('FromPort', -1)}:{p.get('ToPort', -1)}"

    @classmethod
    def _rules(cls, direction: str, perms: list[dict[str, Any]]) -> list[m.FirewallRule]:
        rules = []
        for p in perms:
            proto = str(p.get("IpProtocol", "-1"))
            sources = [m.RuleSource(cidr=r["CidrIp"]) for r in p.get("IpRanges", [])]
            sources += [m.RuleSource(cidr=r["CidrIpv6"]) for r in p.get("Ipv6Ranges", [])]
            sources += [
                m.RuleSource(firewall_id=g["GroupId"])
                for g in p.get("UserIdGroupPairs", [])
                if g.get("GroupId")
            ]
            rules.append(
                m.FirewallRule(
                    id=cls._rule_id(direction, p),
                    protocol="all" if proto == "-1" else proto,
                    port_from=int(p.get("FromPort", -1)),
                    port_to=int(p.get("ToPort", -1)),
                    sources=sources,
                    direction=direction,
                )
            )
        return rules

    @classmethod
    def _firewall(cls, g: dict[str, Any]) -> m.Firewall:
        rules = cls._rules("INGRESS", g.get("IpPermissions", []))
        rules += cls._rules("EGRESS", g.get("IpPermissionsEgress", []))
        return m.Firewall(
            id=g["GroupId"],
            name=g.get("GroupName", ""),
            description=g.get("Description", ""),
            owner_id=g.get("OwnerId", ""),
            rules=rules,
        )

    def create_firewall(self, ctx: CallContext, opts: m.CreateFirewall) -> m.Firewall:
        if not opts.name or not opts.description:
            raise ValidationError("a firewall needs a name and a description")
        names.check_firewall(opts.name, opts.description)
        with translated("firewall", opts.name):
            group_id = self.ec2(ctx).create_security_group(
                GroupName=opts.name, Description=opts.description
            )["GroupId"]
        return self.get_firewall(ctx, group_id)

    def delete_firewall(self, ctx: CallContext, firewall_id: str) -> None:
        group = self._group(ctx, firewall_id)
        if group.get("GroupName") == "default":
            # EC2 answers CannotDelete; moto deleted it.
            raise ConflictError(
                f"firewall {firewall_id!r} is its network's default security group, which "
                "EC2 never deletes",
                reason="DEFAULT_FIREWALL",
                metadata={"firewall_id": firewall_id},
            )
        self._check_unused(ctx, firewall_id)
        with translated("firewall", firewall_id):
            self.ec2(ctx).delete_security_group(GroupId=firewall_id)

    def _check_unused(self, ctx: CallContext, firewall_id: str) -> None:
        """FAILED_PRECONDITION (FIREWALL_IN_USE), as the mock and the proto say, if an
        instance or another group's rule still uses the group. EC2 answers
        DependencyViolation (reason IN_USE, naming nothing); moto deleted the group, and
        the instances and rules kept naming it."""
        ec2 = self.ec2(ctx)
        using = [
            {"Name": "instance.group-id", "Values": [firewall_id]},
            {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]},
        ]
        with translated("firewall", firewall_id):
            reservations = _pages(ec2, "describe_instances", "Reservations", Filters=using)
        users = sorted({i["InstanceId"] for r in reservations for i in r.get("Instances", [])})
        if users:
            raise ConflictError(
                f"firewall {firewall_id!r} is used by instances",
                reason="FIREWALL_IN_USE",
                metadata={"firewall_id": firewall_id, "instance_ids": users},
            )
        referrers: set[str] = set()
        for key in ("ip-permission.group-id", "egress.ip-permission.group-id"):
            refers = [{"Name": key, "Values": [firewall_id]}]
            with translated("firewall", firewall_id):
                groups = _pages(ec2, "describe_security_groups", "SecurityGroups", Filters=refers)
            # A group naming itself does not keep itself: EC2 deletes it with its rules.
            referrers |= {g["GroupId"] for g in groups if g["GroupId"] != firewall_id}
        if referrers:
            raise ConflictError(
                f"firewall {firewall_id!r} is a rule source of other firewalls",
                reason="FIREWALL_IN_USE",
                metadata={"firewall_id": firewall_id, "firewall_ids": sorted(referrers)},
            )

    def create_firewall_rule(
        self, ctx: CallContext, firewall_id: str, opts: m.CreateFirewallRule
    ) -> m.Firewall:
        proto = opts.protocol.lower()
        if proto not in ("tcp", "udp", "icmp", "all"):
            raise ValidationError(
                f"protocol {opts.protocol!r} is not one of tcp, udp, icmp, all",
                metadata={"protocol": opts.protocol},
            )
        if proto in ("tcp", "udp") and not 0 <= opts.port_from <= opts.port_to <= 65535:
            raise ValidationError(
                "ports must satisfy 0 <= port_from <= port_to <= 65535",
                metadata={
                    "option": "port_from",
                    "port_from": opts.port_from,
                    "port_to": opts.port_to,
                },
            )
        if proto == "icmp" and not (
            -1 <= opts.port_from <= 255
            and -1 <= opts.port_to <= 255
            and (opts.port_from != -1 or opts.port_to == -1)
        ):
            # For icmp, port_from is the ICMP type and port_to the code, -1 meaning all
            # (every code of every type when the type is -1), as in EC2's model.
            raise ValidationError(
                "an icmp rule's port_from (ICMP type) and port_to (ICMP code) are each "
                "-1 (all) to 255, and all types take all codes (-1)",
                metadata={
                    "option": "port_from",
                    "port_from": opts.port_from,
                    "port_to": opts.port_to,
                },
            )
        perm: dict[str, Any] = {"IpProtocol": "-1" if proto == "all" else proto}
        if proto != "all":
            perm["FromPort"], perm["ToPort"] = opts.port_from, opts.port_to
        sources = opts.sources or [m.RuleSource(cidr="0.0.0.0/0")]
        perm["IpRanges"] = [{"CidrIp": s.cidr} for s in sources if s.cidr and ":" not in s.cidr]
        perm["Ipv6Ranges"] = [{"CidrIpv6": s.cidr} for s in sources if s.cidr and ":" in s.cidr]
        perm["UserIdGroupPairs"] = [{"GroupId": s.firewall_id} for s in sources if s.firewall_id]
        self._group(ctx, firewall_id)
        ec2 = self.ec2(ctx)
        direction = "EGRESS" if opts.direction.upper() == "EGRESS" else "INGRESS"
        try:
            with translated("firewall", firewall_id):
                if direction == "EGRESS":
                    ec2.authorize_security_group_egress(GroupId=firewall_id, IpPermissions=[perm])
                else:
                    ec2.authorize_security_group_ingress(GroupId=firewall_id, IpPermissions=[perm])
        except AlreadyExistsError as error:
            # InvalidPermission.Duplicate: a source is allowed already, by the rule of the
            # same direction, protocol and ports (EC2 keeps one per those): name it, as
            # the mock does (translate could not, and named rule '?').
            raise AlreadyExistsError(
                "firewall_rule",
                self._rule_id(direction, perm),
                firewall_id=firewall_id,
                backend_code=error.metadata.get("backend_code", ""),
            ) from None
        except NotFoundError as error:
            # The rule's firewall was found above: a missing firewall is a source. EC2's
            # message quotes it, but an id not shaped like one ("vol-1") is not taken from
            # it: name the first source group that is not there.
            if error.resource_type == "firewall":
                groups = [s.firewall_id for s in sources if s.firewall_id]
                if error.resource_id not in groups:
                    for group in groups:
                        if group != firewall_id and not self.list_firewalls(ctx, {"id": group}):
                            raise NotFoundError("firewall", group) from None
            raise
        return self.get_firewall(ctx, firewall_id)

    def delete_firewall_rule(self, ctx: CallContext, firewall_id: str, rule_id: str) -> m.Firewall:
        group = self._group(ctx, firewall_id)
        ec2 = self.ec2(ctx)
        for direction, key, revoke in (
            ("INGRESS", "IpPermissions", ec2.revoke_security_group_ingress),
            ("EGRESS", "IpPermissionsEgress", ec2.revoke_security_group_egress),
        ):
            for perm in group.get(key, []):
                if self._rule_id(direction, perm) == rule_id:
                    with translated("firewall_rule", rule_id):
                        revoke(GroupId=firewall_id, IpPermissions=[_revocable(perm)])
                    return self.get_firewall(ctx, firewall_id)
        raise NotFoundError("firewall_rule", rule_id, firewall_id=firewall_id)


#: DescribeImages' owner aliases: an image carries its owner's account id, never these.
OWNER_ALIASES = frozenset({"self", "amazon", "aws-marketplace", "aws-backup-vault"})


def _owner_filter(filters: Filters) -> str:
    owner = str(filters.get("owner_id") or "")
    if owner in OWNER_ALIASES:
        raise ValidationError(
            f"owner_id filters on the account id an image carries; {owner!r} is an alias "
            "no image carries (an unfiltered list shows the images of the server's "
            "ec2.image_owners, 'self' by default)",
            reason="OWNER_ALIAS",
            metadata={"owner_id": owner},
        )
    return owner


def _revocable(perm: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "IpProtocol",
        "FromPort",
        "ToPort",
        "IpRanges",
        "Ipv6Ranges",
        "UserIdGroupPairs",
        "PrefixListIds",  # not listed as sources, but part of the rule: revoked with it
    )
    out = {k: perm[k] for k in keep if k in perm and perm[k] != []}
    if "UserIdGroupPairs" in out:
        out["UserIdGroupPairs"] = [
            {"GroupId": g["GroupId"]} for g in out["UserIdGroupPairs"] if g.get("GroupId")
        ]
    return out
