"""The SDK's exception hierarchy: what a driver raises; only the server maps it to gRPC.

Each class carries a stable UPPER_SNAKE ``reason`` and a ``metadata`` mapping naming the ids
involved. Messages are written for the API's users: they must never contain credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class DriverError(Exception):
    """Base of every error a driver may raise on purpose."""

    reason = "DRIVER_ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = {
            key: _text(value) for key, value in (metadata or {}).items() if value is not None
        }


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ",".join(str(v) for v in value)
    return str(value)


class ValidationError(DriverError):
    """A parameter is malformed, missing or out of the allowed values (HTTP 400)."""

    reason = "VALIDATION_FAILED"


class PropertyValidationError(ValidationError):
    """A hardware-profile override is not allowed by the profile."""

    reason = "INVALID_HARDWARE_PROFILE_OVERRIDE"

    def __init__(self, profile_id: str, prop: str, value: object, allowed: str) -> None:
        # A whole number as the client wrote it: 30, not the 30.0 the wire's double gives.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        super().__init__(
            f"hardware profile {profile_id!r}: {prop}={value!r} is not allowed; allowed: {allowed}",
            metadata={
                "hardware_profile_id": profile_id,
                "property": prop,
                "value": value,
                "allowed": allowed,
            },
        )


class AuthenticationError(DriverError):
    """Credentials are missing or wrong (HTTP 401). Never include them in the message."""

    reason = "AUTHENTICATION_FAILED"


class PermissionDeniedError(DriverError):
    """The caller is known but may not do this (HTTP 403)."""

    reason = "PERMISSION_DENIED"


class NotFoundError(DriverError):
    """The object does not exist, or is not visible to the caller (HTTP 404)."""

    reason = "RESOURCE_NOT_FOUND"

    def __init__(self, resource_type: str, resource_id: str, **metadata: object) -> None:
        super().__init__(
            f"{resource_type} {resource_id!r} not found",
            metadata={"resource_type": resource_type, "resource_id": resource_id, **metadata},
        )
        self.resource_type = resource_type
        self.resource_id = resource_id


class AlreadyExistsError(DriverError):
    """An object with this id or name exists already (HTTP 409)."""

    reason = "RESOURCE_ALREADY_EXISTS"

    def __init__(self, resource_type: str, resource_id: str, **metadata: object) -> None:
        super().__init__(
            f"{resource_type} {resource_id!r} already exists",
            metadata={"resource_type": resource_type, "resource_id": resource_id, **metadata},
        )


class ConflictError(DriverError):
    """The object is not in a state that allows the request: bucket not empty, address in
    use, volume attached... Give a specific ``reason`` (HTTP 403/409)."""

    reason = "FAILED_PRECONDITION"


class ActionNotAllowedError(ConflictError):
    """An instance action is not allowed in the instance's current state (HTTP 405)."""

    reason = "ACTION_NOT_ALLOWED"

    def __init__(self, instance_id: str, action: str, state: str, allowed: Iterable[str]) -> None:
        allowed_list = sorted(allowed)
        super().__init__(
            f"instance {instance_id!r} is {state}: action {action!r} is not allowed "
            f"(allowed: {', '.join(allowed_list) or 'none'})",
            metadata={
                "instance_id": instance_id,
                "action": action,
                "state": state,
                "allowed_actions": allowed_list,
            },
        )


class NotSupportedError(DriverError):
    """The driver does not offer this (HTTP 501)."""

    reason = "NOT_SUPPORTED"


class CollectionNotSupportedError(NotSupportedError):
    """The driver does not support a whole collection."""

    reason = "COLLECTION_NOT_SUPPORTED"

    def __init__(self, driver: str, collection: str) -> None:
        super().__init__(
            f"driver {driver!r} does not support the {collection} collection",
            metadata={"driver": driver, "collection": collection},
        )


class OperationNotSupportedError(NotSupportedError):
    """The driver supports the collection but not this operation on it."""

    reason = "OPERATION_NOT_SUPPORTED"

    def __init__(self, driver: str, collection: str, operation: str) -> None:
        super().__init__(
            f"driver {driver!r} does not support {operation} on {collection}",
            metadata={"driver": driver, "collection": collection, "operation": operation},
        )


class FeatureNotSupportedError(NotSupportedError):
    """A create option needs a feature the driver lacks; it is refused, never ignored."""

    reason = "FEATURE_NOT_SUPPORTED"

    def __init__(self, driver: str, collection: str, feature: str, option: str) -> None:
        super().__init__(
            f"driver {driver!r} does not support the {feature!r} feature of {collection} "
            f"(needed by option {option!r})",
            metadata={
                "driver": driver,
                "collection": collection,
                "feature": feature,
                "option": option,
            },
        )


class BackendError(DriverError):
    """The cloud answered with a failure (HTTP 502). Put the cloud's code in
    ``metadata['backend_code']``."""

    reason = "BACKEND_ERROR"


class BackendUnavailableError(BackendError):
    """The cloud cannot be reached, or is throttling us after retries."""

    reason = "BACKEND_UNAVAILABLE"


class BackendTimeoutError(BackendError):
    """The cloud did not answer in time (HTTP 504)."""

    reason = "BACKEND_TIMEOUT"


class ResourceExhaustedError(DriverError):
    """A quota or limit of the cloud is reached."""

    reason = "QUOTA_EXCEEDED"


class InternalDriverError(DriverError):
    """A bug or unexpected state in the driver (HTTP 500)."""

    reason = "INTERNAL"


class DriverDefinitionError(TypeError):
    """A driver class is declared wrongly; raised when the class is defined (import time)."""
