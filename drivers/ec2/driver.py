"""EC2Driver: Amazon EC2, S3 and classic ELB through boto3 (or any compatible endpoint:
moto, LocalStack, ...). The provider is the region; see :class:`.session.EC2Base` for the
options and credentials."""

from __future__ import annotations

from typing import Any

from deltacloud.drivers import CallContext, Feature, Filters, StateMachine

from .compute import Compute
from .elb import LoadBalancing
from .storage import Storage

#: EC2's machine (Deltacloud's ec2 driver), with one correction: StartInstances answers
#: "pending", so start leads to pending, which becomes running on its own.
EC2_MACHINE = StateMachine(
    """
    start    -> pending  on create
    pending  -> running  automatically
    running  -> running  on reboot
    running  -> stopping on stop
    stopping -> stopped  automatically
    stopped  -> pending  on start
    stopped  -> finish   on destroy
    """
)


class EC2Driver(Compute, Storage, LoadBalancing):
    name = "ec2"
    description = "Amazon EC2, S3 and ELB (or a compatible endpoint such as moto)"
    # DescribeImages and ListObjectsV2 page natively: a page of images never fetches the
    # whole catalogue, nor a page of blobs the whole bucket.
    pages_natively = frozenset({"images", "blobs"})
    collections = frozenset(
        {
            "realms",
            "hardware_profiles",
            "images",
            "instances",
            "keys",
            "storage_volumes",
            "storage_snapshots",
            "buckets",
            "addresses",
            "firewalls",
            "load_balancers",
        }
    )
    features = {
        "instances": (
            Feature("user_name", {"max_length": "256"}),
            Feature("user_data", {"max_length": "16384"}),
            Feature("authentication_key"),
            Feature("firewalls"),
            Feature("instance_count"),
            Feature("register_to_load_balancer"),
        ),
        "images": (Feature("image_name", {"max_length": "128"}), Feature("image_description")),
        "keys": (Feature("import_key"),),
        "storage_volumes": (
            Feature("volume_name", {"max_length": "256"}),
            Feature("volume_description", {"max_length": "256"}),
            Feature("volume_from_snapshot"),
        ),
        "buckets": (Feature("bucket_location"),),
    }
    instance_states = EC2_MACHINE
    option_names = frozenset(
        {
            "endpoint_url",
            "endpoint_url.*",
            "provider_endpoints",
            "image_owners",
            "instance_types",
            "default_instance_type",
            "default_arm_instance_type",
            "multipart_threshold",
            "multipart_part_size",
            "multipart_concurrency",
            "multipart_memory",
            "client_cache_size",
        }
    )

    def list_page(
        self, ctx: CallContext, collection: str, filters: Filters, page_size: int, cursor: str
    ) -> tuple[list[Any], str]:
        if collection == "images":
            return self.image_page(ctx, filters, page_size, cursor)
        if collection == "blobs":
            return self.blob_page(ctx, filters, page_size, cursor)
        raise self._unsupported(collection, "list_page")
