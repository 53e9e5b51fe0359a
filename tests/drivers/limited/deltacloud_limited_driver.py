"""LimitedDriver: a driver package outside the project, registered through the
``deltacloud.drivers`` entry-point group exactly as a third-party cloud would be.

It serves only the realms and instances collections, and its state machine has no reboot,
so the server must refuse every other collection and the reboot operation. Its one realm and
two instances are static: an action answers the instance in its new state, keeping nothing;
a create answers a new instance each time (``lim-new-1``, ``lim-new-2``, ... per server).
``lim-fixed`` cannot be stopped (``unavailable_actions``), as an EC2 instance-store instance.
The options ``limited.stop_seconds``, ``limited.create_seconds`` and ``limited.list_seconds``
make stop_instance, create_instance and list_instances take that long (a slow cloud).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import ClassVar

from deltacloud.drivers import (
    BaseDriver,
    CallContext,
    DriverConfig,
    Filters,
    InstanceAction,
    InstanceState,
    NotFoundError,
    StateMachine,
)
from deltacloud.drivers import models as m


class LimitedDriver(BaseDriver):
    name: ClassVar[str] = "limited"
    description: ClassVar[str] = "A test driver serving realms and instances only (no reboot)"
    collections: ClassVar[frozenset[str]] = frozenset({"realms", "instances"})
    instance_states: ClassVar[StateMachine | None] = StateMachine(
        """
        start    -> pending   on create
        pending  -> running   automatically
        running  -> stopping  on stop
        stopping -> stopped   automatically
        stopped  -> running   on start
        stopped  -> finish    on destroy
        """
    )

    def __init__(self, provider: str, config: DriverConfig) -> None:
        super().__init__(provider, config)
        self._lock = threading.Lock()
        self._created = 0

    def list_realms(self, ctx: CallContext, filters: Filters) -> list[m.Realm]:
        return [m.Realm(id="lab", name="Laboratory", state="AVAILABLE")]

    def _instance(self, instance_id: str = "lim1") -> m.Instance:
        if instance_id == "lim-fixed":
            # Like an EC2 instance-store instance: running, but it cannot be stopped.
            return m.Instance(
                id="lim-fixed",
                name="cannot stop",
                state=InstanceState.RUNNING,
                realm_id="lab",
                unavailable_actions=frozenset({InstanceAction.STOP}),
            )
        if instance_id != "lim1":
            raise NotFoundError("instance", instance_id)
        return m.Instance(id="lim1", name="limited", state=InstanceState.RUNNING, realm_id="lab")

    def list_instances(self, ctx: CallContext, filters: Filters) -> list[m.Instance]:
        time.sleep(float(self.config.options.get("list_seconds", "0")))
        return [self._instance(), self._instance("lim-fixed")]

    def get_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._instance(instance_id)

    def create_instance(self, ctx: CallContext, opts: m.CreateInstance) -> list[m.Instance]:
        time.sleep(float(self.config.options.get("create_seconds", "0")))
        with self._lock:
            self._created += 1
            new_id = f"lim-new-{self._created}"
        return [dataclasses.replace(self._instance(), id=new_id, state=InstanceState.PENDING)]

    def _moved(self, instance_id: str, state: InstanceState) -> m.Instance:
        return dataclasses.replace(self._instance(instance_id), state=state)

    def stop_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        if instance_id == "lim-fixed":  # the server must have refused before calling this
            raise AssertionError("stop_instance called for an instance that cannot stop")
        time.sleep(float(self.config.options.get("stop_seconds", "0")))
        return self._moved(instance_id, InstanceState.STOPPING)

    def start_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._moved(instance_id, InstanceState.RUNNING)

    def destroy_instance(self, ctx: CallContext, instance_id: str) -> m.Instance:
        return self._moved(instance_id, InstanceState.FINISH)
