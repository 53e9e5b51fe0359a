"""Classic Elastic Load Balancing (boto3 'elb'): load balancers, listeners, and the
instances registered with them."""

from __future__ import annotations

from typing import Any

from deltacloud.drivers import (
    COLLECTIONS,
    CallContext,
    ConflictError,
    Filters,
    NotFoundError,
    ValidationError,
    filter_on,
)
from deltacloud.drivers import models as m

from . import names
from .errors import translated
from .session import EC2Base


class LoadBalancing(EC2Base, abstract=True):
    def elb(self, ctx: CallContext) -> Any:
        return self.client(ctx, "elb")

    @staticmethod
    def _balancer(d: dict[str, Any]) -> m.LoadBalancer:
        listeners = [
            m.Listener(
                # In capitals, as the contract and ELB name them (they were lowered).
                protocol=str(ld["Listener"]["Protocol"]).upper(),
                load_balancer_port=int(ld["Listener"]["LoadBalancerPort"]),
                instance_port=int(ld["Listener"]["InstancePort"]),
            )
            for ld in d.get("ListenerDescriptions", [])
        ]
        return m.LoadBalancer(
            id=d["LoadBalancerName"],
            name=d["LoadBalancerName"],
            realm_ids=list(d.get("AvailabilityZones", [])),
            listeners=listeners,
            # Once each: moto lists an instance once per registration.
            instance_ids=list(dict.fromkeys(i["InstanceId"] for i in d.get("Instances", []))),
            public_addresses=[d["DNSName"]] if d.get("DNSName") else [],
            create_time=d.get("CreatedTime"),
        )

    def list_load_balancers(self, ctx: CallContext, filters: Filters) -> list[m.LoadBalancer]:
        found: list[m.LoadBalancer] = []
        with translated("load_balancer"):
            for page in self.elb(ctx).get_paginator("describe_load_balancers").paginate():
                found += [self._balancer(d) for d in page.get("LoadBalancerDescriptions", [])]
        return filter_on(found, filters, *COLLECTIONS["load_balancers"].filters)

    def get_load_balancer(self, ctx: CallContext, lb_id: str) -> m.LoadBalancer:
        names.existing_load_balancer(lb_id)
        with translated("load_balancer", lb_id):
            found = self.elb(ctx).describe_load_balancers(LoadBalancerNames=[lb_id])
        descriptions = found.get("LoadBalancerDescriptions", [])
        if not descriptions:
            raise NotFoundError("load_balancer", lb_id)
        return self._balancer(descriptions[0])

    def create_load_balancer(self, ctx: CallContext, opts: m.CreateLoadBalancer) -> m.LoadBalancer:
        names.check_load_balancer_name(opts.name)
        if not opts.listeners:
            raise ValidationError("a load balancer needs at least one listener")
        realms = list(dict.fromkeys(opts.realm_ids))
        for realm in realms:  # ELB answers an unknown zone with a 500 (moto) or 400 (AWS)
            getattr(self, "_check_realm")(ctx, realm)  # noqa: B009
        if not realms:
            realms = [getattr(self, "list_realms")(ctx, {})[0].id]  # noqa: B009
        listeners = [
            {
                "Protocol": listener.protocol.upper(),
                "LoadBalancerPort": listener.load_balancer_port,
                "InstancePort": listener.instance_port,
            }
            for listener in opts.listeners
        ]
        with translated("load_balancer", opts.name):
            self.elb(ctx).create_load_balancer(
                LoadBalancerName=opts.name, Listeners=listeners, AvailabilityZones=realms
            )
        return self.get_load_balancer(ctx, opts.name)

    def delete_load_balancer(self, ctx: CallContext, lb_id: str) -> None:
        self.get_load_balancer(ctx, lb_id)  # DeleteLoadBalancer succeeds on unknown names
        with translated("load_balancer", lb_id):
            self.elb(ctx).delete_load_balancer(LoadBalancerName=lb_id)

    def register_instance(self, ctx: CallContext, lb_id: str, instance_id: str) -> m.LoadBalancer:
        balancer = self.get_load_balancer(ctx, lb_id)
        # ELB registers any id it is given (an instance long gone, a volume's id).
        instance = getattr(self, "get_instance")(ctx, instance_id)  # noqa: B009
        if instance.realm_id and instance.realm_id not in balancer.realm_ids:
            raise ConflictError(
                f"instance {instance_id!r} is in realm {instance.realm_id!r}, which load "
                f"balancer {lb_id!r} does not serve",
                reason="REALM_MISMATCH",
                metadata={
                    "load_balancer_id": lb_id,
                    "instance_id": instance_id,
                    "realm_id": instance.realm_id,
                    "realm_ids": balancer.realm_ids,
                },
            )
        if instance_id in balancer.instance_ids:
            return balancer  # registered already: nothing to change, as on the mock
        self._register_instances(ctx, lb_id, [instance_id])
        return self.get_load_balancer(ctx, lb_id)

    def _register_instances(self, ctx: CallContext, lb_id: str, instance_ids: list[str]) -> None:
        """Register instances known to exist (just made by CreateInstance: EC2 may not
        describe them yet) in one request."""
        with translated("instance", instance_ids[0] if len(instance_ids) == 1 else ""):
            self.elb(ctx).register_instances_with_load_balancer(
                LoadBalancerName=lb_id, Instances=[{"InstanceId": i} for i in instance_ids]
            )

    def unregister_instance(self, ctx: CallContext, lb_id: str, instance_id: str) -> m.LoadBalancer:
        balancer = self.get_load_balancer(ctx, lb_id)
        if instance_id not in balancer.instance_ids:
            raise NotFoundError("instance", instance_id, load_balancer_id=lb_id)
        with translated("instance", instance_id):
            self.elb(ctx).deregister_instances_from_load_balancer(
                LoadBalancerName=lb_id, Instances=[{"InstanceId": instance_id}]
            )
        return self.get_load_balancer(ctx, lb_id)
