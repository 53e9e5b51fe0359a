"""BaseDriver: the contract every cloud driver implements, one method per operation.

A driver subclasses :class:`BaseDriver`, declares ``name``, ``collections``, its
``features``, ``hardware_profiles`` and ``instance_states``, and implements the methods of
the collections it declares. Methods are plain blocking Python; the server runs them in a
worker pool, except methods marked :func:`nonblocking`, which answer from memory and are
called on the event loop (see there). Every method takes a :class:`CallContext`
(credentials, provider, deadline) first. Methods return the models of
:mod:`deltacloud.drivers.models` and raise the errors of :mod:`deltacloud.drivers.errors`;
they never see protobuf or gRPC.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from . import models as m
from .capabilities import COLLECTIONS, FEATURES, Feature
from .errors import (
    AuthenticationError,
    DriverDefinitionError,
    NotFoundError,
    OperationNotSupportedError,
    ValidationError,
)
from .filters import filter_on
from .hardware import HardwareProfile, ProfileCatalog
from .state_machine import StateMachine

#: The instance operations that are actions of the state machine.
INSTANCE_ACTIONS = frozenset({"start", "stop", "reboot", "destroy"})

Filters = Mapping[str, object]
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_NONBLOCKING = "__deltacloud_nonblocking__"


class WouldBlock(Exception):
    """Raised by a :func:`nonblocking` method, called on the event loop, that finds it must
    block after all (a write, a network call, data not in memory): the server calls it again
    on a worker thread. Raise it before changing anything; :meth:`CallContext.leave_event_loop`
    does it for you."""


def nonblocking(method: F) -> F:
    """Mark a driver method that answers from memory, in microseconds, without waiting on a
    network, a disk or a lock held by slow work. The server then calls it on the event loop
    instead of handing it to a worker thread, which costs more than such a method does
    (about 100 µs of CPU and two thread switches per call). When, on the loop, the method
    finds it must block after all, it raises :class:`WouldBlock` (or calls
    ``ctx.leave_event_loop()``) before changing anything, and is called again on a worker.
    The same method also runs on workers (``ctx.on_event_loop`` is False there), e.g. when
    the server retries it or observes instances. ``authenticate`` may be marked too; calls
    whose credentials are not yet checked run inline only when it is."""
    setattr(method, _NONBLOCKING, True)
    return method


def is_nonblocking(method: Callable[..., Any]) -> bool:
    """Whether ``method`` (a function or bound method) is marked :func:`nonblocking`."""
    return getattr(method, _NONBLOCKING, False) is True


@dataclass(frozen=True)
class Credentials:
    """The caller's credentials (HTTP Basic user and password). Never logged: the repr
    hides both."""

    user: str = ""
    password: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    def __bool__(self) -> bool:
        return bool(self.user)


@dataclass(frozen=True)
class CallContext:
    """What a driver method knows about the call it serves."""

    credentials: Credentials
    provider: str
    #: time.monotonic() value by which the client wants an answer, or None.
    deadline: float | None = None
    #: True while a :func:`nonblocking` method runs on the server's event loop.
    on_event_loop: bool = False
    #: A create's request id (a UUID the client chose, sent again with every retry of the
    #: same create), or "". The server answers retries it has seen itself; a driver whose
    #: cloud takes an idempotency token passes it on (EC2's ClientToken), so a retry after
    #: an attempt whose answer was lost (the server stopped, the backend timed out) does
    #: not create twice either.
    request_id: str = ""

    def leave_event_loop(self) -> None:
        """Call in a :func:`nonblocking` method before anything that may block: on the event
        loop it raises :class:`WouldBlock`, so the server calls the method again on a worker
        thread; on a worker it returns and the method goes on."""
        if self.on_event_loop:
            raise WouldBlock()

    def time_left(self) -> float | None:
        """Seconds until the client's deadline (never negative), or None when unbounded."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


#: How one request to a cloud ended: answered; refused for the request rate; refused
#: otherwise (4xx); failed in the cloud (5xx); or no answer (connection, timeout).
BackendOutcome = Literal["ok", "throttled", "client_error", "server_error", "network_error"]


class BackendMeter(Protocol):
    """Where a driver reports each request it sends to its cloud (every attempt, retries
    included), for the server's metrics (``deltacloud_backend_attempts_total``). Called
    from worker threads; cheap and thread-safe."""

    def attempt(self, service: str, operation: str, outcome: BackendOutcome) -> None:
        """One request to ``service`` (e.g. "ec2", "s3") for ``operation`` (the cloud's
        name for it, e.g. "DescribeInstances") ended in ``outcome``."""


class _NoMeter:
    def attempt(self, service: str, operation: str, outcome: BackendOutcome) -> None:
        pass


#: The meter of a driver built outside a server (tests, scripts): reports go nowhere.
NO_METER: BackendMeter = _NoMeter()


@dataclass(frozen=True)
class DriverConfig:
    """Server-side configuration a driver is built with."""

    data_dir: Path
    #: Driver-specific settings (``--driver-option mock.users=alice:secret``), by key.
    options: Mapping[str, str] = field(default_factory=dict)
    #: Report requests to the cloud here (optional: a driver without a cloud has none).
    meter: BackendMeter = NO_METER


class BaseDriver:
    """The driver contract. Subclasses are validated when defined (see
    :meth:`__init_subclass__`), so a misdeclared driver fails at import with a message that
    names the driver and the fix."""

    #: The driver's id, as clients name it in ``x-deltacloud-driver``.
    name: ClassVar[str] = ""
    #: One line for discovery.
    description: ClassVar[str] = ""
    #: The Deltacloud collections this driver serves (see capabilities.COLLECTIONS).
    collections: ClassVar[frozenset[str]] = frozenset()
    #: Optional capabilities per collection, e.g. {"instances": [Feature("user_data")]}.
    features: ClassVar[Mapping[str, Sequence[Feature]]] = {}
    #: The hardware profiles, in order (the first matching an image's architecture is the
    #: default).
    hardware_profiles: ClassVar[Sequence[HardwareProfile]] = ()
    #: How this cloud's instances move between states.
    instance_states: ClassVar[StateMachine | None] = None
    #: The options (``--driver-option NAME.KEY=VALUE``) this driver reads; ``KEY.*`` for a
    #: family (``endpoint_url.*``). Declared, an option not among them stops the server at
    #: start (a typo would otherwise leave the default silently in force); None accepts any.
    option_names: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _default_gets_follow_their_lists(cls)
        if not abstract:
            _validate_driver_class(cls)

    def __init__(self, provider: str, config: DriverConfig) -> None:
        self.provider = provider
        self.config = config
        declared = type(self).option_names
        if declared is not None:
            for key in sorted(config.options):
                if key not in declared and not any(
                    name.endswith(".*") and key.startswith(name[:-1]) for name in declared
                ):
                    raise ValueError(
                        f"unknown driver option {self.name}.{key}; {self.name} reads "
                        + ", ".join(sorted(declared))
                    )

    # ---- discovery ------------------------------------------------------------------

    @classmethod
    def providers(cls) -> list[m.Provider]:
        """The providers (regions, endpoints) this driver can point at."""
        return [m.Provider(id="default", name="default")]

    @classmethod
    def accepts_provider(cls, provider: str) -> bool:
        """Whether ``provider`` names a place this driver can serve. Override when providers
        are open-ended (e.g. a provider string carrying an endpoint URL)."""
        return any(p.id == provider for p in cls.providers())

    @classmethod
    def default_provider(cls) -> str:
        return cls.providers()[0].id

    @classmethod
    def supports(cls, collection: str, operation: str = "list") -> bool:
        """Whether this driver serves ``operation`` on ``collection``."""
        spec = COLLECTIONS.get(collection)
        if spec is None or collection not in cls.collections:
            return False
        method = spec.operations.get(operation)
        if method is None or not _overrides(cls, method):
            return False
        if collection == "instances" and operation in INSTANCE_ACTIONS:
            # An action the machine never allows is not offered, implemented or not (a
            # subclass that narrows its machine inherits the methods): UNIMPLEMENTED.
            machine = cls.instance_states
            return machine is not None and operation in machine.actions
        return True

    @classmethod
    def operations(cls, collection: str) -> list[str]:
        spec = COLLECTIONS[collection]
        return [op for op in spec.operations if cls.supports(collection, op)]

    @classmethod
    def feature(cls, collection: str, name: str) -> Feature | None:
        return next((f for f in cls.features.get(collection, ()) if f.name == name), None)

    #: Collections whose lists the driver pages itself, because the cloud pages natively
    #: and listing everything to serve one page would be slow: the server calls
    #: :meth:`list_page` for them instead of paging the list method's whole answer.
    #: ``"blobs"`` (a bucket's blobs; filters ``bucket_id`` and ``prefix``) may be one of
    #: them when the driver declares buckets.
    pages_natively: ClassVar[frozenset[str]] = frozenset()

    def list_page(
        self, ctx: CallContext, collection: str, filters: Filters, page_size: int, cursor: str
    ) -> tuple[list[Any], str]:
        """One page of ``collection`` (one of ``pages_natively``): at most ``page_size``
        items after ``cursor`` (the driver's own opaque cursor; "" for the first page), and
        the cursor of the next page ("" after the last). The server wraps the cursor in its
        signed page tokens, so clients never see it, and applies the filters again. The
        same cursor must give the same items in the same order: when a page's items would
        not fit in one response, the server asks again from it for fewer."""
        raise self._unsupported(collection, "list_page")

    def close(self) -> None:
        """Release what the driver holds (connections, files). Called at server shutdown."""

    # ---- credentials ----------------------------------------------------------------

    def authenticate(self, ctx: CallContext) -> None:
        """Raise AuthenticationError unless the credentials may be used. Called by the server
        before every operation, so keep it cheap (no backend round trip if avoidable)."""
        if not ctx.credentials:
            raise AuthenticationError("credentials are required")

    # ---- generic getter -------------------------------------------------------------

    def _get(self, kind: str, items: Sequence[T], item_id: str) -> T:
        if not item_id:  # filter_on takes an empty value for "no filter": the first item
            raise NotFoundError(kind, item_id)
        found = filter_on(items, {"id": item_id}, "id")
        if not found:
            raise NotFoundError(kind, item_id)
        return found[0]

    def _unsupported(self, collection: str, operation: str) -> OperationNotSupportedError:
        return OperationNotSupportedError(self.name, collection, operation)

    # ---- realms ---------------------------------------------------------------------

    def list_realms(self, ctx: CallContext, filters: Filters) -> list[m.Realm]:
        raise self._unsupported("realms", "list")

    def get_realm(self, ctx: CallContext, realm_id: str) -> m.Realm:
        return self._get("realm", self.list_realms(ctx, {"id": realm_id}), realm_id)

    # ---- hardware profiles ----------------------------------------------------------

    @nonblocking
    def list_hardware_profiles(self, ctx: CallContext, filters: Filters) -> list[HardwareProfile]:
        """The class-level profiles; override when the cloud lists them at run time."""
        return list(self.hardware_profiles)

    def get_hardware_profile(self, ctx: CallContext, profile_id: str) -> HardwareProfile:
        profiles = self.list_hardware_profiles(ctx, {"id": profile_id})
        return self._get("hardware_profile", profiles, profile_id)

    def default_hardware_profile_id(self, ctx: CallContext, image_id: str) -> str:
        """The profile an instance of ``image_id`` gets when the client names none: by
        default the first profile matching the image's architecture (as Deltacloud did)."""
        architecture = None
        if self.supports("images"):  # a cloud without images: the first profile
            architecture = self.get_image(ctx, image_id).architecture or None
        profiles = ProfileCatalog(tuple(self.list_hardware_profiles(ctx, {})))
        profile = profiles.default_for(architecture)
        if profile is None:
            raise ValidationError(
                f"no hardware profile matches image {image_id!r} ({architecture})",
                metadata={"image_id": image_id, "architecture": architecture},
            )
        return profile.id

    # ---- images ---------------------------------------------------------------------

    def list_images(self, ctx: CallContext, filters: Filters) -> list[m.Image]:
        raise self._unsupported("images", "list")

    def get_image(self, ctx: CallContext, image_id: str) -> m.Image:
        return self._get("image", self.list_images(ctx, {"id": image_id}), image_id)

    def create_image(self, ctx: CallContext, opts: m.CreateImage) -> m.Image:
        raise self._unsupported("images", "create")

    def delete_image(self, ctx: CallContext, image_id: str) -> None:
        raise self._unsupported("images", "destroy")

    # ---- instances ------------------------------------------------------------------

    def list_instances(self, ctx: CallContext, filters: Filters) -> list[m.Instance]:
        raise self._unsupported("instances", "list")

    def get_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        instances = self.list_instances(ctx, {"id": instance_id})
        return self._get("instance", instances, instance_id)

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        """Create ``opts.instance_count`` instances; the server has already validated the
        hardware profile overrides and the features the options need."""
        raise self._unsupported("instances", "create")

    def start_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        raise self._unsupported("instances", "start")

    def stop_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        raise self._unsupported("instances", "stop")

    def reboot_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        raise self._unsupported("instances", "reboot")

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        """Destroy the instance and return it as it is afterwards (often FINISH)."""
        raise self._unsupported("instances", "destroy")

    #: True when the driver implements :meth:`watch_instances` (push); otherwise the server
    #: polls :meth:`list_instances` to observe changes it did not cause.
    pushes_instance_changes: ClassVar[bool] = False

    def watch_instances(
        self, ctx: CallContext, stop: threading.Event
    ) -> Iterator[list[m.Instance]]:
        """Push: yield the caller's complete instance list first, then again whenever the
        cloud reports a change, until ``stop`` is set (check it at least every second).
        Runs on a thread of its own for as long as the scope is watched."""
        raise self._unsupported("instances", "watch")

    # ---- keys -----------------------------------------------------------------------

    def list_keys(self, ctx: CallContext, filters: Filters) -> list[m.Key]:
        raise self._unsupported("keys", "list")

    def get_key(self, ctx: CallContext, key_id: str) -> m.Key:
        return self._get("key", self.list_keys(ctx, {"id": key_id}), key_id)

    def create_key(self, ctx: CallContext, opts: m.CreateKey) -> m.Key:
        raise self._unsupported("keys", "create")

    def delete_key(self, ctx: CallContext, key_id: str) -> None:
        raise self._unsupported("keys", "destroy")

    # ---- storage volumes ------------------------------------------------------------

    def list_storage_volumes(self, ctx: CallContext, filters: Filters) -> list[m.StorageVolume]:
        raise self._unsupported("storage_volumes", "list")

    def get_storage_volume(self, ctx: CallContext, volume_id: str) -> m.StorageVolume:
        volumes = self.list_storage_volumes(ctx, {"id": volume_id})
        return self._get("storage_volume", volumes, volume_id)

    def create_storage_volume(
        self, ctx: CallContext, opts: m.CreateStorageVolume
    ) -> m.StorageVolume:
        raise self._unsupported("storage_volumes", "create")

    def delete_storage_volume(self, ctx: CallContext, volume_id: str) -> None:
        raise self._unsupported("storage_volumes", "destroy")

    def attach_storage_volume(
        self, ctx: CallContext, volume_id: str, instance_id: str, device: str
    ) -> m.StorageVolume:
        raise self._unsupported("storage_volumes", "attach")

    def detach_storage_volume(self, ctx: CallContext, volume_id: str) -> m.StorageVolume:
        raise self._unsupported("storage_volumes", "detach")

    # ---- storage snapshots ----------------------------------------------------------

    def list_storage_snapshots(self, ctx: CallContext, filters: Filters) -> list[m.StorageSnapshot]:
        raise self._unsupported("storage_snapshots", "list")

    def get_storage_snapshot(self, ctx: CallContext, snapshot_id: str) -> m.StorageSnapshot:
        snapshots = self.list_storage_snapshots(ctx, {"id": snapshot_id})
        return self._get("storage_snapshot", snapshots, snapshot_id)

    def create_storage_snapshot(
        self, ctx: CallContext, opts: m.CreateStorageSnapshot
    ) -> m.StorageSnapshot:
        raise self._unsupported("storage_snapshots", "create")

    def delete_storage_snapshot(self, ctx: CallContext, snapshot_id: str) -> None:
        raise self._unsupported("storage_snapshots", "destroy")

    # ---- buckets and blobs ----------------------------------------------------------

    def list_buckets(self, ctx: CallContext, filters: Filters) -> list[m.Bucket]:
        raise self._unsupported("buckets", "list")

    def get_bucket(self, ctx: CallContext, bucket_id: str) -> m.Bucket:
        return self._get("bucket", self.list_buckets(ctx, {"id": bucket_id}), bucket_id)

    def create_bucket(self, ctx: CallContext, opts: m.CreateBucket) -> m.Bucket:
        raise self._unsupported("buckets", "create")

    def delete_bucket(self, ctx: CallContext, bucket_id: str) -> None:
        raise self._unsupported("buckets", "destroy")

    def list_blobs(self, ctx: CallContext, bucket_id: str, filters: Filters) -> list[m.Blob]:
        raise self._unsupported("buckets", "list_blobs")

    def get_blob(self, ctx: CallContext, bucket_id: str, blob_id: str) -> m.Blob:
        raise self._unsupported("buckets", "get_blob")

    def put_blob(self, ctx: CallContext, opts: m.PutBlob) -> m.Blob:
        raise self._unsupported("buckets", "put_blob")

    def get_blob_content(self, ctx: CallContext, bucket_id: str, blob_id: str) -> Iterator[bytes]:
        """Yield the blob's content in chunks (any size; the server re-chunks)."""
        raise self._unsupported("buckets", "download_blob")

    def open_blob(
        self, ctx: CallContext, bucket_id: str, blob_id: str
    ) -> tuple[m.Blob, Iterator[bytes]]:
        """The blob and its content, of one version: what a download sends (the blob as its
        header, then the chunks). This default calls get_blob, then get_blob_content, so a
        blob replaced between the two is described as one version and sent as the other:
        override it to read both from one lookup (the mock) or one answer (S3's GetObject
        carries the object's description with its body)."""
        blob = self.get_blob(ctx, bucket_id, blob_id)
        return blob, self.get_blob_content(ctx, bucket_id, blob_id)

    def delete_blob(self, ctx: CallContext, bucket_id: str, blob_id: str) -> None:
        raise self._unsupported("buckets", "delete_blob")

    def update_blob_metadata(
        self, ctx: CallContext, bucket_id: str, blob_id: str, metadata: dict[str, str]
    ) -> dict[str, str]:
        """Replace the blob's user metadata; return it as stored."""
        raise self._unsupported("buckets", "update_blob_metadata")

    # ---- addresses ------------------------------------------------------------------

    def list_addresses(self, ctx: CallContext, filters: Filters) -> list[m.Address]:
        raise self._unsupported("addresses", "list")

    def get_address(self, ctx: CallContext, address_id: str) -> m.Address:
        addresses = self.list_addresses(ctx, {"id": address_id})
        return self._get("address", addresses, address_id)

    def create_address(self, ctx: CallContext) -> m.Address:
        raise self._unsupported("addresses", "create")

    def delete_address(self, ctx: CallContext, address_id: str) -> None:
        raise self._unsupported("addresses", "destroy")

    def associate_address(self, ctx: CallContext, address_id: str, instance_id: str) -> m.Address:
        raise self._unsupported("addresses", "associate")

    def disassociate_address(self, ctx: CallContext, address_id: str) -> m.Address:
        raise self._unsupported("addresses", "disassociate")

    # ---- firewalls ------------------------------------------------------------------

    def list_firewalls(self, ctx: CallContext, filters: Filters) -> list[m.Firewall]:
        raise self._unsupported("firewalls", "list")

    def get_firewall(self, ctx: CallContext, firewall_id: str) -> m.Firewall:
        firewalls = self.list_firewalls(ctx, {"id": firewall_id})
        return self._get("firewall", firewalls, firewall_id)

    def create_firewall(self, ctx: CallContext, opts: m.CreateFirewall) -> m.Firewall:
        raise self._unsupported("firewalls", "create")

    def delete_firewall(self, ctx: CallContext, firewall_id: str) -> None:
        raise self._unsupported("firewalls", "destroy")

    def create_firewall_rule(
        self, ctx: CallContext, firewall_id: str, opts: m.CreateFirewallRule
    ) -> m.Firewall:
        raise self._unsupported("firewalls", "create_rule")

    def delete_firewall_rule(self, ctx: CallContext, firewall_id: str, rule_id: str) -> m.Firewall:
        raise self._unsupported("firewalls", "delete_rule")

    # ---- load balancers -------------------------------------------------------------

    def list_load_balancers(self, ctx: CallContext, filters: Filters) -> list[m.LoadBalancer]:
        raise self._unsupported("load_balancers", "list")

    def get_load_balancer(self, ctx: CallContext, lb_id: str) -> m.LoadBalancer:
        balancers = self.list_load_balancers(ctx, {"id": lb_id})
        return self._get("load_balancer", balancers, lb_id)

    def create_load_balancer(self, ctx: CallContext, opts: m.CreateLoadBalancer) -> m.LoadBalancer:
        raise self._unsupported("load_balancers", "create")

    def delete_load_balancer(self, ctx: CallContext, lb_id: str) -> None:
        raise self._unsupported("load_balancers", "destroy")

    def register_instance(self, ctx: CallContext, lb_id: str, instance_id: str) -> m.LoadBalancer:
        raise self._unsupported("load_balancers", "register")

    def unregister_instance(self, ctx: CallContext, lb_id: str, instance_id: str) -> m.LoadBalancer:
        raise self._unsupported("load_balancers", "unregister")


def _overrides(cls: type, method: str) -> bool:
    """True when ``cls`` (or a driver base between it and BaseDriver) implements ``method``.
    Class-level ``hardware_profiles`` implement list_hardware_profiles: the base method
    serves them."""
    if method == "list_hardware_profiles" and bool(getattr(cls, "hardware_profiles", None)):
        return True
    impl = getattr(cls, method, None)
    return impl is not None and impl is not getattr(BaseDriver, method, None)


#: The get methods whose default (BaseDriver's) finds the item in its list method's answer.
_DEFAULT_GETS = {
    "get_realm": "list_realms",
    "get_hardware_profile": "list_hardware_profiles",
    "get_image": "list_images",
    "get_instance": "list_instances",
    "get_key": "list_keys",
    "get_storage_volume": "list_storage_volumes",
    "get_storage_snapshot": "list_storage_snapshots",
    "get_bucket": "list_buckets",
    "get_address": "list_addresses",
    "get_firewall": "list_firewalls",
    "get_load_balancer": "list_load_balancers",
}
_FOLLOWS_LIST = "__deltacloud_default_get__"


def _default_gets_follow_their_lists(cls: type[BaseDriver]) -> None:
    """A get a driver leaves to BaseDriver calls its list method: it is @nonblocking when
    that list is (a driver marking its lists need not override every get to mark it),
    and stops being so in a subclass whose list blocks."""
    for get_name, list_name in _DEFAULT_GETS.items():
        current = getattr(cls, get_name)
        base = BaseDriver.__dict__[get_name]
        if current is not base and not getattr(current, _FOLLOWS_LIST, False):
            continue  # the driver's own get: marked or not, as it says
        if not is_nonblocking(getattr(cls, list_name)):
            if current is not base:
                setattr(cls, get_name, base)
            continue
        if current is base:
            setattr(cls, get_name, _following(base))


def _following(base: Callable[..., Any]) -> Callable[..., Any]:
    """BaseDriver's get ``base``, marked @nonblocking for a class whose list is."""

    @functools.wraps(base)
    def get(self: BaseDriver, ctx: CallContext, item_id: str) -> Any:
        return base(self, ctx, item_id)

    setattr(get, _FOLLOWS_LIST, True)
    return nonblocking(get)


def _validate_driver_class(cls: type[BaseDriver]) -> None:
    label = f"driver class {cls.__module__}.{cls.__qualname__}"

    def fail(problem: str, fix: str) -> None:
        raise DriverDefinitionError(f"{label}: {problem}. Fix: {fix}.")

    if not isinstance(cls.name, str) or not cls.name:
        fail("no driver name", 'set the class attribute name = "yourcloud"')
    label = f"driver {cls.name!r} ({cls.__module__}.{cls.__qualname__})"
    unknown = set(cls.collections) - set(COLLECTIONS)
    if unknown:
        fail(
            f"unknown collections {sorted(unknown)}",
            f"use only {', '.join(COLLECTIONS)}",
        )
    for collection in sorted(cls.collections):
        spec = COLLECTIONS[collection]
        for operation in spec.required:
            method = spec.operations[operation]
            if not _overrides(cls, method):
                fail(
                    f"declares the {collection} collection but does not implement {method}()",
                    f"define {method}() or remove {collection!r} from collections",
                )
    if "instances" in cls.collections and not isinstance(cls.instance_states, StateMachine):
        fail(
            "declares instances but has no instance state machine",
            "set instance_states = StateMachine('''start -> pending on create ...''')",
        )
    if "hardware_profiles" in cls.collections and not (
        cls.hardware_profiles or _overrides(cls, "list_hardware_profiles")
    ):
        fail(
            "declares hardware_profiles but defines none",
            "set hardware_profiles = [HardwareProfile(...)] or define list_hardware_profiles()",
        )
    for collection in sorted(cls.pages_natively):
        declared = "buckets" if collection == "blobs" else collection
        if declared not in cls.collections:
            fail(
                f"pages {collection!r} natively but does not declare {declared!r}",
                f"add {declared!r} to collections or remove {collection!r} from pages_natively",
            )
        if not _overrides(cls, "list_page"):
            fail(
                f"pages {collection!r} natively but does not implement list_page()",
                "define list_page() or empty pages_natively",
            )
    machine = cls.instance_states
    if machine is not None:
        for action in {t.action for t in machine.transitions if t.action is not None}:
            operation = "destroy" if action.value == "destroy" else action.value
            method = COLLECTIONS["instances"].operations[operation]
            if not _overrides(cls, method):
                fail(
                    f"its state machine has the {action.value!r} action but "
                    f"{method}() is not implemented",
                    f"define {method}() or remove the {action.value!r} transitions",
                )
    for collection, features in cls.features.items():
        if collection not in cls.collections:
            fail(
                f"declares features for {collection!r}, which is not in its collections",
                f"add {collection!r} to collections or drop those features",
            )
        if isinstance(features, Feature) or not isinstance(features, Sequence):
            fail(
                f"features[{collection!r}] is not a sequence of Feature",
                f"write features = {{{collection!r}: (Feature(...), ...)}}",
            )
        for feature in features:
            if not isinstance(feature, Feature):
                fail(f"feature {feature!r} is not a Feature", "use Feature('name')")
            for key, value in feature.constraints.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    fail(
                        f"feature {feature.name!r} has the constraint {key!r}: {value!r}; "
                        "constraints are strings (they travel in GetCapabilities)",
                        f'write {{"{key}": "{value}"}}',
                    )
                if key in ("max_length", "max_count") and not value.isdigit():
                    fail(
                        f"feature {feature.name!r}: {key} {value!r} is not a whole number",
                        f'write {{"{key}": "20"}}',
                    )
            if (collection, feature.name) not in FEATURES:
                known = sorted(name for (c, name) in FEATURES if c == collection)
                fail(
                    f"unknown feature {feature.name!r} for {collection}",
                    f"use one of {', '.join(known) or 'none'}",
                )
            create = COLLECTIONS[collection].operations.get("create")
            if FEATURES[(collection, feature.name)].options and (
                create is None or not _overrides(cls, create)
            ):
                fail(
                    f"declares the {feature.name!r} feature but does not implement {create}()",
                    f"define {create}() or drop the feature",
                )
