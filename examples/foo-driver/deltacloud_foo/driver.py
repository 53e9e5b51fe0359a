"""FooDriver: the Deltacloud driver of Foo, an imaginary cloud.

Foo differs from the mock on purpose, to show what a driver declares:

- instances are created *stopped* (pending, then stopped on their own) and must be started;
  stopping passes through ``stopping``; there is no reboot, and only a stopped instance can
  be destroyed;
- two providers (regions), ``east`` and ``west``, each with its own realms, instances and
  keys;
- hardware profiles ``foo-small`` (all fixed) and ``foo-flex`` (cpu and memory ranges,
  storage and architecture enums);
- features: instance names (at most 32 characters), keys installed at create, imported
  public keys. Anything else (user data, several instances at once, firewalls) is refused by
  the server before the driver is called;
- one account, checked in constant time.

Options (``--driver-option foo.KEY=VALUE``):

- ``state_file``: the JSON file holding the cloud (default ``<data-dir>/foo/state.json``);
- ``user`` / ``password``: the account (default ``demo`` / ``demo-secret``);
- ``pending_delay`` / ``stopping_delay``: seconds before the automatic transitions out of
  pending and stopping (default 1.0 each).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets
import textwrap
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from deltacloud.drivers import (
    COLLECTIONS,
    ActionNotAllowedError,
    AlreadyExistsError,
    AuthenticationError,
    BaseDriver,
    CallContext,
    DriverConfig,
    Feature,
    Filters,
    HardwareOverrides,
    HardwareProfile,
    InstanceAction,
    InstanceState,
    NotFoundError,
    StateMachine,
    ValidationError,
    enum_of,
    filter_on,
    fixed,
    range_of,
)
from deltacloud.drivers import models as m

from .state import StateFile, provider_state

#: The realms of each provider.
REALMS: dict[str, list[m.Realm]] = {
    "east": [
        m.Realm(id="east-1a", name="East, zone A"),
        m.Realm(id="east-1b", name="East, zone B"),
    ],
    "west": [m.Realm(id="west-1a", name="West, zone A")],
}

#: The public images, the same in every provider.
IMAGES: list[m.Image] = [
    m.Image(
        id="alpine-3-20",
        name="Alpine Linux 3.20",
        owner_id="foo",
        description="Alpine Linux 3.20, minimal",
        architecture="x86_64",
        root_type="persistent",
    ),
    m.Image(
        id="debian-12",
        name="Debian 12",
        owner_id="foo",
        description="Debian 12 (bookworm)",
        architecture="x86_64",
        root_type="persistent",
    ),
    m.Image(
        id="debian-12-arm",
        name="Debian 12 (arm64)",
        owner_id="foo",
        description="Debian 12 (bookworm) for arm64",
        architecture="arm64",
        root_type="persistent",
    ),
]

KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Compared against for an unknown user, so a wrong user name costs as much as a wrong
#: password.
_DUMMY = secrets.token_bytes(32)


def _seconds(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"foo driver option {key!r} must be a number of seconds") from None
    if not value >= 0:  # refuses NaN too
        raise ValueError(f"foo driver option {key!r} must be >= 0")
    return value


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _fake_key_pair(comment: str) -> tuple[str, str]:
    """A random (private PEM, public OpenSSH line) pair: shaped like keys, not real ones."""
    body = "\n".join(textwrap.wrap(base64.b64encode(secrets.token_bytes(400)).decode(), 70))
    private = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"
    public = f"ssh-ed25519 {base64.b64encode(secrets.token_bytes(51)).decode()} {comment}"
    return private, public


def _fingerprint(public_key: str) -> str:
    digest = hashlib.sha256(public_key.strip().encode("utf-8")).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class FooDriver(BaseDriver):
    """The Foo cloud (see the module docstring)."""

    name: ClassVar[str] = "foo"
    description: ClassVar[str] = "Foo, an imaginary cloud whose instances start stopped"
    collections: ClassVar[frozenset[str]] = frozenset(
        {"realms", "hardware_profiles", "images", "instances", "keys"}
    )
    features: ClassVar[Mapping[str, Sequence[Feature]]] = {
        "instances": (Feature("user_name", {"max_length": "32"}), Feature("authentication_key")),
        "keys": (Feature("import_key"),),
    }
    hardware_profiles: ClassVar[Sequence[HardwareProfile]] = (
        HardwareProfile(
            "foo-small",
            cpu=fixed(1),
            memory=fixed(1024),
            storage=fixed(10),
            architecture=fixed("x86_64"),
        ),
        HardwareProfile(
            "foo-flex",
            cpu=range_of(1, 16, default=2),
            memory=range_of(512, 65536, default=2048),
            storage=enum_of(20, 50, 100),
            architecture=enum_of("x86_64", "arm64"),
        ),
    )
    instance_states: ClassVar[StateMachine | None] = StateMachine(
        """
        start    -> pending  on create
        pending  -> stopped  automatically
        stopped  -> running  on start
        running  -> stopping on stop
        stopping -> stopped  automatically
        stopped  -> finish   on destroy
        """
    )

    @classmethod
    def providers(cls) -> list[m.Provider]:
        return [
            m.Provider(id="east", name="Foo East", endpoint="https://east.foo.example/api"),
            m.Provider(id="west", name="Foo West", endpoint="https://west.foo.example/api"),
        ]

    def __init__(self, provider: str, config: DriverConfig) -> None:
        super().__init__(provider, config)
        options = config.options
        self._user = options.get("user") or "demo"
        self._password = (options.get("password") or "demo-secret").encode("utf-8")
        self._delays = {
            InstanceState.PENDING: _seconds(options, "pending_delay", 1.0),
            InstanceState.STOPPING: _seconds(options, "stopping_delay", 1.0),
        }
        path = options.get("state_file") or Path(config.data_dir) / "foo" / "state.json"
        self._state = StateFile(Path(path))

    @property
    def machine(self) -> StateMachine:
        assert self.instance_states is not None
        return self.instance_states

    # ---- credentials ------------------------------------------------------------------

    def authenticate(self, ctx: CallContext) -> None:
        user_ok = hmac.compare_digest(
            ctx.credentials.user.encode("utf-8"), self._user.encode("utf-8")
        )
        password_ok = hmac.compare_digest(
            ctx.credentials.password.encode("utf-8"), self._password if user_ok else _DUMMY
        )
        if not (user_ok and password_ok):
            raise AuthenticationError("the foo cloud does not accept these credentials")

    # ---- realms, hardware profiles, images --------------------------------------------

    def list_realms(self, ctx: CallContext, filters: Filters) -> list[m.Realm]:
        realms = [dataclasses.replace(r) for r in REALMS[self.provider]]
        return filter_on(realms, filters, *COLLECTIONS["realms"].filters)

    def list_hardware_profiles(self, ctx: CallContext, filters: Filters) -> list[HardwareProfile]:
        profiles = filter_on(self.hardware_profiles, filters, "id")
        arch = filters.get("architecture")
        if arch:
            # A profile's architecture is a property (fixed or enum): match its values.
            profiles = [
                p
                for p in profiles
                if p.architecture is not None and p.architecture.allows(str(arch))
            ]
        return profiles

    def _images(self) -> list[m.Image]:
        return [
            dataclasses.replace(
                image,
                hardware_profile_ids=[
                    p.id
                    for p in self.hardware_profiles
                    if p.architecture is None or p.architecture.allows(image.architecture)
                ],
            )
            for image in IMAGES
        ]

    def list_images(self, ctx: CallContext, filters: Filters) -> list[m.Image]:
        return filter_on(self._images(), filters, *COLLECTIONS["images"].filters)

    def default_hardware_profile_id(self, ctx: CallContext, image_id: str) -> str:
        """Foo's rule: the first profile that *allows* the image's architecture (so an
        arm64 image gets foo-flex, whose architecture enum includes arm64)."""
        image = self.get_image(ctx, image_id)
        for profile in self.hardware_profiles:
            if profile.architecture is None or profile.architecture.allows(image.architecture):
                return profile.id
        raise ValidationError(
            f"no hardware profile runs {image.architecture} images",
            metadata={"image_id": image_id, "architecture": image.architecture},
        )

    # ---- instances: the automatic transitions -----------------------------------------

    def _advance(self, rec: dict[str, Any], now: float) -> None:
        """Apply the automatic transitions that are due, from the time the state was
        entered: nothing runs in the background, whoever reads an instance moves it on."""
        while True:
            state = InstanceState(rec["state"])
            targets = self.machine.automatic_targets(state)
            if not targets:
                return
            due = rec["state_since"] + self._delays.get(state, 0.0)
            if now < due:
                return
            rec["state"] = targets[0].value
            rec["state_since"] = due  # entered when the previous state ended

    def _model(self, rec: dict[str, Any]) -> m.Instance:
        overrides = rec["overrides"]
        return m.Instance(
            id=rec["id"],
            state=InstanceState(rec["state"]),
            name=rec["name"],
            owner_id=rec["owner_id"],
            image_id=rec["image_id"],
            realm_id=rec["realm_id"],
            hardware_profile_id=rec["hardware_profile_id"],
            hardware_profile_overrides=HardwareOverrides(**overrides),
            public_addresses=[m.InstanceAddress(rec["hostname"], "hostname")],
            private_addresses=[m.InstanceAddress(rec["private_ip"], "ipv4")],
            launch_time=_time(rec["launch_time"]),
            key_name=rec["key_name"],
        )

    def _instances(self, ctx: CallContext) -> list[dict[str, Any]]:
        now = time.time()
        records = list(provider_state(self._state.read(ctx), self.provider)["instances"].values())
        for rec in records:
            self._advance(rec, now)
        return records

    # ---- instances: operations --------------------------------------------------------

    def list_instances(self, ctx: CallContext, filters: Filters) -> list[m.Instance]:
        instances = [self._model(rec) for rec in self._instances(ctx)]
        return filter_on(instances, filters, *COLLECTIONS["instances"].filters)

    def get_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        for rec in self._instances(ctx):
            if rec["id"] == instance_id:
                return self._model(rec)
        raise NotFoundError("instance", instance_id)

    def _hardware(
        self, ctx: CallContext, opts: m.CreateInstance, image: m.Image
    ) -> tuple[HardwareProfile, HardwareOverrides]:
        """The profile and the overrides the instance records; refuses a profile whose
        architecture is not the image's."""
        profile_id = opts.hardware_profile_id or self.default_hardware_profile_id(ctx, image.id)
        profile = next((p for p in self.hardware_profiles if p.id == profile_id), None)
        if profile is None:
            raise ValidationError(
                f"unknown hardware profile {profile_id!r}",
                reason="UNKNOWN_HARDWARE_PROFILE",
                metadata={"hardware_profile_id": profile_id},
            )
        # The server validated the overrides; validating again keeps the driver correct when
        # it is called directly (tests, scripts).
        chosen = profile.resolve(opts.hardware_profile_overrides)
        arch_prop = profile.architecture
        wanted = opts.hardware_profile_overrides.architecture
        if arch_prop is not None and wanted is None and arch_prop.allows(image.architecture):
            # The architecture follows the image unless the client chose one.
            chosen = profile.resolve(dataclasses.replace(chosen, architecture=image.architecture))
        arch = chosen.architecture or (arch_prop.default if arch_prop else image.architecture)
        if arch != image.architecture:
            raise ValidationError(
                f"image {image.id!r} is {image.architecture}; hardware profile "
                f"{profile.id!r} gives {arch}",
                reason="ARCHITECTURE_MISMATCH",
                metadata={
                    "image_id": image.id,
                    "hardware_profile_id": profile.id,
                    "architecture": arch,
                },
            )
        return profile, chosen

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        if opts.instance_count != 1:
            raise ValidationError(
                "the foo cloud creates one instance per call",
                metadata={"option": "instance_count", "value": opts.instance_count},
            )
        feature = self.feature("instances", "user_name")
        limit = int(feature.constraints["max_length"]) if feature else 0
        if len(opts.name) > limit or any(not ch.isprintable() for ch in opts.name):
            raise ValidationError(
                f"name must be at most {limit} printable characters",
                reason="CONSTRAINT_VIOLATED",
                metadata={"option": "name", "max_length": limit},
            )
        image = self.get_image(ctx, opts.image_id)
        realms = REALMS[self.provider]
        realm_id = opts.realm_id or realms[0].id
        if realm_id not in {r.id for r in realms}:
            raise NotFoundError("realm", realm_id)
        profile, chosen = self._hardware(ctx, opts, image)
        initial = self.machine.target(InstanceState.START, InstanceAction.CREATE)
        assert initial is not None  # the SDK guarantees 'start -> X on create'
        with self._state.update(ctx) as state:
            region = provider_state(state, self.provider)
            if opts.key_name and opts.key_name not in region["keys"]:
                raise NotFoundError("key", opts.key_name)
            number = region["next_instance"]
            region["next_instance"] = number + 1
            now = time.time()
            instance_id = f"foo-{number}"
            rec = {
                "id": instance_id,
                "name": opts.name,
                "owner_id": ctx.credentials.user,
                "image_id": image.id,
                "realm_id": realm_id,
                "hardware_profile_id": profile.id,
                "overrides": dict(chosen.items()),
                "hostname": f"{instance_id}.{self.provider}.foo.example",
                "private_ip": f"10.0.{number // 250}.{number % 250 + 2}",
                "launch_time": now,
                "key_name": opts.key_name,
                "state": initial.value,
                "state_since": now,
            }
            region["instances"][instance_id] = rec
        return [self._model(rec)]

    def _act(self, ctx: CallContext, instance_id: str, action: InstanceAction) -> m.Instance:
        """Advance the instance, check the machine allows ``action`` *now* (the server
        checked too, but before this call, without the lock), and move it."""
        with self._state.update(ctx) as state:
            instances = provider_state(state, self.provider)["instances"]
            rec = instances.get(instance_id)
            if rec is None:
                raise NotFoundError("instance", instance_id)
            self._advance(rec, time.time())
            current = InstanceState(rec["state"])
            target = self.machine.target(current, action)
            if target is None:
                raise ActionNotAllowedError(
                    instance_id,
                    action.value,
                    current.value,
                    [a.value for a in self.machine.allowed_actions(current)],
                )
            rec["state"] = target.value
            rec["state_since"] = time.time()
            if target is InstanceState.FINISH:
                del instances[instance_id]  # a destroyed instance is gone from the cloud
        return self._model(rec)

    def start_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.START)

    def stop_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.STOP)

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._act(ctx, instance_id, InstanceAction.DESTROY)

    # ---- keys -------------------------------------------------------------------------

    @staticmethod
    def _key(rec: dict[str, Any], private: str = "") -> m.Key:
        return m.Key(
            id=rec["id"],
            name=rec["id"],
            fingerprint=rec["fingerprint"],
            public_key=rec["public_key"],
            pem_rsa_key=private,
        )

    def list_keys(self, ctx: CallContext, filters: Filters) -> list[m.Key]:
        keys = provider_state(self._state.read(ctx), self.provider)["keys"]
        found = [self._key(rec) for rec in keys.values()]
        return filter_on(found, filters, *COLLECTIONS["keys"].filters)

    def create_key(self, ctx: CallContext, opts: m.CreateKey) -> m.Key:
        if not KEY_NAME.fullmatch(opts.name):
            raise ValidationError(
                f"key name {opts.name!r} is not valid: 1 to 64 of A-Z a-z 0-9 . _ -",
                metadata={"option": "name"},
            )
        public_key = opts.public_key.strip()
        private = ""
        if not public_key:
            # No key given: the cloud generates a pair and shows the private half once.
            private, public_key = _fake_key_pair(opts.name)
        elif len(public_key) > 8192 or len(public_key.split()) < 2:
            raise ValidationError(
                "public_key is not an OpenSSH public key", metadata={"option": "public_key"}
            )
        with self._state.update(ctx) as state:
            keys = provider_state(state, self.provider)["keys"]
            if opts.name in keys:
                raise AlreadyExistsError("key", opts.name)
            rec = {
                "id": opts.name,
                "public_key": public_key,
                "fingerprint": _fingerprint(public_key),
            }
            keys[opts.name] = rec
        return self._key(rec, private)

    def delete_key(self, ctx: CallContext, key_id: str) -> None:
        with self._state.update(ctx) as state:
            keys = provider_state(state, self.provider)["keys"]
            if keys.pop(key_id, None) is None:
                raise NotFoundError("key", key_id)
