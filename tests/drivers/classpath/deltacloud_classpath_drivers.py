"""Drivers that are not installed: the server serves them with ``--driver-class`` and the
conformance kit with ``driver_path``.

``OpenStacky`` is a correct in-memory cloud whose stop ends an instance (stop -> stopping ->
finish on its own, the guide's OpenStack-like machine) and which has no images: the kit must
pass it. ``Sloppy`` makes the mistakes a driver author makes: its get_instance answers the
first instance whatever the id, its destroy_instance answers nothing, its create_instance
answers one Instance instead of a list when asked for ``sloppy-one``, its accepts_provider
raises for a provider named ``explode...``; the server must say so, not serve them as
right.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from deltacloud.drivers import (
    BaseDriver,
    CallContext,
    DriverConfig,
    Feature,
    Filters,
    HardwareProfile,
    InstanceState,
    NotFoundError,
    StateMachine,
    filter_on,
    fixed,
)
from deltacloud.drivers import models as m

SETTLE = 0.2


class OpenStacky(BaseDriver):
    name: ClassVar[str] = "openstacky"
    description: ClassVar[str] = "In memory; stop ends an instance; no images"
    collections: ClassVar[frozenset[str]] = frozenset({"realms", "hardware_profiles", "instances"})
    hardware_profiles = (
        HardwareProfile("small", cpu=fixed(1)),
        HardwareProfile("large", cpu=fixed(4)),
    )
    instance_states: ClassVar[StateMachine | None] = StateMachine(
        """
        start    -> pending  on create
        pending  -> running  automatically
        running  -> running  on reboot
        running  -> stopping on stop
        running  -> finish   on destroy
        stopping -> finish   automatically
        """
    )

    def __init__(self, provider: str, config: DriverConfig) -> None:
        super().__init__(provider, config)
        self._lock = threading.Lock()
        #: id -> (state entered, when, profile)
        self._instances: dict[str, tuple[InstanceState, float, str]] = {}
        self._next = 1

    def list_realms(self, ctx: CallContext, filters: Filters) -> list[m.Realm]:
        return filter_on([m.Realm(id="zone", name="Zone", state="AVAILABLE")], filters, "id")

    def _model(self, instance_id: str) -> m.Instance | None:
        state, since, profile = self._instances[instance_id]
        settled = time.monotonic() - since >= SETTLE
        if state is InstanceState.PENDING and settled:
            state = InstanceState.RUNNING
        if state is InstanceState.STOPPING and settled:
            return None  # gone on its own
        return m.Instance(id=instance_id, state=state, realm_id="zone", hardware_profile_id=profile)

    def list_instances(self, ctx: CallContext, filters: Filters) -> list[m.Instance]:
        with self._lock:
            found = [self._model(i) for i in list(self._instances)]
        alive = [i for i in found if i is not None]
        return filter_on(alive, filters, "id", "state", "realm_id")

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        with self._lock:
            instance_id = f"os-{self._next}"
            self._next += 1
            profile = opts.hardware_profile_id
            self._instances[instance_id] = (InstanceState.PENDING, time.monotonic(), profile)
        return [
            m.Instance(id=instance_id, state=InstanceState.PENDING, hardware_profile_id=profile)
        ]

    def _move(self, instance_id: str, state: InstanceState) -> m.Instance:
        with self._lock:
            if instance_id not in self._instances or self._model(instance_id) is None:
                raise NotFoundError("instance", instance_id)
            profile = self._instances[instance_id][2]
            if state is InstanceState.FINISH:
                del self._instances[instance_id]
            else:
                self._instances[instance_id] = (state, time.monotonic(), profile)
        return m.Instance(id=instance_id, state=state, realm_id="zone", hardware_profile_id=profile)

    def reboot_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._move(instance_id, InstanceState.RUNNING)

    def stop_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._move(instance_id, InstanceState.STOPPING)

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._move(instance_id, InstanceState.FINISH)


class Sloppy(OpenStacky):
    name: ClassVar[str] = "sloppy"
    description: ClassVar[str] = "Answers the wrong things"
    features = {"instances": (Feature("user_name"),)}

    @classmethod
    def accepts_provider(cls, provider: str) -> bool:
        if provider.startswith("explode"):
            raise ValueError("a driver bug")
        return super().accepts_provider(provider)

    def get_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self.list_instances(ctx, {})[0]  # whatever the id

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        made = super().create_instance(ctx, opts)
        if opts.name == "sloppy-one":
            return made[0]  # type: ignore[return-value]
        return made

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        super().destroy_instance(ctx, instance_id)
        return None  # type: ignore[return-value]
