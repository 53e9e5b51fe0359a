"""PushyDriver: a test driver whose "cloud" pushes instance changes instead of being polled
(``pushes_instance_changes``), and moves new instances from pending to running on its own
after a short delay, on a timer thread, as a real cloud would.

Option ``pushy.listing_delay`` (seconds, default 0): each pushed list is handed over that
long after it was taken, as by a driver that hears of a change and then asks the cloud."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import ClassVar

from deltacloud.drivers import (
    BaseDriver,
    CallContext,
    Filters,
    InstanceState,
    NotFoundError,
    StateMachine,
)
from deltacloud.drivers import models as m

#: Seconds a new instance stays pending.
BOOT_DELAY = 0.3


class PushyDriver(BaseDriver):
    name: ClassVar[str] = "pushy"
    description: ClassVar[str] = "A test driver that pushes instance changes"
    collections: ClassVar[frozenset[str]] = frozenset({"realms", "instances"})
    instance_states: ClassVar[StateMachine | None] = StateMachine(
        """
        start   -> pending on create
        pending -> running automatically
        running -> finish  on destroy
        """
    )
    pushes_instance_changes: ClassVar[bool] = True
    option_names: ClassVar[frozenset[str] | None] = frozenset({"listing_delay"})

    # The fake cloud: one per server process.
    _changed: ClassVar[threading.Condition] = threading.Condition()
    _instances: ClassVar[dict[str, m.Instance]] = {}
    _version: ClassVar[int] = 0

    def list_realms(self, ctx: CallContext, filters: Filters) -> list[m.Realm]:
        return [m.Realm(id="cloud", name="The pushing cloud")]

    def list_instances(self, ctx: CallContext, filters: Filters) -> list[m.Instance]:
        with self._changed:
            return list(self._instances.values())

    def _set(self, instance: m.Instance | None, instance_id: str) -> None:
        with self._changed:
            if instance is None:
                type(self)._instances.pop(instance_id, None)
            else:
                type(self)._instances[instance_id] = instance
            type(self)._version += 1
            self._changed.notify_all()

    def _boot(self, instance_id: str) -> None:
        with self._changed:
            instance = self._instances.get(instance_id)
        if instance is not None and instance.state == InstanceState.PENDING:
            self._set(dataclasses.replace(instance, state=InstanceState.RUNNING), instance_id)

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        with self._changed:
            instance_id = f"push{len(self._instances) + self._version}"
        instance = m.Instance(id=instance_id, state=InstanceState.PENDING, image_id=opts.image_id)
        self._set(instance, instance_id)
        threading.Timer(BOOT_DELAY, self._boot, args=(instance_id,)).start()
        return [instance]

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        with self._changed:
            instance = self._instances.get(instance_id)
        if instance is None:
            raise NotFoundError("instance", instance_id)
        self._set(None, instance_id)
        return dataclasses.replace(instance, state=InstanceState.FINISH)

    def watch_instances(
        self, ctx: CallContext, stop: threading.Event
    ) -> Iterator[list[m.Instance]]:
        seen = -1
        while not stop.is_set():
            with self._changed:
                if self._version == seen:
                    self._changed.wait(0.5)
                if self._version == seen:
                    continue
                seen = self._version
                snapshot = list(self._instances.values())
            delay = float(self.config.options.get("listing_delay", 0))
            if delay:
                stop.wait(delay)
            yield snapshot
