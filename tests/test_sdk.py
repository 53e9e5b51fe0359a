"""The driver SDK on its own: the state machine DSL, hardware profiles and override
validation, filter_on, create-option checks, driver class validation and the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from deltacloud.drivers import (
    BaseDriver,
    CallContext,
    Credentials,
    DriverConfig,
    DriverDefinitionError,
    DriverRegistry,
    Feature,
    FeatureNotSupportedError,
    HardwareOverrides,
    HardwareProfile,
    InstanceAction,
    InstanceState,
    NotFoundError,
    PropertyValidationError,
    StateMachine,
    UnknownDriverError,
    ValidationError,
    check_create_options,
    enum_of,
    filter_on,
    fixed,
    range_of,
)
from deltacloud.drivers import models as m

EC2_LIKE = """
    start    -> pending   on create
    pending  -> running   automatically
    running  -> running   on reboot
    running  -> stopping  on stop
    stopping -> stopped   automatically
    stopped  -> running   on start
    stopped  -> finish    on destroy
"""


# ---- state machine ---------------------------------------------------------------------


def test_machine_answers_allowed_actions_per_state() -> None:
    machine = StateMachine(EC2_LIKE)
    assert machine.allowed_actions(InstanceState.RUNNING) == [
        InstanceAction.REBOOT,
        InstanceAction.STOP,
    ]
    assert machine.allowed_actions(InstanceState.STOPPED) == [
        InstanceAction.START,
        InstanceAction.DESTROY,
    ]
    assert machine.allowed_actions(InstanceState.PENDING) == []
    assert machine.allows(InstanceState.STOPPED, InstanceAction.DESTROY)
    assert not machine.allows(InstanceState.RUNNING, InstanceAction.DESTROY)
    assert machine.target(InstanceState.RUNNING, InstanceAction.STOP) == InstanceState.STOPPING
    assert machine.target(InstanceState.RUNNING, InstanceAction.START) is None


def test_machine_knows_transitional_states() -> None:
    machine = StateMachine(EC2_LIKE)
    assert machine.is_transitional(InstanceState.PENDING)
    assert machine.is_transitional(InstanceState.STOPPING)
    assert not machine.is_transitional(InstanceState.RUNNING)
    assert machine.automatic_targets(InstanceState.STOPPING) == [InstanceState.STOPPED]


def test_machine_lists_states_in_declaration_order_start_first() -> None:
    assert StateMachine(EC2_LIKE).states == [
        InstanceState.START,
        InstanceState.PENDING,
        InstanceState.RUNNING,
        InstanceState.STOPPING,
        InstanceState.STOPPED,
        InstanceState.FINISH,
    ]


def test_machine_of_a_cloud_whose_instances_start_stopped() -> None:
    machine = StateMachine(
        """
        start   -> pending on create
        pending -> stopped automatically
        stopped -> running on start
        running -> stopped on stop
        stopped -> finish  on destroy
        """
    )
    assert machine.automatic_targets(InstanceState.PENDING) == [InstanceState.STOPPED]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("start -> pendng on create", "'pendng' is not a valid InstanceState"),
        ("start -> pending on launch", "'launch' is not a valid InstanceAction"),
        ("start -> pending when create", "expected 'STATE -> STATE on ACTION'"),
        ("pending -> running automatically", "needs 'start -> <state> on create'"),
        ("start -> pending on create\nrunning -> start on stop", "nothing may lead back"),
        ("start -> finish on create\nfinish -> running on start", "'finish' is final"),
        ("start -> pending on create\npending -> running on create", "'create' is the action"),
        (
            "start -> running on create\nrunning -> stopped on stop\nrunning -> finish on stop",
            "declared twice",
        ),
        (
            "start -> running on create\nstopped -> running on start",
            "not reachable from 'start': stopped",
        ),
        ("", "at least one transition"),
    ],
)
def test_machine_refuses_bad_definitions(text: str, complaint: str) -> None:
    with pytest.raises(DriverDefinitionError, match=complaint):
        StateMachine(text)


# ---- hardware profiles -----------------------------------------------------------------

LARGE = HardwareProfile(
    "m1-large",
    cpu=range_of(1, 6),
    memory=range_of(7680, 15360, default=10240),
    storage=enum_of(850, 1024),
    architecture=fixed("x86_64"),
)


def test_profile_accepts_overrides_inside_range_and_enum() -> None:
    chosen = LARGE.resolve(HardwareOverrides(cpu=4, memory=12288, storage=1024))
    assert (chosen.cpu, chosen.memory, chosen.storage) == (4, 12288, 1024)


def test_profile_records_only_overrides_that_differ_from_defaults() -> None:
    chosen = LARGE.resolve(HardwareOverrides(cpu=1, memory=10240, architecture="x86_64"))
    assert not chosen


@pytest.mark.parametrize(
    ("overrides", "prop", "value", "allowed"),
    [
        (HardwareOverrides(cpu=7), "cpu", "7", "1..6"),
        (HardwareOverrides(memory=100), "memory", "100", "7680..15360"),
        # The wire's double: 100 as the client wrote it, not 100.0.
        (HardwareOverrides(memory=100.0), "memory", "100", "7680..15360"),
        (HardwareOverrides(storage=900), "storage", "900", "one of 850, 1024"),
        (HardwareOverrides(architecture="i386"), "architecture", "i386", "only x86_64"),
    ],
)
def test_profile_override_error_names_property_value_and_what_is_allowed(
    overrides: HardwareOverrides, prop: str, value: str, allowed: str
) -> None:
    with pytest.raises(PropertyValidationError) as caught:
        LARGE.resolve(overrides)
    assert caught.value.metadata == {
        "hardware_profile_id": "m1-large",
        "property": prop,
        "value": value,
        "allowed": allowed,
    }
    assert prop in str(caught.value) and allowed in str(caught.value)
    assert f"{prop}={value!r}" in str(caught.value) or f"{prop}={value} " in str(caught.value)


def test_opaque_profile_refuses_any_override() -> None:
    with pytest.raises(PropertyValidationError, match="does not describe it"):
        HardwareProfile("opaque").resolve(HardwareOverrides(cpu=2))


@pytest.mark.parametrize(
    "build",
    [
        lambda: range_of(5, 1),
        lambda: range_of(1, 5, default=9),
        lambda: enum_of(),
        lambda: enum_of(1, 2, default=3),
    ],
)
def test_malformed_properties_are_refused(build: object) -> None:
    with pytest.raises(DriverDefinitionError):
        build()  # type: ignore[operator]


# ---- filter_on -------------------------------------------------------------------------


@dataclass
class Thing:
    id: str
    state: str
    realm_id: str


THINGS = [Thing("a", "RUNNING", "us"), Thing("b", "STOPPED", "us"), Thing("c", "RUNNING", "eu")]


def test_filter_on_keeps_items_equal_to_every_given_filter() -> None:
    kept = filter_on(THINGS, {"state": "RUNNING", "realm_id": "us"}, "state", "realm_id")
    assert [t.id for t in kept] == ["a"]


def test_filter_on_ignores_empty_filters_and_attributes_not_named() -> None:
    kept = filter_on(THINGS, {"state": "", "realm_id": "eu"}, "state")
    assert [t.id for t in kept] == ["a", "b", "c"]


def test_filter_on_matches_any_member_of_a_list() -> None:
    kept = filter_on(THINGS, {"id": ["a", "c"]}, "id")
    assert [t.id for t in kept] == ["a", "c"]


# ---- driver classes --------------------------------------------------------------------


class Minimal(BaseDriver, abstract=True):
    name = "minimal"

    def list_realms(self, ctx: CallContext, filters: object) -> list[m.Realm]:
        return [m.Realm("r1")]


def test_driver_without_name_is_refused() -> None:
    with pytest.raises(DriverDefinitionError, match="no driver name"):

        class Nameless(BaseDriver):
            collections = frozenset({"realms"})


def test_declared_collection_without_its_method_names_driver_and_fix() -> None:
    with pytest.raises(DriverDefinitionError) as caught:

        class Foo(BaseDriver):
            name = "foo"
            collections = frozenset({"keys"})

    message = str(caught.value)
    assert "driver 'foo'" in message
    assert "does not implement list_keys()" in message
    assert "Fix: define list_keys() or remove 'keys' from collections" in message


def test_unknown_collection_is_refused() -> None:
    with pytest.raises(DriverDefinitionError, match="unknown collections \\['clusters'\\]"):

        class Foo(Minimal):
            collections = frozenset({"realms", "clusters"})


def test_instances_without_state_machine_are_refused() -> None:
    with pytest.raises(DriverDefinitionError, match="no instance state machine"):

        class Foo(Minimal):
            collections = frozenset({"instances"})

            def list_instances(self, ctx: CallContext, filters: object) -> list[m.Instance]:
                return []

            def create_instance(self, ctx: CallContext, opts: object) -> list[m.Instance]:
                return []


def test_state_machine_action_without_method_is_refused() -> None:
    with pytest.raises(DriverDefinitionError, match="'reboot' action but reboot_instance"):

        class Foo(Minimal):
            collections = frozenset({"instances"})
            instance_states = StateMachine(
                "start -> running on create\nrunning -> running on reboot"
            )

            def list_instances(self, ctx: CallContext, filters: object) -> list[m.Instance]:
                return []

            def create_instance(self, ctx: CallContext, opts: object) -> list[m.Instance]:
                return []


def test_unknown_feature_is_refused_with_the_known_ones() -> None:
    with pytest.raises(DriverDefinitionError, match=r"unknown feature 'teleport'.*bucket_location"):

        class Foo(Minimal):
            collections = frozenset({"realms", "buckets"})
            features = {"buckets": [Feature("teleport")]}

            def list_buckets(self, ctx: CallContext, filters: object) -> list[m.Bucket]:
                return []

            def list_blobs(self, ctx: CallContext, b: str, f: object) -> list[m.Blob]:
                return []

            def get_blob(self, ctx: CallContext, b: str, i: str) -> m.Blob:
                raise NotImplementedError

            def get_blob_content(self, ctx: CallContext, b: str, i: str) -> object:
                return iter(())


def test_feature_without_its_create_method_is_refused() -> None:
    with pytest.raises(DriverDefinitionError, match="'import_key' feature but does not implement"):

        class Foo(Minimal):
            collections = frozenset({"realms", "keys"})
            features = {"keys": [Feature("import_key")]}

            def list_keys(self, ctx: CallContext, filters: object) -> list[m.Key]:
                return []


def test_supports_reflects_implemented_operations() -> None:
    class Foo(Minimal):
        collections = frozenset({"realms", "keys"})

        def list_keys(self, ctx: CallContext, filters: object) -> list[m.Key]:
            return []

    assert Foo.supports("keys", "list")
    assert not Foo.supports("keys", "create")
    assert not Foo.supports("instances", "list")
    assert Foo.operations("keys") == ["list"]


def test_an_action_its_machine_never_allows_is_not_offered_though_implemented() -> None:
    """A driver narrowing an inherited machine keeps the action methods: it was offered
    (GetCapabilities listed RebootInstance) and answered FAILED_PRECONDITION "not allowed
    (allowed: destroy)" where the guide promises UNIMPLEMENTED."""
    from deltacloud.drivers.mock.driver import MockDriver

    class Narrow(MockDriver):
        name = "narrow"
        instance_states = StateMachine(
            """
            start -> running on create
            running -> finish on destroy
            """
        )

    assert MockDriver.operations("instances") == [
        "list", "create", "start", "stop", "reboot", "destroy"
    ]  # fmt: skip
    assert Narrow.operations("instances") == ["list", "create", "destroy"]
    assert not Narrow.supports("instances", "reboot")


# ---- create options --------------------------------------------------------------------


class WithFeatures(Minimal):
    collections = frozenset({"realms", "keys"})
    features = {"keys": [Feature("import_key", {"max_length": "10"})]}

    def list_keys(self, ctx: CallContext, filters: object) -> list[m.Key]:
        return []

    def create_key(self, ctx: CallContext, opts: m.CreateKey) -> m.Key:
        return m.Key(opts.name)


def test_option_needing_a_missing_feature_is_refused_not_ignored() -> None:
    with pytest.raises(FeatureNotSupportedError) as caught:
        check_create_options(Minimal, "keys", {"public_key": "ssh-rsa AAAA"})
    assert caught.value.metadata["feature"] == "import_key"
    assert caught.value.metadata["option"] == "public_key"


def test_feature_constraint_is_enforced() -> None:
    check_create_options(WithFeatures, "keys", {"public_key": "short"})
    with pytest.raises(ValidationError, match="at most 10"):
        check_create_options(WithFeatures, "keys", {"public_key": "much too long a key"})


# ---- registry --------------------------------------------------------------------------


def test_registry_finds_builtin_mock_through_entry_points() -> None:
    registry = DriverRegistry()
    assert "mock" in registry.names()
    assert registry.load("mock").name == "mock"


def test_registry_names_known_drivers_for_an_unknown_one() -> None:
    with pytest.raises(UnknownDriverError) as caught:
        DriverRegistry().load("nimbus")
    assert "mock" in caught.value.known
    assert "known drivers:" in str(caught.value)


def test_credentials_repr_hides_secrets() -> None:
    from deltacloud.drivers import Credentials

    creds = Credentials("AKIAEXAMPLE", "wJalrXUtnFEMI")
    assert "wJalrXUtnFEMI" not in repr(creds)
    assert "AKIAEXAMPLE" not in repr(creds)
    assert "wJalrXUtnFEMI" not in str(CallContext(creds, "default"))


def test_native_paging_without_list_page_is_refused() -> None:
    with pytest.raises(DriverDefinitionError, match="pages 'realms' natively but does not"):

        class Foo(Minimal):
            collections = frozenset({"realms"})
            pages_natively = frozenset({"realms"})


def test_native_paging_of_an_undeclared_collection_is_refused() -> None:
    with pytest.raises(DriverDefinitionError, match="pages 'images' natively but does not declare"):

        class Foo(Minimal):
            collections = frozenset({"realms"})
            pages_natively = frozenset({"images"})


# ---- found by writing a driver from the guide -------------------------------------------


def test_features_that_are_not_a_sequence_are_refused_with_the_fix() -> None:
    # It was a bare "TypeError: 'Feature' object is not iterable", naming nothing.
    with pytest.raises(DriverDefinitionError, match=r"features\['keys'\] is not a sequence"):

        class Foo(WithFeatures):
            name = "foo-features"
            features = {"keys": Feature("import_key")}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("constraints", "complaint"),
    [({"max_length": 16}, "constraints are strings"), ({"max_length": "x"}, "not a whole number")],
)
def test_constraints_that_capabilities_could_not_carry_are_refused(
    constraints: dict[str, object], complaint: str
) -> None:
    # An int was accepted, enforced, and made every GetCapabilities INTERNAL.
    with pytest.raises(DriverDefinitionError, match=complaint):

        class Foo(WithFeatures):
            name = "foo-constraints"
            features = {"keys": [Feature("import_key", constraints)]}  # type: ignore[dict-item]


def _ctx() -> CallContext:
    return CallContext(credentials=Credentials("u", "p"), provider="default")


def test_a_get_left_to_the_sdk_is_nonblocking_exactly_when_its_list_is(tmp_path: Path) -> None:
    """A driver marking its lists @nonblocking had its gets (BaseDriver's, which call the
    lists) sent to the worker pool all the same, unless it overrode each one to mark it."""
    from deltacloud.drivers.base import is_nonblocking, nonblocking

    class Fast(Minimal):
        collections = frozenset({"realms", "keys"})

        @nonblocking
        def list_keys(self, ctx: CallContext, filters: object) -> list[m.Key]:
            return [m.Key("k1")]

    class Slow(Fast):  # its list blocks again: so does its get
        def list_keys(self, ctx: CallContext, filters: object) -> list[m.Key]:
            return [m.Key("k2")]

    class Own(Fast):  # its own get: as it says
        def get_key(self, ctx: CallContext, key_id: str) -> m.Key:
            return m.Key(key_id)

    assert is_nonblocking(Fast.get_key) and is_nonblocking(Fast.get_hardware_profile)
    assert not is_nonblocking(Fast.get_realm)  # Minimal's list_realms is not marked
    assert not is_nonblocking(Slow.get_key) and not is_nonblocking(Own.get_key)
    assert not is_nonblocking(BaseDriver.get_key)
    config = DriverConfig(data_dir=tmp_path)
    assert Fast("default", config).get_key(_ctx(), "k1").id == "k1"
    assert Slow("default", config).get_key(_ctx(), "k2").id == "k2"
    with pytest.raises(NotFoundError):
        Fast("default", config).get_key(_ctx(), "k2")


def test_the_generic_getters_find_nothing_for_an_empty_id(tmp_path: Path) -> None:
    # filter_on reads an empty value as "no filter": get_realm("") gave the first realm.
    driver = Realms("default", DriverConfig(data_dir=tmp_path))
    assert driver.get_realm(_ctx(), "r1").id == "r1"
    with pytest.raises(NotFoundError):
        driver.get_realm(_ctx(), "")


class Realms(Minimal):
    name = "realms-only"
    collections = frozenset({"realms"})


def test_a_driver_without_images_defaults_to_its_first_profile(tmp_path: Path) -> None:
    # It asked get_image, which a driver without images lacks: no create without a profile.
    class NoImages(Minimal):
        name = "no-images"
        collections = frozenset({"realms", "hardware_profiles"})
        hardware_profiles = (HardwareProfile("tiny"), HardwareProfile("huge"))

    driver = NoImages("default", DriverConfig(data_dir=tmp_path))
    assert driver.default_hardware_profile_id(_ctx(), "any") == "tiny"


def test_declared_option_names_refuse_any_other_option(tmp_path: Path) -> None:
    class Optioned(Minimal):
        name = "optioned"
        collections = frozenset({"realms"})
        option_names = frozenset({"colour", "endpoint.*"})

    fine = {"colour": "red", "endpoint.eu": "http://127.0.0.1:1"}
    Optioned("default", DriverConfig(data_dir=tmp_path, options=fine))
    with pytest.raises(ValueError, match=r"unknown driver option optioned\.color; optioned reads"):
        Optioned("default", DriverConfig(data_dir=tmp_path, options={"color": "red"}))
    Realms("default", DriverConfig(data_dir=tmp_path, options={"anything": "goes"}))


def test_the_kit_walks_an_instance_to_its_end_by_destroy_before_an_action_that_ends_it() -> None:
    """The guide's OpenStack-like machine: stop -> stopping -> finish on its own. The kit
    tried stop before destroy, the instance was gone, and a correct driver failed."""
    from deltacloud.drivers.conformance.suite import DriverConformance

    openstack_like = StateMachine(
        """
        start    -> pending  on create
        pending  -> running  automatically
        running  -> running  on reboot
        running  -> stopping on stop
        running  -> finish   on destroy
        stopping -> finish   automatically
        """
    )
    walk = DriverConformance._next_action
    running = InstanceState.RUNNING
    assert walk(None, openstack_like, running, set()) == InstanceAction.REBOOT  # type: ignore[arg-type]
    assert walk(None, openstack_like, running, {InstanceAction.REBOOT}) == InstanceAction.DESTROY  # type: ignore[arg-type]


def test_an_instance_state_given_as_the_clouds_word_is_taken_or_refused_where_made() -> None:
    # "RUNNING" failed every list holding the instance, in the server, as INTERNAL.
    assert m.Instance(id="i", state="RUNNING").state is InstanceState.RUNNING  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Instance 'i': state 'ACTIVE' is not an InstanceState"):
        m.Instance(id="i", state="ACTIVE")  # type: ignore[arg-type]
