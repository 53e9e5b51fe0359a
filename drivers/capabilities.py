"""What a driver can declare: its collections, each collection's operations (and the driver
methods behind them), and features with their constraints."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CollectionSpec:
    """A Deltacloud collection: the operation names and the driver method of each. The
    operations in ``required`` must be implemented by every driver declaring it."""

    name: str
    operations: dict[str, str]
    required: tuple[str, ...] = ("list",)
    filters: tuple[str, ...] = ("id",)


COLLECTIONS: dict[str, CollectionSpec] = {
    spec.name: spec
    for spec in [
        CollectionSpec("realms", {"list": "list_realms"}),
        CollectionSpec(
            "hardware_profiles", {"list": "list_hardware_profiles"}, filters=("id", "architecture")
        ),
        CollectionSpec(
            "images",
            {"list": "list_images", "create": "create_image", "destroy": "delete_image"},
            filters=("id", "architecture", "owner_id"),
        ),
        CollectionSpec(
            "instances",
            {
                "list": "list_instances",
                "create": "create_instance",
                "start": "start_instance",
                "stop": "stop_instance",
                "reboot": "reboot_instance",
                "destroy": "destroy_instance",
            },
            required=("list", "create"),
            filters=("id", "state", "realm_id", "owner_id"),
        ),
        CollectionSpec(
            "keys",
            {"list": "list_keys", "create": "create_key", "destroy": "delete_key"},
        ),
        CollectionSpec(
            "storage_volumes",
            {
                "list": "list_storage_volumes",
                "create": "create_storage_volume",
                "destroy": "delete_storage_volume",
                "attach": "attach_storage_volume",
                "detach": "detach_storage_volume",
            },
            filters=("id", "state", "realm_id"),
        ),
        CollectionSpec(
            "storage_snapshots",
            {
                "list": "list_storage_snapshots",
                "create": "create_storage_snapshot",
                "destroy": "delete_storage_snapshot",
            },
            filters=("id", "storage_volume_id"),
        ),
        CollectionSpec(
            "buckets",
            {
                "list": "list_buckets",
                "create": "create_bucket",
                "destroy": "delete_bucket",
                "list_blobs": "list_blobs",
                "get_blob": "get_blob",
                "put_blob": "put_blob",
                "download_blob": "get_blob_content",
                "delete_blob": "delete_blob",
                "update_blob_metadata": "update_blob_metadata",
            },
            required=("list", "list_blobs", "get_blob", "download_blob"),
        ),
        CollectionSpec(
            "addresses",
            {
                "list": "list_addresses",
                "create": "create_address",
                "destroy": "delete_address",
                "associate": "associate_address",
                "disassociate": "disassociate_address",
            },
        ),
        CollectionSpec(
            "firewalls",
            {
                "list": "list_firewalls",
                "create": "create_firewall",
                "destroy": "delete_firewall",
                "create_rule": "create_firewall_rule",
                "delete_rule": "delete_firewall_rule",
            },
        ),
        CollectionSpec(
            "load_balancers",
            {
                "list": "list_load_balancers",
                "create": "create_load_balancer",
                "destroy": "delete_load_balancer",
                "register": "register_instance",
                "unregister": "unregister_instance",
            },
        ),
    ]
}


@dataclass(frozen=True)
class Feature:
    """An optional capability of a collection that unlocks create options, with the cloud's
    constraints on it (e.g. ``Feature("user_name", {"max_length": "20"})``)."""

    name: str
    constraints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureSpec:
    """A known feature: its collection and the create options that need it."""

    collection: str
    name: str
    options: tuple[str, ...]


FEATURES: dict[tuple[str, str], FeatureSpec] = {
    (spec.collection, spec.name): spec
    for spec in [
        FeatureSpec("instances", "user_name", ("name",)),
        FeatureSpec("instances", "user_data", ("user_data",)),
        FeatureSpec("instances", "authentication_key", ("key_name",)),
        FeatureSpec("instances", "firewalls", ("firewall_ids",)),
        FeatureSpec("instances", "instance_count", ("instance_count",)),
        FeatureSpec("instances", "register_to_load_balancer", ("load_balancer_id",)),
        FeatureSpec("instances", "realm_filter", ()),
        FeatureSpec("images", "image_name", ("name",)),
        FeatureSpec("images", "image_description", ("description",)),
        FeatureSpec("keys", "import_key", ("public_key",)),
        FeatureSpec("storage_volumes", "volume_name", ("name",)),
        FeatureSpec("storage_volumes", "volume_description", ("description",)),
        FeatureSpec("storage_volumes", "volume_from_snapshot", ("snapshot_id",)),
        FeatureSpec("buckets", "bucket_location", ("location",)),
    ]
}


def feature_for_option(collection: str, option: str) -> str | None:
    """The feature a create option of ``collection`` needs, or None if it needs none."""
    for spec in FEATURES.values():
        if spec.collection == collection and option in spec.options:
            return spec.name
    return None


def check_create_options(driver: type, collection: str, options: dict[str, object]) -> None:
    """Refuse create options the driver cannot honour: an option whose feature the driver
    lacks is FeatureNotSupportedError (never silently ignored), and a value outside a
    feature's constraints (``max_length``, ``max_count``) is ValidationError.

    ``options`` holds only the options the caller actually set."""
    from .errors import FeatureNotSupportedError, ValidationError

    for option, value in options.items():
        name = feature_for_option(collection, option)
        if name is None:
            continue
        feature = next(
            (f for f in getattr(driver, "features", {}).get(collection, ()) if f.name == name),
            None,
        )
        if feature is None:
            raise FeatureNotSupportedError(getattr(driver, "name", "?"), collection, name, option)
        limit = feature.constraints.get("max_length")
        if limit is not None and isinstance(value, str | bytes) and len(value) > int(limit):
            raise ValidationError(
                f"{option} is {len(value)} long; the {name!r} feature allows at most {limit}",
                reason="CONSTRAINT_VIOLATED",
                metadata={"option": option, "feature": name, "max_length": limit},
            )
        limit = feature.constraints.get("max_count")
        if limit is not None and isinstance(value, int) and value > int(limit):
            raise ValidationError(
                f"{option}={value} exceeds the {name!r} feature's maximum of {limit}",
                reason="CONSTRAINT_VIOLATED",
                metadata={"option": option, "feature": name, "max_count": limit},
            )
