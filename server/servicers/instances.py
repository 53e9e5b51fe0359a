"""InstanceService: create instances and move them through the driver's state machine.

The server decides whether an action is allowed, from the driver's declared machine and the
instance's current state, before the driver is called.
"""

from __future__ import annotations

from types import SimpleNamespace

from deltacloud.drivers import (
    ActionNotAllowedError,
    HardwareOverrides,
    InstanceAction,
    InstanceState,
    InternalDriverError,
    NotFoundError,
    StateMachine,
    ValidationError,
    check_create_options,
)
from deltacloud.drivers import models as m
from deltacloud.v1 import instance_pb2 as pb
from deltacloud.v1 import instance_pb2_grpc as pb_grpc

from .. import convert
from ..errors import invalid_argument
from ..events.subscription import Subscription
from ..gateway import Call
from ..rpc import Context, Servicer, check_text, require, unary

MAX_INSTANCE_COUNT = 100
#: The requests of the instance actions (each names the instance by ``id``).
_Action = (
    pb.StartInstanceRequest
    | pb.StopInstanceRequest
    | pb.RebootInstanceRequest
    | pb.DeleteInstanceRequest
)
#: The fields of CreateInstanceRequest refused with a control character (INVALID_TEXT).
_CHECKED_TEXT = (
    "name",
    "image_id",
    "realm_id",
    "hardware_profile_id",
    "key_name",
    "load_balancer_id",
)


def _machine(call: Call) -> StateMachine:
    machine = call.driver_class.instance_states
    assert machine is not None  # guaranteed for drivers declaring instances
    return machine


class InstanceServicer(Servicer, pb_grpc.InstanceServiceServicer):
    @unary
    async def ListInstances(
        self, request: pb.ListInstancesRequest, context: Context
    ) -> pb.ListInstancesResponse:
        call = await self.gateway.open(context, "instances")
        state = convert.requested_state(request.state)
        filters: dict[str, object] = {
            "id": request.id,
            "state": state.value if state else "",
            "realm_id": request.realm_id,
            "owner_id": request.owner_id,
        }
        machine = _machine(call)
        page = await self.listed(
            call,
            "instances",
            call.driver.list_instances,
            request,
            filters,
            lambda instance: convert.instance_kept(instance, machine),
        )
        return pb.ListInstancesResponse(
            instances=page.items,
            next_page_token=page.next_page_token,
        )

    @unary
    async def GetInstance(self, request: pb.GetInstanceRequest, context: Context) -> pb.Instance:
        require(request, "id")
        call = await self.gateway.open(context, "instances")
        instance = _one(
            call, "get_instance", request.id, await call.run(call.driver.get_instance, request.id)
        )
        return convert.instance_kept(instance, _machine(call))

    @unary
    async def CreateInstance(
        self, request: pb.CreateInstanceRequest, context: Context
    ) -> pb.CreateInstanceResponse:
        require(request, "image_id")
        # The ids too: an EC2 endpoint answered one holding a control character with a
        # reply that is not XML (UNAVAILABLE, which clients retry), the mock NOT_FOUND.
        check_text(request, names=_CHECKED_TEXT)
        for firewall_id in request.firewall_ids:
            _check_firewall_id(firewall_id)
        if not 0 <= request.instance_count <= MAX_INSTANCE_COUNT:
            raise invalid_argument(
                "INVALID_INSTANCE_COUNT",
                f"instance_count must be between 1 and {MAX_INSTANCE_COUNT} "
                f"(0 means 1); got {request.instance_count}",
                instance_count=request.instance_count,
            )
        call = await self.gateway.open(context, "instances", "create")
        count = max(1, request.instance_count)
        set_options: dict[str, object] = {
            "name": request.name,
            "key_name": request.key_name,
            "user_data": request.user_data,
            "firewall_ids": list(request.firewall_ids),
            "load_balancer_id": request.load_balancer_id,
        }
        if count > 1:
            set_options["instance_count"] = count
        check_create_options(
            call.driver_class, "instances", {k: v for k, v in set_options.items() if v}
        )

        async def create(call: Call) -> pb.CreateInstanceResponse:
            # Inside: a retry answered from the request log asks the driver nothing.
            profile_id, overrides = await self._hardware(call, request)
            opts = m.CreateInstance(
                image_id=request.image_id,
                realm_id=request.realm_id,
                hardware_profile_id=profile_id,
                hardware_profile_overrides=overrides,
                name=request.name,
                key_name=request.key_name,
                user_data=request.user_data,
                # Named twice is the same firewall (the mock listed it twice).
                firewall_ids=list(dict.fromkeys(request.firewall_ids)),
                instance_count=count,
                load_balancer_id=request.load_balancer_id,
            )
            async with self.events.acting(call, None):
                created = _made(call, await call.run(call.driver.create_instance, opts))
                await self.events.record_actions(
                    call, [(InstanceState.START, instance, "create") for instance in created]
                )
            machine = _machine(call)
            instances = [convert.instance(instance, machine) for instance in created]
            return pb.CreateInstanceResponse(instances=instances)

        # 0 and 1 instances, or a firewall named twice, ask for the same thing: a retry
        # spelling it the other way is the same request.
        same = pb.CreateInstanceRequest()
        same.CopyFrom(request)
        same.instance_count = 0 if count == 1 else count
        same.firewall_ids[:] = list(dict.fromkeys(request.firewall_ids))
        return await self.requests.once(call, request, pb.CreateInstanceResponse, create, same)

    async def _hardware(
        self, call: Call, request: pb.CreateInstanceRequest
    ) -> tuple[str, HardwareOverrides]:
        """The profile the instance gets (the client's, else the driver's default for the
        image) and the validated overrides. Drivers without hardware profiles take none."""
        overrides = convert.overrides_from_proto(request.hardware_profile_overrides)
        if "hardware_profiles" not in call.driver_class.collections:
            if request.hardware_profile_id or overrides:
                raise ValidationError(
                    f"driver {call.driver.name!r} has no hardware profiles",
                    reason="UNKNOWN_HARDWARE_PROFILE",
                    metadata={"hardware_profile_id": request.hardware_profile_id},
                )
            return "", HardwareOverrides()
        profile_id = request.hardware_profile_id or await call.run(
            call.driver.default_hardware_profile_id, request.image_id
        )
        try:
            profile = await call.run(call.driver.get_hardware_profile, profile_id)
        except NotFoundError:
            raise ValidationError(
                f"unknown hardware profile {profile_id!r}",
                reason="UNKNOWN_HARDWARE_PROFILE",
                metadata={"hardware_profile_id": profile_id},
            ) from None
        return profile.id, profile.resolve(overrides)

    async def _act(self, request: _Action, context: Context, action: InstanceAction) -> pb.Instance:
        require(request, "id")
        request_id = request.id
        call = await self.gateway.open(context, "instances", action.value)
        machine = _machine(call)
        method = {
            InstanceAction.START: call.driver.start_instance,
            InstanceAction.STOP: call.driver.stop_instance,
            InstanceAction.REBOOT: call.driver.reboot_instance,
            InstanceAction.DESTROY: call.driver.destroy_instance,
        }[action]
        # The state is read in the instance's turn: what the journal says the action
        # started from is what it did start from.
        async with self.events.acting(call, request_id):
            current = await call.run(call.driver.get_instance, request_id)
            current = _one(call, "get_instance", request_id, current)
            offered = current.offered_actions(machine)
            if action not in offered:
                raise ActionNotAllowedError(
                    request_id, action.value, current.state.value, [a.value for a in offered]
                )
            after = _one(call, method.__name__, request_id, await call.run(method, request_id))
            await self.events.record_actions(call, [(current.state, after, action.value)])
        return convert.instance(after, machine)

    @unary
    async def StartInstance(
        self, request: pb.StartInstanceRequest, context: Context
    ) -> pb.Instance:
        return await self._act(request, context, InstanceAction.START)

    @unary
    async def StopInstance(self, request: pb.StopInstanceRequest, context: Context) -> pb.Instance:
        return await self._act(request, context, InstanceAction.STOP)

    @unary
    async def RebootInstance(
        self, request: pb.RebootInstanceRequest, context: Context
    ) -> pb.Instance:
        return await self._act(request, context, InstanceAction.REBOOT)

    @unary
    async def DeleteInstance(
        self, request: pb.DeleteInstanceRequest, context: Context
    ) -> pb.Instance:
        return await self._act(request, context, InstanceAction.DESTROY)

    @unary
    async def ListInstanceStates(
        self, request: pb.ListInstanceStatesRequest, context: Context
    ) -> pb.InstanceStateMachine:
        call = await self.gateway.open(context, "instances", authenticate=False)
        return convert.state_machine(_machine(call))

    @unary
    async def WatchInstanceEvents(
        self, request: pb.WatchInstanceEventsRequest, context: Context
    ) -> None:
        call = await self.gateway.open(context, "instances")
        await call.authenticate()  # before any scope state exists for these credentials
        await call.echo_first(context)
        async with self.events.use(call) as scope:
            await Subscription(self.events, scope, call, request, context).run()


def _check_firewall_id(firewall_id: str) -> None:
    """An empty id, or one holding a control character, names no firewall of any driver:
    INVALID_ARGUMENT for all of them (the mock answered NOT_FOUND, ec2 INVALID_ARGUMENT)."""
    if not firewall_id:
        raise ValidationError("firewall_ids holds an empty id", metadata={"option": "firewall_ids"})
    check_text(SimpleNamespace(firewall_ids=firewall_id), names=["firewall_ids"])


def _one(call: Call, method: str, instance_id: str, answer: object) -> m.Instance:
    """What a driver method answered for one instance, if it is that instance: a driver
    that answers another (or nothing) is told so, not served as if it were right."""
    if not isinstance(answer, m.Instance) or answer.id != instance_id:
        shown = f"instance {answer.id!r}" if isinstance(answer, m.Instance) else repr(answer)
        raise InternalDriverError(
            f"{call.driver.name}.{method}({instance_id!r}) returned {shown[:80]}; it must "
            "return that Instance"
        )
    return answer


def _made(call: Call, answer: object) -> list[m.Instance]:
    if not isinstance(answer, list) or not all(isinstance(i, m.Instance) for i in answer):
        raise InternalDriverError(
            f"{call.driver.name}.create_instance returned {type(answer).__name__}; it must "
            "return a list of Instance (one per instance_count)"
        )
    return answer
