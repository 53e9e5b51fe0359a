"""MockDriver: a complete, persistent, multi-user fake cloud for tests and demos.

It serves every collection with Deltacloud's mock fixtures (see
:mod:`deltacloud.drivers.mock.fixtures`) and behaves like a real cloud where the original
mock did not: instances go through PENDING and STOPPING on their own after small delays,
every user sees only what it owns, and state survives a restart (or a kill -9: every write
is one durable SQLite transaction).

Configuration (``DriverConfig.options``, e.g. ``--driver-option mock.users=alice:secret``):

- ``users``: extra accounts, ``"alice:secret,bob:pw2"``; ``mockuser``/``mockpassword``
  always works (unless ``users`` gives mockuser another password).
- ``pending_delay``: seconds a new instance stays PENDING before RUNNING (float, 1.0).
- ``stopping_delay``: seconds a stopped instance stays STOPPING before STOPPED (float, 1.0).

- ``data_dir``: where the mock keeps its state, instead of ``DriverConfig.data_dir / "mock"``.
  Servers pointing at the same directory share one fake cloud, as two gateways in front of
  one real cloud would.

Data lives in ``mock.sqlite3`` and ``blobs/`` of that directory.

Failure on purpose, for client testing: ``get_realm`` (and ``list_realms`` filtered on the
id) with the realm ids 400, 401, 403, 404, 405, 409, 429, 500, 501, 502, 503 and 504
raise ValidationError, AuthenticationError, PermissionDeniedError, NotFoundError,
ActionNotAllowedError, ConflictError, ResourceExhaustedError, InternalDriverError,
NotSupportedError, BackendError (metadata backend_code=502), BackendUnavailableError and
BackendTimeoutError respectively (see :mod:`deltacloud.drivers.mock.failures`).

Tenancy: instances, keys, volumes, snapshots, addresses, buckets and blobs, firewalls and
load balancers belong to the user that created them (fixtures to mockuser); another
user's object is reported as not found. Realms, hardware profiles and images are shared;
only an image's owner may delete it.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import ipaddress
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from math import inf
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from .. import models as m
from ..base import BaseDriver, CallContext, DriverConfig, Filters, nonblocking
from ..capabilities import COLLECTIONS, Feature
from ..errors import (
    ActionNotAllowedError,
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    FeatureNotSupportedError,
    InternalDriverError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ValidationError,
)
from ..filters import filter_on, natural_key
from ..hardware import HardwareProfile
from ..public_keys import check_public_key
from ..state_machine import InstanceAction, InstanceState, StateMachine
from . import records, tokens
from .failures import raise_if_failing
from .fixtures import HARDWARE_PROFILES, MOCK_PASSWORD, MOCK_USER, REALMS, instance_addresses
from .fixtures import seed as seed_fixtures
from .keys import fake_key_pair, fingerprint
from .store import Record, Snapshot, Store, Tx

#: Size of the chunks get_blob_content yields.
CHUNK_SIZE = 64 * 1024
#: Most instances one create call may start (a real cloud has quotas too).
MAX_INSTANCE_COUNT = 100
#: Where new addresses come from; fixtures hold 192.168.0.1-4.
ADDRESS_POOL = ipaddress.IPv4Network("192.168.0.0/16")
#: Any name that becomes an id: no control characters, no slash, no surrounding blanks.
_NAME = re.compile(r"[^\x00-\x1f\x7f/]{1,255}")
#: Bucket names, S3-like.
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_PROTOCOLS = ("tcp", "udp", "icmp")
_LISTENER_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "SSL")
#: Compared against when the user is unknown, so a wrong user name takes as long as a
#: wrong password (no user enumeration by timing).
_DUMMY_PASSWORD = secrets.token_hex(16)


def _parse_users(spec: str) -> dict[str, str]:
    """``"alice:secret,bob:pw2"`` -> {"alice": "secret", "bob": "pw2"}. The password may
    contain ':' (split at the first one). Messages never include the password."""
    users: dict[str, str] = {}
    for number, entry in enumerate(spec.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        user, sep, password = entry.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"mock driver option 'users': entry #{number} is not 'user:password'")
        users[user.strip()] = password
    return users


def _delay_option(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"mock driver option {key!r} must be a number of seconds") from None
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"mock driver option {key!r} must be >= 0")
    return value


def _first_free(prefix: str, used: set[str], start: int) -> str:
    """The first ``<prefix><N>`` (N >= start) not in ``used``, as the original mock did."""
    n = start
    while f"{prefix}{n}" in used:
        n += 1
    return f"{prefix}{n}"


def _check_metadata_keys(metadata: Mapping[str, str]) -> None:
    for key in metadata:
        if not key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise ValidationError(
                f"metadata key {key!r} is not valid", metadata={"option": "user_metadata"}
            )


def _check_name(option: str, value: str, pattern: re.Pattern[str] = _NAME) -> None:
    if not value or value != value.strip() or not pattern.fullmatch(value):
        raise ValidationError(
            f"{option} {value!r} is not a valid name",
            metadata={"option": option, "value": value},
        )


def _check_label(option: str, value: str, max_length: int = 255) -> None:
    """A name shown to users but not used as an id (an image's, a volume's), or a device:
    at most ``max_length`` characters, none of them a control character (a line break in a
    name breaks every table and log that shows it). Empty is fine: the default applies."""
    if len(value) > max_length:
        raise ValidationError(
            f"{option} is {len(value)} characters long; at most {max_length} are allowed",
            metadata={"option": option, "max_length": max_length},
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError(
            f"{option} must not contain control characters", metadata={"option": option}
        )


def _permissions(rule: Record) -> set[tuple[object, ...]]:
    """What a firewall rule record allows, one (direction, protocol, ports, source) each."""
    head = (rule.get("direction", "INGRESS"), rule["protocol"], rule["port_from"], rule["port_to"])
    return {(*head, s.get("cidr", ""), s.get("firewall_id", "")) for s in rule["sources"]}


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


#: What reading instances touches: they, and the volumes and addresses that hold their
#: attachments.
_INSTANCE_KINDS = ("instance", "volume", "address")


class _InstanceView:
    """One owner's instances as models, for one version of the tables they are read from
    (Snapshot.table: a commit that changes a table replaces it). Each model is built once
    and handed out until one of the tables changes, so a read from memory builds nothing;
    the models are shared, so nobody may change them (the server does not)."""

    __slots__ = ("_all", "_attachments", "_driver", "_models", "tables")

    def __init__(self, driver: MockDriver, snap: Snapshot, owner: str) -> None:
        self.tables = tuple(snap.table(kind, owner) for kind in _INSTANCE_KINDS)
        self._driver = driver
        self._attachments = driver._attachments(snap, owner)
        #: Instance id -> (model, when its next automatic transition is due).
        self._models: dict[str, tuple[m.Instance, float]] = {}
        self._all: tuple[list[m.Instance], float] | None = None

    def current(self, snap: Snapshot, owner: str) -> bool:
        """Whether ``snap`` holds the very tables this view was made of."""
        return all(
            snap.table(kind, owner) is table
            for kind, table in zip(_INSTANCE_KINDS, self.tables, strict=True)
        )

    def get(self, instance_id: str) -> tuple[m.Instance, float] | None:
        """The instance and when it is next due to change on its own (inf: never)."""
        found = self._models.get(instance_id)
        if found is not None:
            return found
        rec = self.tables[0].get(("", instance_id))
        return None if rec is None else self._entry(rec)

    def all(self) -> tuple[list[m.Instance], float]:
        """Every instance, by natural order of ids, and the soonest automatic transition."""
        if self._all is None:
            recs = sorted(self.tables[0].values(), key=lambda rec: natural_key(rec["id"]))
            entries = [self._models.get(rec["id"]) or self._entry(rec) for rec in recs]
            due = min((due for _, due in entries), default=inf)
            self._all = ([model for model, _ in entries], due)
        return self._all

    def _entry(self, rec: Record) -> tuple[m.Instance, float]:
        volumes, addresses = self._attachments
        model = records.instance(rec, volumes.get(rec["id"], []), addresses.get(rec["id"], []))
        entry = self._models[rec["id"]] = (model, self._driver._due_at(rec))
        return entry


class MockDriver(BaseDriver):
    """The mock cloud (see the module docstring for options and behaviours)."""

    name: ClassVar[str] = "mock"
    description: ClassVar[str] = (
        "A persistent fake cloud with Deltacloud's mock fixtures, for tests and demos"
    )
    collections: ClassVar[frozenset[str]] = frozenset(COLLECTIONS)
    features: ClassVar[Mapping[str, Sequence[Feature]]] = {
        # register_to_load_balancer is deliberately absent: clients and the server's tests
        # rely on the mock refusing that option with FEATURE_NOT_SUPPORTED.
        "instances": (
            Feature("user_name", {"max_length": "64"}),
            Feature("user_data"),
            Feature("authentication_key"),
            Feature("firewalls"),
            Feature("instance_count", {"max_count": str(MAX_INSTANCE_COUNT)}),
        ),
        "images": (Feature("image_name"), Feature("image_description")),
        "keys": (Feature("import_key"),),
        "storage_volumes": (
            Feature("volume_name"),
            Feature("volume_description"),
            Feature("volume_from_snapshot"),
        ),
        "buckets": (Feature("bucket_location"),),
    }
    hardware_profiles: ClassVar[Sequence[HardwareProfile]] = HARDWARE_PROFILES
    instance_states: ClassVar[StateMachine | None] = StateMachine(
        """
        start    -> pending   on create
        pending  -> running   automatically
        running  -> running   on reboot
        running  -> stopping  on stop
        stopping -> stopped   automatically
        stopped  -> running   on start
        stopped  -> finish    on destroy
        """
    )

    option_names = frozenset({"users", "pending_delay", "stopping_delay", "data_dir"})

    def __init__(self, provider: str, config: DriverConfig) -> None:
        super().__init__(provider, config)
        self._users: dict[str, str] = {
            MOCK_USER: MOCK_PASSWORD,
            **_parse_users(config.options.get("users", "")),
        }
        # How long each transitional state lasts before its automatic transition.
        self._delays: dict[InstanceState, float] = {
            InstanceState.PENDING: _delay_option(config.options, "pending_delay", 1.0),
            InstanceState.STOPPING: _delay_option(config.options, "stopping_delay", 1.0),
        }
        location = config.options.get("data_dir") or Path(config.data_dir) / "mock"
        self._store = Store(Path(location), seed_fixtures)
        #: Each user's instances as models, for the tables last read (_instance_view).
        self._views: dict[str, _InstanceView] = {}

    @property
    def machine(self) -> StateMachine:
        assert self.instance_states is not None
        return self.instance_states

    def close(self) -> None:
        self._store.close()

    # ---- credentials ------------------------------------------------------------------

    @nonblocking
    def authenticate(self, ctx: CallContext) -> None:
        creds = ctx.credentials
        expected = self._users.get(creds.user)
        # Always run the constant-time comparison, even for an unknown user.
        matches = hmac.compare_digest(
            creds.password.encode("utf-8"),
            (expected if expected is not None else _DUMMY_PASSWORD).encode("utf-8"),
        )
        if expected is None or not matches or not creds.user:
            raise AuthenticationError("the mock driver does not accept these credentials")

    def _read(self, ctx: CallContext, owner: str, *kinds: str) -> Snapshot:
        """The committed records of ``owner``'s ``kinds``, from memory; on the event loop,
        WouldBlock when they are not in memory yet (a worker reads them in)."""
        tables = [(kind, owner) for kind in kinds]
        return self._store.snapshot(tables, wait=not ctx.on_event_loop)

    def _owner(self, ctx: CallContext) -> str:
        """The calling user. Authenticates again: ownership is derived from the user name,
        so a method must never trust a user the server might not have checked."""
        self.authenticate(ctx)
        return ctx.credentials.user

    # ---- realms -----------------------------------------------------------------------

    @nonblocking
    def list_realms(self, ctx: CallContext, filters: Filters) -> list[m.Realm]:
        self._owner(ctx)
        if filters.get("id"):
            raise_if_failing(filters["id"], ctx)
        realms = [dataclasses.replace(r) for r in REALMS]
        return filter_on(realms, filters, *COLLECTIONS["realms"].filters)

    @nonblocking
    def get_realm(self, ctx: CallContext, realm_id: str) -> m.Realm:
        self._owner(ctx)
        raise_if_failing(realm_id, ctx)
        for realm in REALMS:
            if realm.id == realm_id:
                return dataclasses.replace(realm)
        raise NotFoundError("realm", realm_id)

    # ---- hardware profiles ------------------------------------------------------------

    @nonblocking
    def list_hardware_profiles(self, ctx: CallContext, filters: Filters) -> list[HardwareProfile]:
        profiles = filter_on(self.hardware_profiles, filters, "id")
        arch = filters.get("architecture")
        if arch:
            # The profile's architecture is a Property, not a label: compare labels.
            profiles = [p for p in profiles if p.architecture_label == str(arch)]
        return profiles

    @nonblocking
    def get_hardware_profile(self, ctx: CallContext, profile_id: str) -> HardwareProfile:
        for profile in self.hardware_profiles:
            if profile.id == profile_id:
                return profile
        raise NotFoundError("hardware_profile", profile_id)

    @nonblocking
    def default_hardware_profile_id(self, ctx: CallContext, image_id: str) -> str:
        # Faithful to the original mock: m1-small whatever the image's architecture.
        self.get_image(ctx, image_id)
        return "m1-small"

    # ---- images -----------------------------------------------------------------------

    def _image_model(self, rec: Record) -> m.Image:
        return records.image(rec, self.hardware_profiles)

    @nonblocking
    def list_images(self, ctx: CallContext, filters: Filters) -> list[m.Image]:
        self._owner(ctx)
        recs = self._read(ctx, "", "image").list("image", "")
        images = [self._image_model(r) for r in sorted(recs, key=lambda r: natural_key(r["id"]))]
        return filter_on(images, filters, *COLLECTIONS["images"].filters)

    @nonblocking
    def get_image(self, ctx: CallContext, image_id: str) -> m.Image:
        self._owner(ctx)
        rec = self._read(ctx, "", "image").get("image", "", image_id)
        if rec is None:
            raise NotFoundError("image", image_id)
        return self._image_model(rec)

    def create_image(self, ctx: CallContext, opts: m.CreateImage) -> m.Image:
        owner = self._owner(ctx)
        _check_label("name", opts.name)
        with self._store.transaction() as tx:
            inst = self._instance_rec(tx, owner, opts.instance_id)
            if not inst.get("imageable", True):
                raise ConflictError(
                    f"instance {opts.instance_id!r} cannot be imaged",
                    reason="IMAGE_CREATION_NOT_ALLOWED",
                    metadata={"instance_id": opts.instance_id},
                )
            # The architecture the instance was made with (instances of a directory from
            # before it was recorded: its image's, when that is still there).
            architecture = inst.get("architecture")
            if architecture is None:
                source = tx.get("image", "", inst["image_id"])
                architecture = source["architecture"] if source else ""
            image_id = tx.fresh_id("image", "img")
            rec: Record = {
                "id": image_id,
                "name": opts.name or f"Image of {inst['name'] or inst['id']}",
                "owner_id": owner,
                "description": opts.description,
                "architecture": architecture,
                "state": "AVAILABLE",
                "create_time": records.now_iso(),
                "root_type": "persistent",
            }
            tx.put("image", "", image_id, rec)
        return self._image_model(rec)

    def delete_image(self, ctx: CallContext, image_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = tx.get("image", "", image_id)
            if rec is None:
                raise NotFoundError("image", image_id)
            if rec.get("owner_id") != owner:
                raise PermissionDeniedError(
                    f"image {image_id!r} belongs to another owner and cannot be deleted",
                    metadata={"image_id": image_id},
                )
            tx.delete("image", "", image_id)

    # ---- instances: state -------------------------------------------------------------

    def _advance(self, rec: Record, now: float) -> bool:
        """Apply the automatic transitions that are due (lazily: there is no background
        thread; whoever reads the instance moves it on). Returns whether it changed."""
        changed = False
        while True:
            state = InstanceState(rec["state"])
            targets = self.machine.automatic_targets(state)
            if not targets:
                return changed
            due = float(rec.get("state_since", 0.0)) + self._delays.get(state, 0.0)
            if now < due:
                return changed
            rec["state"] = targets[0].value
            # The new state was entered when the old one ended, not when we noticed.
            rec["state_since"] = due
            changed = True

    def _instance_rec(self, tx: Tx, owner: str, instance_id: str) -> Record:
        rec = tx.get("instance", owner, instance_id)
        if rec is None:
            raise NotFoundError("instance", instance_id)
        if self._advance(rec, time.time()):
            tx.put("instance", owner, instance_id, rec)
        return rec

    def _instance_recs(self, tx: Tx, owner: str) -> list[Record]:
        now = time.time()
        recs = tx.list("instance", owner)
        for rec in recs:
            if self._advance(rec, now):
                tx.put("instance", owner, rec["id"], rec)
        return sorted(recs, key=lambda r: natural_key(r["id"]))

    @staticmethod
    def _attachments(
        tx: Tx | Snapshot, owner: str
    ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Volumes attached to and addresses associated with each of ``owner``'s
        instances (those objects hold the link, so it cannot disagree with them)."""
        volumes: dict[str, list[str]] = defaultdict(list)
        for vol in tx.list("volume", owner):
            if vol.get("instance_id"):
                volumes[vol["instance_id"]].append(vol["id"])
        addresses: dict[str, list[str]] = defaultdict(list)
        for addr in tx.list("address", owner):
            if addr.get("instance_id"):
                addresses[addr["instance_id"]].append(addr["id"])
        for ips in addresses.values():
            ips.sort(key=lambda ip: int(ipaddress.ip_address(ip)))
        return volumes, addresses

    def _instance_model(self, tx: Tx | Snapshot, owner: str, rec: Record) -> m.Instance:
        volumes, addresses = self._attachments(tx, owner)
        return records.instance(rec, volumes.get(rec["id"], []), addresses.get(rec["id"], []))

    # ---- instances: operations --------------------------------------------------------

    def _due_at(self, rec: Record) -> float:
        """When the instance's next automatic transition is due (wall-clock seconds; inf if
        its state has none): from then on, reading it writes the transition (_advance)."""
        state = InstanceState(rec["state"])
        if not self.machine.automatic_targets(state):
            return inf
        return float(rec.get("state_since", 0.0)) + self._delays.get(state, 0.0)

    def _instance_view(self, snap: Snapshot, owner: str) -> _InstanceView:
        """The models of ``owner``'s instances as ``snap`` has them (kept while current)."""
        view = self._views.get(owner)
        if view is None or not view.current(snap, owner):
            # One per user of the mock (a fixed set: _users).
            view = self._views[owner] = _InstanceView(self, snap, owner)
        return view

    @nonblocking
    def list_instances(self, ctx: CallContext, filters: Filters) -> list[m.Instance]:
        owner = self._owner(ctx)
        wanted = filters.get("id")
        # The usual case, served from memory: nothing due to be written.
        view = self._instance_view(self._read(ctx, owner, *_INSTANCE_KINDS), owner)
        models: list[m.Instance]
        if isinstance(wanted, str) and wanted:
            found = view.get(wanted)
            models, due = ([found[0]], found[1]) if found is not None else ([], inf)
        else:
            models, due = view.all()
        if time.time() < due:
            return filter_on(models, filters, *COLLECTIONS["instances"].filters)
        ctx.leave_event_loop()
        with self._store.transaction() as tx:
            if isinstance(wanted, str) and wanted:
                # One id: a primary-key lookup instead of a scan.
                try:
                    recs = [self._instance_rec(tx, owner, wanted)]
                except NotFoundError:
                    recs = []
            else:
                recs = self._instance_recs(tx, owner)
            volumes, addresses = self._attachments(tx, owner)
        instances = [
            records.instance(r, volumes.get(r["id"], []), addresses.get(r["id"], [])) for r in recs
        ]
        return filter_on(instances, filters, *COLLECTIONS["instances"].filters)

    @nonblocking
    def get_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        owner = self._owner(ctx)
        # The usual case, served from memory: nothing due to be written.
        snap = self._read(ctx, owner, *_INSTANCE_KINDS)
        found = self._instance_view(snap, owner).get(instance_id)
        if found is None:
            raise NotFoundError("instance", instance_id)
        model, due = found
        if time.time() < due:
            return model
        ctx.leave_event_loop()
        with self._store.transaction() as tx:
            rec = self._instance_rec(tx, owner, instance_id)
            return self._instance_model(tx, owner, rec)

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        owner = self._owner(ctx)
        if opts.load_balancer_id:
            # Not a feature of the mock; refused rather than silently ignored.
            raise FeatureNotSupportedError(
                self.name, "instances", "register_to_load_balancer", "load_balancer_id"
            )
        count = opts.instance_count
        if not 1 <= count <= MAX_INSTANCE_COUNT:
            raise ValidationError(
                f"instance_count must be between 1 and {MAX_INSTANCE_COUNT}, not {count}",
                metadata={"option": "instance_count", "value": count},
            )
        if opts.name:
            self._check_instance_name(opts.name)
        profile_id = opts.hardware_profile_id or "m1-small"
        profile = next((p for p in self.hardware_profiles if p.id == profile_id), None)
        if profile is None:
            raise ValidationError(
                f"unknown hardware profile {profile_id!r}",
                metadata={"option": "hardware_profile_id", "hardware_profile_id": profile_id},
            )
        # The server validated the overrides already; validating again costs nothing and
        # keeps the driver correct when called directly.
        chosen = profile.resolve(opts.hardware_profile_overrides)
        realm_id = opts.realm_id or REALMS[0].id
        if realm_id not in {r.id for r in REALMS}:
            raise NotFoundError("realm", realm_id)
        launched = records.now_iso()
        created: list[Record] = []
        with self._store.transaction() as tx:
            replayed = tokens.replay(tx, owner, ctx, "create_instance", opts)
            if replayed is not None:
                return [records.instance(rec, [], []) for rec in replayed]
            image = tx.get("image", "", opts.image_id)
            if image is None:
                raise NotFoundError("image", opts.image_id)
            if opts.key_name and tx.get("key", owner, opts.key_name) is None:
                raise NotFoundError("key", opts.key_name)
            for firewall_id in opts.firewall_ids:
                if tx.get("firewall", owner, firewall_id) is None:
                    raise NotFoundError("firewall", firewall_id)
            initial = self.machine.target(InstanceState.START, InstanceAction.CREATE)
            assert initial is not None  # the SDK guarantees 'start -> X on create'
            # Ids are global over all users (like a real cloud's); the transaction makes
            # "first free" safe against concurrent creates.
            used = tx.ids("instance")
            now = time.time()
            for _ in range(count):
                instance_id = _first_free("inst", used, 0)
                used.add(instance_id)
                public, private = instance_addresses(opts.image_id, instance_id)
                rec: Record = {
                    "id": instance_id,
                    "name": opts.name,
                    "owner_id": owner,
                    "image_id": opts.image_id,
                    "architecture": image.get("architecture", ""),
                    "realm_id": realm_id,
                    "hardware_profile_id": profile.id,
                    "overrides": dict(chosen.items()),
                    "public_addresses": public,
                    "private_addresses": private,
                    "launch_time": launched,
                    "key_name": opts.key_name,
                    "firewall_ids": list(opts.firewall_ids),
                    "state": initial.value,
                    "state_since": now,
                    "imageable": True,
                    "user_data": base64.b64encode(opts.user_data).decode("ascii"),
                }
                tx.put("instance", owner, instance_id, rec)
                created.append(rec)
            tokens.remember(tx, owner, ctx, "create_instance", opts, created)
        return [records.instance(rec, [], []) for rec in created]

    def _check_instance_name(self, name: str) -> None:
        feature = self.feature("instances", "user_name")
        max_length = int(feature.constraints.get("max_length", "255")) if feature else 255
        _check_label("name", name, max_length)

    def _act(self, ctx: CallContext, instance_id: str, action: InstanceAction) -> m.Instance:
        """Run ``action``: inside one transaction, advance the instance, check that the
        machine allows the action *now* (the server checked too, but earlier), move it."""
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._instance_rec(tx, owner, instance_id)
            state = InstanceState(rec["state"])
            target = self.machine.target(state, action)
            if target is None:
                raise ActionNotAllowedError(
                    instance_id,
                    action.value,
                    state.value,
                    [a.value for a in self.machine.allowed_actions(state)],
                )
            if target is InstanceState.FINISH:
                self._release(tx, owner, instance_id)
                tx.delete("instance", owner, instance_id)
                rec["state"] = target.value
                return records.instance(rec, [], [])
            if target is not state:
                # reboot (running -> running) changes nothing, not even state_since.
                rec["state"] = target.value
                rec["state_since"] = time.time()
                tx.put("instance", owner, instance_id, rec)
            return self._instance_model(tx, owner, rec)

    @staticmethod
    def _release(tx: Tx, owner: str, instance_id: str) -> None:
        """Free what a destroyed instance held: volumes, addresses, balancer slots."""
        for vol in tx.list("volume", owner):
            if vol.get("instance_id") == instance_id:
                vol.update(state="AVAILABLE", instance_id="", device="")
                tx.put("volume", owner, vol["id"], vol)
        for addr in tx.list("address", owner):
            if addr.get("instance_id") == instance_id:
                addr["instance_id"] = ""
                tx.put("address", owner, addr["id"], addr)
        for lb in tx.list("load_balancer", owner):
            if instance_id in lb.get("instance_ids", []):
                lb["instance_ids"] = [i for i in lb["instance_ids"] if i != instance_id]
                tx.put("load_balancer", owner, lb["id"], lb)

    def start_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.START)

    def stop_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.STOP)

    def reboot_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.REBOOT)

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.DESTROY)

    # ---- keys -------------------------------------------------------------------------

    @nonblocking
    def list_keys(self, ctx: CallContext, filters: Filters) -> list[m.Key]:
        owner = self._owner(ctx)
        recs = self._read(ctx, owner, "key").list("key", owner)
        keys = [records.key(r) for r in sorted(recs, key=lambda r: natural_key(r["id"]))]
        return filter_on(keys, filters, *COLLECTIONS["keys"].filters)

    @nonblocking
    def get_key(self, ctx: CallContext, key_id: str) -> m.Key:
        owner = self._owner(ctx)
        rec = self._read(ctx, owner, "key").get("key", owner, key_id)
        if rec is None:
            raise NotFoundError("key", key_id)
        return records.key(rec)

    def create_key(self, ctx: CallContext, opts: m.CreateKey) -> m.Key:
        owner = self._owner(ctx)
        _check_name("name", opts.name)
        private_pem = ""
        public_key = opts.public_key.strip()
        if public_key:
            check_public_key(public_key)
        else:
            # No key given: generate a pair; the private half is returned once, here.
            private_pem, public_key = fake_key_pair(opts.name)
        rec: Record = {
            "id": opts.name,
            "name": opts.name,
            "credential_type": "KEY",
            "fingerprint": fingerprint(public_key),
            "username": "",
            "password": "",
            "public_key": public_key,
            "state": "AVAILABLE",
        }
        with self._store.transaction() as tx:
            if tx.get("key", owner, opts.name) is not None:
                raise AlreadyExistsError("key", opts.name)
            tx.put("key", owner, opts.name, rec)
        key = records.key(rec)
        key.pem_rsa_key = private_pem
        return key

    def delete_key(self, ctx: CallContext, key_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            if not tx.delete("key", owner, key_id):
                raise NotFoundError("key", key_id)

    # ---- storage volumes --------------------------------------------------------------

    def _volume_rec(self, tx: Tx | Snapshot, owner: str, volume_id: str) -> Record:
        rec = tx.get("volume", owner, volume_id)
        if rec is None:
            raise NotFoundError("storage_volume", volume_id)
        return rec

    @nonblocking
    def list_storage_volumes(self, ctx: CallContext, filters: Filters) -> list[m.StorageVolume]:
        owner = self._owner(ctx)
        recs = self._read(ctx, owner, "volume").list("volume", owner)
        volumes = [records.volume(r) for r in sorted(recs, key=lambda r: natural_key(r["id"]))]
        return filter_on(volumes, filters, *COLLECTIONS["storage_volumes"].filters)

    @nonblocking
    def get_storage_volume(self, ctx: CallContext, volume_id: str) -> m.StorageVolume:
        owner = self._owner(ctx)
        return records.volume(self._volume_rec(self._read(ctx, owner, "volume"), owner, volume_id))

    def create_storage_volume(
        self, ctx: CallContext, opts: m.CreateStorageVolume
    ) -> m.StorageVolume:
        owner = self._owner(ctx)
        _check_label("name", opts.name)
        if not opts.capacity_gb >= 0:
            raise ValidationError(
                f"capacity must be positive, not {opts.capacity_gb}",
                metadata={"option": "capacity_gb", "value": opts.capacity_gb},
            )
        realm_id = opts.realm_id or REALMS[0].id
        if realm_id not in {r.id for r in REALMS}:
            raise NotFoundError("realm", realm_id)
        with self._store.transaction() as tx:
            replayed = tokens.replay(tx, owner, ctx, "create_storage_volume", opts)
            if replayed is not None:
                return records.volume(replayed[0])
            capacity = opts.capacity_gb
            if opts.snapshot_id:
                snap = tx.get("snapshot", owner, opts.snapshot_id)
                if snap is None:
                    raise NotFoundError("storage_snapshot", opts.snapshot_id)
                size = snap.get("capacity_gb")
                if size is None:  # a snapshot of a directory from before sizes were kept
                    source = tx.get("volume", owner, snap["storage_volume_id"])
                    size = source["capacity_gb"] if source is not None else None
                if size is not None and capacity and capacity < int(size):
                    raise ValidationError(
                        f"snapshot {opts.snapshot_id!r} holds {int(size)} GB; a volume "
                        f"made of it needs at least that (capacity_gb {capacity})",
                        reason="INVALID_CAPACITY",
                        metadata={"option": "capacity_gb", "snapshot_capacity_gb": size},
                    )
                if not capacity and size is not None:
                    capacity = int(size)
            volume_id = tx.fresh_id("volume", "vol")
            rec: Record = {
                "id": volume_id,
                "name": opts.name or volume_id,
                "description": opts.description,
                "create_time": records.now_iso(),
                "state": "AVAILABLE",
                "capacity_gb": int(capacity or 1),
                "instance_id": "",
                "device": "",
                "realm_id": realm_id,
                "kind": "standard",
                "snapshot_id": opts.snapshot_id,
            }
            tx.put("volume", owner, volume_id, rec)
            tokens.remember(tx, owner, ctx, "create_storage_volume", opts, [rec])
        return records.volume(rec)

    def delete_storage_volume(self, ctx: CallContext, volume_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._volume_rec(tx, owner, volume_id)
            if rec.get("instance_id") or rec.get("state") == "IN_USE":
                raise ConflictError(
                    f"storage volume {volume_id!r} is attached to an instance",
                    reason="VOLUME_IN_USE",
                    metadata={"storage_volume_id": volume_id, "instance_id": rec["instance_id"]},
                )
            tx.delete("volume", owner, volume_id)

    def attach_storage_volume(
        self, ctx: CallContext, volume_id: str, instance_id: str, device: str
    ) -> m.StorageVolume:
        owner = self._owner(ctx)
        _check_label("device", device)
        if not device or device != device.strip():
            raise ValidationError(
                f"device {device!r} is not a valid device name",
                metadata={"option": "device", "value": device},
            )
        with self._store.transaction() as tx:
            rec = self._volume_rec(tx, owner, volume_id)
            inst = self._instance_rec(tx, owner, instance_id)
            if rec.get("state") != "AVAILABLE" or rec.get("instance_id"):
                raise ConflictError(
                    f"storage volume {volume_id!r} is not available",
                    reason="VOLUME_IN_USE",
                    metadata={"storage_volume_id": volume_id, "instance_id": rec["instance_id"]},
                )
            if inst.get("realm_id") != rec.get("realm_id"):
                raise ConflictError(
                    f"storage volume {volume_id!r} is in realm {rec.get('realm_id')!r}, "
                    f"instance {instance_id!r} in realm {inst.get('realm_id')!r}",
                    reason="REALM_MISMATCH",
                    metadata={
                        "storage_volume_id": volume_id,
                        "instance_id": instance_id,
                        "volume_realm_id": rec.get("realm_id", ""),
                        "instance_realm_id": inst.get("realm_id", ""),
                    },
                )
            for other in tx.list("volume", owner):
                if other.get("instance_id") == instance_id and other.get("device") == device:
                    raise ConflictError(
                        f"device {device!r} of instance {instance_id!r} is in use",
                        reason="DEVICE_IN_USE",
                        metadata={"instance_id": instance_id, "device": device},
                    )
            rec.update(state="IN_USE", instance_id=instance_id, device=device)
            tx.put("volume", owner, volume_id, rec)
        return records.volume(rec)

    def detach_storage_volume(self, ctx: CallContext, volume_id: str) -> m.StorageVolume:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._volume_rec(tx, owner, volume_id)
            if not rec.get("instance_id"):
                raise ConflictError(
                    f"storage volume {volume_id!r} is not attached",
                    reason="VOLUME_NOT_ATTACHED",
                    metadata={"storage_volume_id": volume_id},
                )
            rec.update(state="AVAILABLE", instance_id="", device="")
            tx.put("volume", owner, volume_id, rec)
        return records.volume(rec)

    # ---- storage snapshots ------------------------------------------------------------

    @nonblocking
    def list_storage_snapshots(self, ctx: CallContext, filters: Filters) -> list[m.StorageSnapshot]:
        owner = self._owner(ctx)
        recs = self._read(ctx, owner, "snapshot").list("snapshot", owner)
        snaps = [records.snapshot(r) for r in sorted(recs, key=lambda r: natural_key(r["id"]))]
        return filter_on(snaps, filters, *COLLECTIONS["storage_snapshots"].filters)

    @nonblocking
    def get_storage_snapshot(self, ctx: CallContext, snapshot_id: str) -> m.StorageSnapshot:
        owner = self._owner(ctx)
        rec = self._read(ctx, owner, "snapshot").get("snapshot", owner, snapshot_id)
        if rec is None:
            raise NotFoundError("storage_snapshot", snapshot_id)
        return records.snapshot(rec)

    def create_storage_snapshot(
        self, ctx: CallContext, opts: m.CreateStorageSnapshot
    ) -> m.StorageSnapshot:
        owner = self._owner(ctx)
        _check_label("name", opts.name)
        with self._store.transaction() as tx:
            replayed = tokens.replay(tx, owner, ctx, "create_storage_snapshot", opts)
            if replayed is not None:
                return records.snapshot(replayed[0])
            volume = self._volume_rec(tx, owner, opts.storage_volume_id)
            snapshot_id = tx.fresh_id("snapshot", "snap")
            rec: Record = {
                "id": snapshot_id,
                "storage_volume_id": opts.storage_volume_id,
                # The size taken, which a volume made of the snapshot gets (the volume may
                # be resized or gone by then).
                "capacity_gb": int(volume["capacity_gb"]),
                "name": opts.name or snapshot_id,
                "description": opts.description,
                "state": "COMPLETED",
                "create_time": records.now_iso(),
            }
            tx.put("snapshot", owner, snapshot_id, rec)
            tokens.remember(tx, owner, ctx, "create_storage_snapshot", opts, [rec])
        return records.snapshot(rec)

    def delete_storage_snapshot(self, ctx: CallContext, snapshot_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            if not tx.delete("snapshot", owner, snapshot_id):
                raise NotFoundError("storage_snapshot", snapshot_id)

    # ---- buckets ----------------------------------------------------------------------

    def _bucket_rec(self, tx: Tx | Snapshot, owner: str, bucket_id: str) -> Record:
        rec = tx.get("bucket", owner, bucket_id)
        if rec is None:
            raise NotFoundError("bucket", bucket_id)
        return rec

    @nonblocking
    def list_buckets(self, ctx: CallContext, filters: Filters) -> list[m.Bucket]:
        owner = self._owner(ctx)
        snap = self._read(ctx, owner, "bucket", "blob")
        buckets = [
            records.bucket(r, snap.count("blob", owner, r["id"]))
            for r in sorted(snap.list("bucket", owner), key=lambda r: natural_key(r["id"]))
        ]
        return filter_on(buckets, filters, *COLLECTIONS["buckets"].filters)

    @nonblocking
    def get_bucket(self, ctx: CallContext, bucket_id: str) -> m.Bucket:
        owner = self._owner(ctx)
        snap = self._read(ctx, owner, "bucket", "blob")
        rec = self._bucket_rec(snap, owner, bucket_id)
        return records.bucket(rec, snap.count("blob", owner, bucket_id))

    def create_bucket(self, ctx: CallContext, opts: m.CreateBucket) -> m.Bucket:
        owner = self._owner(ctx)
        _check_name("name", opts.name, _BUCKET_NAME)
        rec: Record = {"id": opts.name, "name": opts.name, "location": opts.location}
        with self._store.transaction() as tx:
            # Bucket names are per user: a global namespace would tell a user which names
            # other users have taken.
            if tx.get("bucket", owner, opts.name) is not None:
                raise AlreadyExistsError("bucket", opts.name)
            tx.put("bucket", owner, opts.name, rec)
        return records.bucket(rec, 0)

    def delete_bucket(self, ctx: CallContext, bucket_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            self._bucket_rec(tx, owner, bucket_id)
            blobs = tx.count("blob", owner, bucket_id)
            if blobs:
                raise ConflictError(
                    f"bucket {bucket_id!r} is not empty ({blobs} blobs)",
                    reason="BUCKET_NOT_EMPTY",
                    metadata={"bucket_id": bucket_id, "blob_count": blobs},
                )
            tx.delete("bucket", owner, bucket_id)

    # ---- blobs ------------------------------------------------------------------------

    def _blob_rec(self, tx: Tx | Snapshot, owner: str, bucket_id: str, blob_id: str) -> Record:
        self._bucket_rec(tx, owner, bucket_id)
        rec = tx.get("blob", owner, blob_id, parent=bucket_id)
        if rec is None:
            raise NotFoundError("blob", blob_id, bucket_id=bucket_id)
        return rec

    @nonblocking
    def list_blobs(self, ctx: CallContext, bucket_id: str, filters: Filters) -> list[m.Blob]:
        owner = self._owner(ctx)
        snap = self._read(ctx, owner, "bucket", "blob")
        self._bucket_rec(snap, owner, bucket_id)
        recs = snap.list("blob", owner, parent=bucket_id)
        blobs = [records.blob(r) for r in sorted(recs, key=lambda r: natural_key(r["id"]))]
        return filter_on(blobs, filters, "id")

    @nonblocking
    def get_blob(self, ctx: CallContext, bucket_id: str, blob_id: str) -> m.Blob:
        owner = self._owner(ctx)
        snap = self._read(ctx, owner, "bucket", "blob")
        return records.blob(self._blob_rec(snap, owner, bucket_id, blob_id))

    def put_blob(self, ctx: CallContext, opts: m.PutBlob) -> m.Blob:
        owner = self._owner(ctx)
        if not opts.blob_id or "\x00" in opts.blob_id or len(opts.blob_id) > 1024:
            raise ValidationError(
                f"blob id {opts.blob_id!r} is not valid", metadata={"option": "blob_id"}
            )
        # Keys an update of the metadata would refuse are refused here too: a blob stored
        # with one could never have its metadata written back.
        _check_metadata_keys(opts.user_metadata)
        # Refuse before reading the upload if the bucket is not there.
        with self._store.transaction() as tx:
            self._bucket_rec(tx, owner, opts.bucket_id)
        # Stream to a new file outside any transaction (a slow upload must not block
        # other callers); the row is switched to it afterwards, atomically.
        file_name, size = self._store.write_blob_file(opts.chunks)
        path = self._store.blob_path(file_name)
        try:
            if opts.content_length is not None and opts.content_length != size:
                raise ValidationError(
                    f"content_length {opts.content_length} announced, {size} bytes received",
                    metadata={"option": "content_length", "received": size},
                )
            with self._store.transaction() as tx:
                self._bucket_rec(tx, owner, opts.bucket_id)  # may have gone meanwhile
                old = tx.get("blob", owner, opts.blob_id, parent=opts.bucket_id)
                rec: Record = {
                    "id": opts.blob_id,
                    "bucket_id": opts.bucket_id,
                    "content_length": size,
                    "content_type": opts.content_type or "application/octet-stream",
                    "last_modified": records.now_iso(),
                    "user_metadata": dict(opts.user_metadata),
                    "file": file_name,
                }
                tx.put("blob", owner, opts.blob_id, rec, parent=opts.bucket_id)
                if old is not None:
                    # Removed only after COMMIT: until then the old version is the truth.
                    tx.files_to_delete.append(self._store.blob_path(old["file"]))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return records.blob(rec)

    def get_blob_content(self, ctx: CallContext, bucket_id: str, blob_id: str) -> Iterator[bytes]:
        return self.open_blob(ctx, bucket_id, blob_id)[1]

    def open_blob(
        self, ctx: CallContext, bucket_id: str, blob_id: str
    ) -> tuple[m.Blob, Iterator[bytes]]:
        owner = self._owner(ctx)
        # Look up and open eagerly (so NotFoundError is raised by this call, not by the
        # first next()), under the store lock so a concurrent replace cannot remove the
        # file between the lookup and the open; once open, the content stays readable, and
        # the record read with it describes that content.
        with self._store.transaction() as tx:
            rec = self._blob_rec(tx, owner, bucket_id, blob_id)
            try:
                handle = open(self._store.blob_path(rec["file"]), "rb")  # noqa: SIM115
            except OSError as exc:
                # The row exists but its file does not: storage damage, not the caller's
                # fault; never hand a file path to the client.
                raise InternalDriverError(
                    f"content of blob {blob_id!r} is unavailable",
                    metadata={"bucket_id": bucket_id, "blob_id": blob_id},
                ) from exc
        return records.blob(rec), _read_chunks(handle)

    def delete_blob(self, ctx: CallContext, bucket_id: str, blob_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._blob_rec(tx, owner, bucket_id, blob_id)
            tx.delete("blob", owner, blob_id, parent=bucket_id)
            tx.files_to_delete.append(self._store.blob_path(rec["file"]))

    def update_blob_metadata(
        self, ctx: CallContext, bucket_id: str, blob_id: str, metadata: dict[str, str]
    ) -> dict[str, str]:
        owner = self._owner(ctx)
        _check_metadata_keys(metadata)
        with self._store.transaction() as tx:
            rec = self._blob_rec(tx, owner, bucket_id, blob_id)
            rec["user_metadata"] = {str(k): str(v) for k, v in metadata.items()}
            tx.put("blob", owner, blob_id, rec, parent=bucket_id)
        return dict(rec["user_metadata"])

    # ---- addresses --------------------------------------------------------------------

    def _address_rec(self, tx: Tx | Snapshot, owner: str, address_id: str) -> Record:
        rec = tx.get("address", owner, address_id)
        if rec is None:
            raise NotFoundError("address", address_id)
        return rec

    @nonblocking
    def list_addresses(self, ctx: CallContext, filters: Filters) -> list[m.Address]:
        owner = self._owner(ctx)
        recs = self._read(ctx, owner, "address").list("address", owner)
        recs.sort(key=lambda r: int(ipaddress.ip_address(r["id"])))
        return filter_on([records.address(r) for r in recs], filters, "id")

    @nonblocking
    def get_address(self, ctx: CallContext, address_id: str) -> m.Address:
        owner = self._owner(ctx)
        snap = self._read(ctx, owner, "address")
        return records.address(self._address_rec(snap, owner, address_id))

    def create_address(self, ctx: CallContext) -> m.Address:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            replayed = tokens.replay(tx, owner, ctx, "create_address", {})
            if replayed is not None:
                return records.address(replayed[0])
            used = tx.ids("address")  # IPs are global: two users never share one
            ip = next((str(h) for h in ADDRESS_POOL.hosts() if str(h) not in used), None)
            if ip is None:
                raise ResourceExhaustedError(
                    "the mock's address pool is exhausted",
                    metadata={"pool": str(ADDRESS_POOL)},
                )
            rec: Record = {"id": ip, "instance_id": ""}
            tx.put("address", owner, ip, rec)
            tokens.remember(tx, owner, ctx, "create_address", {}, [rec])
        return records.address(rec)

    def delete_address(self, ctx: CallContext, address_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._address_rec(tx, owner, address_id)
            if rec.get("instance_id"):
                raise ConflictError(
                    f"address {address_id} is associated with an instance",
                    reason="ADDRESS_IN_USE",
                    metadata={"address_id": address_id, "instance_id": rec["instance_id"]},
                )
            tx.delete("address", owner, address_id)

    def associate_address(self, ctx: CallContext, address_id: str, instance_id: str) -> m.Address:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._address_rec(tx, owner, address_id)
            self._instance_rec(tx, owner, instance_id)
            if rec.get("instance_id"):
                raise ConflictError(
                    f"address {address_id} is already associated with an instance",
                    reason="ADDRESS_IN_USE",
                    metadata={"address_id": address_id, "instance_id": rec["instance_id"]},
                )
            rec["instance_id"] = instance_id
            tx.put("address", owner, address_id, rec)
        return records.address(rec)

    def disassociate_address(self, ctx: CallContext, address_id: str) -> m.Address:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._address_rec(tx, owner, address_id)
            if not rec.get("instance_id"):
                raise ConflictError(
                    f"address {address_id} is not associated with an instance",
                    reason="ADDRESS_NOT_ASSOCIATED",
                    metadata={"address_id": address_id},
                )
            rec["instance_id"] = ""
            tx.put("address", owner, address_id, rec)
        return records.address(rec)

    # ---- firewalls --------------------------------------------------------------------

    def _firewall_rec(self, tx: Tx | Snapshot, owner: str, firewall_id: str) -> Record:
        rec = tx.get("firewall", owner, firewall_id)
        if rec is None:
            raise NotFoundError("firewall", firewall_id)
        return rec

    @nonblocking
    def list_firewalls(self, ctx: CallContext, filters: Filters) -> list[m.Firewall]:
        owner = self._owner(ctx)
        recs = self._read(ctx, owner, "firewall").list("firewall", owner)
        fws = [records.firewall(r) for r in sorted(recs, key=lambda r: natural_key(r["id"]))]
        return filter_on(fws, filters, *COLLECTIONS["firewalls"].filters)

    @nonblocking
    def get_firewall(self, ctx: CallContext, firewall_id: str) -> m.Firewall:
        owner = self._owner(ctx)
        snap = self._read(ctx, owner, "firewall")
        return records.firewall(self._firewall_rec(snap, owner, firewall_id))

    def create_firewall(self, ctx: CallContext, opts: m.CreateFirewall) -> m.Firewall:
        owner = self._owner(ctx)
        _check_name("name", opts.name)
        if not opts.description.strip():
            raise ValidationError(
                "a firewall needs a description", metadata={"option": "description"}
            )
        rec: Record = {
            "id": opts.name,
            "name": opts.name,
            "description": opts.description,
            "owner_id": owner,
            "rules": [],
            "next_rule": 1,
        }
        with self._store.transaction() as tx:
            if tx.get("firewall", owner, opts.name) is not None:
                raise AlreadyExistsError("firewall", opts.name)
            tx.put("firewall", owner, opts.name, rec)
        return records.firewall(rec)

    def delete_firewall(self, ctx: CallContext, firewall_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            self._firewall_rec(tx, owner, firewall_id)
            users = [
                inst["id"]
                for inst in tx.list("instance", owner)
                if firewall_id in inst.get("firewall_ids", [])
            ]
            if users:
                raise ConflictError(
                    f"firewall {firewall_id!r} is used by instances",
                    reason="FIREWALL_IN_USE",
                    metadata={"firewall_id": firewall_id, "instance_ids": sorted(users)},
                )
            # A rule of another firewall naming this one as its source still needs it.
            referrers = sorted(
                fw["id"]
                for fw in tx.list("firewall", owner)
                if fw["id"] != firewall_id
                and any(
                    src.get("firewall_id") == firewall_id
                    for rule in fw.get("rules", [])
                    for src in rule.get("sources", [])
                )
            )
            if referrers:
                raise ConflictError(
                    f"firewall {firewall_id!r} is a rule source of other firewalls",
                    reason="FIREWALL_IN_USE",
                    metadata={"firewall_id": firewall_id, "firewall_ids": referrers},
                )
            tx.delete("firewall", owner, firewall_id)

    def create_firewall_rule(
        self, ctx: CallContext, firewall_id: str, opts: m.CreateFirewallRule
    ) -> m.Firewall:
        owner = self._owner(ctx)
        rule = self._normalised_rule(opts)
        with self._store.transaction() as tx:
            rec = self._firewall_rec(tx, owner, firewall_id)
            for source in rule.sources:
                if source.firewall_id:
                    self._firewall_rec(tx, owner, source.firewall_id)
            n = int(rec.get("next_rule", 1))
            new = records.firewall_rule_record(f"rule{n}", rule)
            allowed = _permissions(new)
            for existing in rec["rules"]:
                # As on EC2, whose rule that allows one of them already refuses the whole
                # rule: the same sources in another order, or one source more, were new.
                if _permissions(existing) & allowed:
                    raise AlreadyExistsError(
                        "firewall_rule", existing["id"], firewall_id=firewall_id
                    )
            rec["rules"].append(new)
            rec["next_rule"] = n + 1
            tx.put("firewall", owner, firewall_id, rec)
        return records.firewall(rec)

    @staticmethod
    def _normalised_rule(opts: m.CreateFirewallRule) -> m.CreateFirewallRule:
        protocol = opts.protocol.lower()
        if protocol not in _PROTOCOLS:
            raise ValidationError(
                f"protocol {opts.protocol!r} is not one of {', '.join(_PROTOCOLS)}",
                metadata={"option": "protocol", "value": opts.protocol},
            )
        if protocol == "icmp":  # type and code, each -1 (all) to 255
            valid = -1 <= opts.port_from <= 255 and -1 <= opts.port_to <= 255
            valid = valid and (opts.port_from != -1 or opts.port_to == -1)
        else:
            valid = 0 <= opts.port_from <= opts.port_to <= 65535
        if not valid:
            raise ValidationError(
                f"ports {opts.port_from}..{opts.port_to} are not a valid range",
                metadata={
                    "option": "port_from",
                    "port_from": opts.port_from,
                    "port_to": opts.port_to,
                },
            )
        direction = opts.direction.upper() or "INGRESS"
        if direction not in ("INGRESS", "EGRESS"):
            raise ValidationError(
                f"direction {opts.direction!r} is not INGRESS or EGRESS",
                metadata={"option": "direction", "value": opts.direction},
            )
        sources: list[m.RuleSource] = []
        for source in opts.sources:
            if bool(source.cidr) == bool(source.firewall_id):
                raise ValidationError(
                    "a rule source is either a CIDR block or a firewall",
                    metadata={"option": "sources"},
                )
            if source.cidr:
                try:
                    cidr = str(ipaddress.ip_network(source.cidr, strict=False))
                except ValueError:
                    raise ValidationError(
                        f"{source.cidr!r} is not a CIDR block",
                        metadata={"option": "sources", "value": source.cidr},
                    ) from None
                sources.append(m.RuleSource(cidr=cidr))
            else:
                sources.append(m.RuleSource(firewall_id=source.firewall_id))
        return m.CreateFirewallRule(protocol, opts.port_from, opts.port_to, sources, direction)

    def delete_firewall_rule(self, ctx: CallContext, firewall_id: str, rule_id: str) -> m.Firewall:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._firewall_rec(tx, owner, firewall_id)
            kept = [r for r in rec["rules"] if r["id"] != rule_id]
            if len(kept) == len(rec["rules"]):
                raise NotFoundError("firewall_rule", rule_id, firewall_id=firewall_id)
            rec["rules"] = kept
            tx.put("firewall", owner, firewall_id, rec)
        return records.firewall(rec)

    # ---- load balancers ---------------------------------------------------------------

    def _lb_rec(self, tx: Tx | Snapshot, owner: str, lb_id: str) -> Record:
        rec = tx.get("load_balancer", owner, lb_id)
        if rec is None:
            raise NotFoundError("load_balancer", lb_id)
        return rec

    @nonblocking
    def list_load_balancers(self, ctx: CallContext, filters: Filters) -> list[m.LoadBalancer]:
        owner = self._owner(ctx)
        recs = self._read(ctx, owner, "load_balancer").list("load_balancer", owner)
        lbs = [records.load_balancer(r) for r in sorted(recs, key=lambda r: natural_key(r["id"]))]
        return filter_on(lbs, filters, *COLLECTIONS["load_balancers"].filters)

    @nonblocking
    def get_load_balancer(self, ctx: CallContext, lb_id: str) -> m.LoadBalancer:
        owner = self._owner(ctx)
        return records.load_balancer(
            self._lb_rec(self._read(ctx, owner, "load_balancer"), owner, lb_id)
        )

    def create_load_balancer(self, ctx: CallContext, opts: m.CreateLoadBalancer) -> m.LoadBalancer:
        owner = self._owner(ctx)
        _check_name("name", opts.name)
        realm_ids = list(dict.fromkeys(opts.realm_ids)) or [REALMS[0].id]
        known = {r.id for r in REALMS}
        for realm_id in realm_ids:
            if realm_id not in known:
                raise NotFoundError("realm", realm_id)
        listeners: list[dict[str, Any]] = []
        for listener in opts.listeners:
            protocol = listener.protocol.upper()
            ports = (listener.load_balancer_port, listener.instance_port)
            if protocol not in _LISTENER_PROTOCOLS or not all(1 <= p <= 65535 for p in ports):
                raise ValidationError(
                    f"listener {listener.protocol} {ports[0]}->{ports[1]} is not valid "
                    f"(protocols: {', '.join(_LISTENER_PROTOCOLS)}; ports 1..65535)",
                    metadata={"option": "listeners"},
                )
            listeners.append(
                {"protocol": protocol, "load_balancer_port": ports[0], "instance_port": ports[1]}
            )
        rec: Record = {
            "id": opts.name,
            "name": opts.name,
            "realm_ids": realm_ids,
            "listeners": listeners,
            "instance_ids": [],
            # Random label: two users may both own a balancer with the same name.
            "public_addresses": [f"lb-{secrets.token_hex(4)}.{realm_ids[0]}.lb.mock.com"],
            "create_time": records.now_iso(),
        }
        with self._store.transaction() as tx:
            if tx.get("load_balancer", owner, opts.name) is not None:
                raise AlreadyExistsError("load_balancer", opts.name)
            tx.put("load_balancer", owner, opts.name, rec)
        return records.load_balancer(rec)

    def delete_load_balancer(self, ctx: CallContext, lb_id: str) -> None:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            if not tx.delete("load_balancer", owner, lb_id):
                raise NotFoundError("load_balancer", lb_id)

    def register_instance(self, ctx: CallContext, lb_id: str, instance_id: str) -> m.LoadBalancer:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._lb_rec(tx, owner, lb_id)
            inst = self._instance_rec(tx, owner, instance_id)
            if inst.get("realm_id") not in rec["realm_ids"]:
                raise ConflictError(
                    f"instance {instance_id!r} is in realm {inst.get('realm_id')!r}, which "
                    f"load balancer {lb_id!r} does not serve",
                    reason="REALM_MISMATCH",
                    metadata={
                        "load_balancer_id": lb_id,
                        "instance_id": instance_id,
                        "realm_id": inst.get("realm_id", ""),
                        "realm_ids": rec["realm_ids"],
                    },
                )
            if instance_id not in rec["instance_ids"]:  # registering twice is harmless
                rec["instance_ids"].append(instance_id)
                tx.put("load_balancer", owner, lb_id, rec)
        return records.load_balancer(rec)

    def unregister_instance(self, ctx: CallContext, lb_id: str, instance_id: str) -> m.LoadBalancer:
        owner = self._owner(ctx)
        with self._store.transaction() as tx:
            rec = self._lb_rec(tx, owner, lb_id)
            # An instance not registered, unknown ones included, names the balancer (as on
            # ec2): an unknown one was NOT_FOUND without it.
            if instance_id not in rec["instance_ids"]:
                raise NotFoundError("instance", instance_id, load_balancer_id=lb_id)
            rec["instance_ids"].remove(instance_id)
            tx.put("load_balancer", owner, lb_id, rec)
        return records.load_balancer(rec)


__all__ = ["CHUNK_SIZE", "MockDriver"]
