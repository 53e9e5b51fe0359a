"""The one place where botocore/boto3 exceptions become SDK errors. Every backend call of
the driver runs inside :func:`translated` (or a generator wrapped by
:func:`translated_iter`), so no botocore exception escapes to the server."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from botocore import exceptions as bx  # type: ignore[import-untyped]

from deltacloud.drivers import (
    AlreadyExistsError,
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConflictError,
    DriverError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ValidationError,
)

AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)
PERMISSION_CODES = frozenset({"AccessDenied", "UnauthorizedOperation", "AccessDeniedException"})
NOT_FOUND_CODES = frozenset(
    {"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "NotFound", "404", "LoadBalancerNotFound"}
)
CONFLICT_CODES = frozenset(
    {
        "IncorrectInstanceState",
        "IncorrectState",
        "IncorrectStateException",
        "InvalidState",
        "VolumeInUse",
        "DependencyViolation",
        "InvalidGroup.InUse",
        "InvalidIPAddress.InUse",
        "Resource.AlreadyAssociated",
        "InvalidInstanceState",
        "BucketNotEmpty",
        "OperationAborted",
        "InvalidAttachment.NotFound",
        "InvalidVolume.ZoneMismatch",
        "InvalidConfigurationRequest",
        "UnsupportedOperation",  # e.g. stopping an instance-store instance
        "CannotDelete",  # e.g. a VPC's default security group
    }
)
DUPLICATE_CODES = frozenset(
    {
        "BucketAlreadyExists",
        "BucketAlreadyOwnedByYou",
        "DuplicateLoadBalancerName",
        "DuplicateAccessPointName",
    }
)
#: "Too many requests" (EC2, S3, ELB and the common ones).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "SlowDown",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
    }
)
#: Throttling, or the cloud failing for now: worth a retry later.
TRANSIENT_CODES = THROTTLING_CODES | {
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "503",
}
VALIDATION_CODES = frozenset(
    {
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidParameter",
        "MissingParameter",
        "ValidationError",
        "InvalidBucketName",
        "InvalidArgument",
        "InvalidRequest",
        "EntityTooSmall",
        "EntityTooLarge",
        "InvalidBlockDeviceMapping",
        "InvalidKey.Format",
        "InvalidKeyPair.Format",
        "InvalidPermission.Malformed",
        "InvalidInput",
        "InvalidLocationConstraint",
        "IllegalLocationConstraintException",
        "KeyTooLongError",
        "MetadataTooLarge",
        "DuplicateListener",
        "UnsupportedProtocol",
    }
)


#: The parameter a botocore ParamValidationError report is about.
_PARAMETER = re.compile(
    r"(?:parameter|Missing required parameter in input:) \"?([A-Za-z0-9_.\[\]]{1,64})"
)

#: An id an EC2 error message quotes: "The security group 'sg-1' does not exist".
_QUOTED = re.compile(r"'([^'\s]{1,255})'")


def translate(error: BaseException, resource_type: str = "", resource_id: str = "") -> DriverError:
    """The SDK error for a botocore/boto3 exception (``resource_*`` name what was asked
    for, for NOT_FOUND and ALREADY_EXISTS)."""
    if isinstance(error, DriverError):
        return error
    if isinstance(error, bx.ClientError):
        return _client_error(error, resource_type, resource_id)
    if isinstance(error, bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return BackendUnavailableError(
            "the cloud's endpoint did not answer in time",
            metadata={"backend_code": type(error).__name__},
        )
    if isinstance(error, bx.HTTPClientError) and isinstance(
        getattr(error, "kwargs", {}).get("error"), ValueError
    ):
        # Refused before it was sent: http.client found a value a header cannot carry
        # (a line break in a metadata value or content type). No retry would help.
        return ValidationError(
            "the request holds a value an HTTP header cannot carry (a line break or other "
            "control character in metadata or a content type)",
            reason="INVALID_HEADER_VALUE",
            metadata={"backend_code": "HTTPClientError"},
        )
    if isinstance(error, bx.EndpointConnectionError | bx.ConnectionError | bx.HTTPClientError):
        return BackendUnavailableError(
            "the cloud's endpoint cannot be reached",
            metadata={"backend_code": type(error).__name__},
        )
    if isinstance(error, bx.NoCredentialsError | bx.PartialCredentialsError):
        return AuthenticationError("AWS credentials are required")
    if isinstance(error, bx.ParamValidationError):
        # botocore's text quotes its own parameter names, regular expressions and the whole
        # value: name the parameter only. The driver checks what a client can get wrong
        # before botocore sees it; this is the last resort.
        named = _PARAMETER.search(str(getattr(error, "kwargs", {}).get("report", "")))
        which = f" ({named.group(1)})" if named else ""
        return ValidationError(
            f"the cloud's client refused a parameter of the request{which}",
            metadata={"backend_code": "ParamValidationError"},
        )
    if isinstance(error, bx.BotoCoreError):
        return BackendError(
            f"the cloud client failed: {type(error).__name__}",
            metadata={"backend_code": type(error).__name__},
        )
    return BackendError(
        f"unexpected failure talking to the cloud: {type(error).__name__}",
        metadata={"backend_code": type(error).__name__},
    )


def http_status(error: Any) -> int | None:
    """The HTTP status of a botocore ClientError's answer (None if it has none)."""
    response = getattr(error, "response", {}) or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return int(status) if status else None


def _client_error(error: Any, resource_type: str, resource_id: str) -> DriverError:
    response = getattr(error, "response", {}) or {}
    info = response.get("Error", {}) or {}
    code = str(info.get("Code") or "")
    message = str(info.get("Message") or code or "the cloud refused the request")
    status = http_status(error)
    meta: dict[str, object] = {"backend_code": code}
    if status:
        meta["backend_status"] = status
    if code in AUTH_CODES:
        # The backend's message may echo the key id; keep only the code.
        return AuthenticationError(
            f"the cloud refused the credentials ({code})", metadata={"backend_code": code}
        )
    if code in PERMISSION_CODES or (status == 403 and code in ("403", "Forbidden")):
        return PermissionDeniedError(f"the cloud denied the request ({code})", metadata=meta)
    if code in CONFLICT_CODES or code.endswith(".InUse"):
        return ConflictError(message, reason=_reason(code), metadata=meta)
    if (
        code.endswith(".NotFound")
        or code in NOT_FOUND_CODES
        or (code.startswith("Invalid") and code.lower().endswith("id.malformed"))
        or (status == 404 and not code)
    ):
        kind, which = _named(code, message, resource_type, resource_id)
        return NotFoundError(kind, which, backend_code=code)
    if code == "IdempotentParameterMismatch":
        # The cloud saw this ClientToken (our request id) with other parameters.
        return ValidationError(message, reason="REQUEST_ID_REUSED", metadata=meta)
    if code.endswith(".Duplicate") or code in DUPLICATE_CODES:
        kind, which = _named(code, message, resource_type, resource_id)
        return AlreadyExistsError(kind, which, **meta)
    if code in TRANSIENT_CODES or status in (429, 503):
        return BackendUnavailableError(
            f"the cloud is throttling or unavailable ({code}); retried, still failing",
            metadata=meta,
        )
    if code.endswith("LimitExceeded") or code.startswith("TooMany") or code == "QuotaExceeded":
        return ResourceExhaustedError(message, metadata=meta)
    if code in VALIDATION_CODES or code.endswith(".Malformed") or code.startswith("Invalid"):
        return ValidationError(message, reason="BACKEND_REFUSED_PARAMETERS", metadata=meta)
    return BackendError(message, metadata=meta)


def _reason(code: str) -> str:
    specific = {
        "IncorrectInstanceState": "INCORRECT_INSTANCE_STATE",
        "VolumeInUse": "VOLUME_IN_USE",
        "DependencyViolation": "IN_USE",
        "InvalidGroup.InUse": "IN_USE",
        "InvalidIPAddress.InUse": "ADDRESS_IN_USE",
        "Resource.AlreadyAssociated": "ADDRESS_IN_USE",
        "BucketNotEmpty": "BUCKET_NOT_EMPTY",
        "UnsupportedOperation": "UNSUPPORTED_FOR_THIS_INSTANCE",
    }
    if code not in specific and code.endswith(".InUse"):
        return "IN_USE"
    return specific.get(code, "FAILED_PRECONDITION")


def _named(code: str, message: str, resource_type: str, resource_id: str) -> tuple[str, str]:
    """What a NOT_FOUND or ALREADY_EXISTS is about. The backend's code names a kind, and
    its message may quote an id of that kind ("The security group 'sg-1' does not exist"):
    that one, which need not be what the call asked for (an unknown source group of a rule,
    a security group given to RunInstances). Otherwise what the call asked for, when the
    code names that kind; another kind without an id when it does not (a rule already in a
    group, a bucket missing under a blob)."""
    named = _kind(code)
    if named == "resource":
        return resource_type or named, resource_id or "?"
    prefix = _ID_PREFIXES.get(named)
    quoted = _QUOTED.search(message) if prefix else None
    if quoted and quoted.group(1).startswith(prefix or "-"):
        return named, quoted.group(1)
    if resource_type in ("", named):
        return named, resource_id or "?"
    return named, "?"


#: How the ids of a kind begin, so that a quote in a message is taken for one only if it is.
_ID_PREFIXES = {
    "firewall": "sg-",
    "instance": "i-",
    "image": "ami-",
    "storage_volume": "vol-",
    "storage_snapshot": "snap-",
}


def _kind(code: str) -> str:
    kinds = {
        "NoSuchBucket": "bucket",
        "NoSuchKey": "blob",
        "LoadBalancerNotFound": "load_balancer",
        "InvalidInstanceID": "instance",
        "InvalidAMIID": "image",
        "InvalidKeyPair": "key",
        "InvalidVolume": "storage_volume",
        "InvalidSnapshot": "storage_snapshot",
        "InvalidGroup": "firewall",
        "InvalidAddress": "address",
        "InvalidAllocationID": "address",
        "InvalidPermission": "firewall_rule",
        "InvalidAMIName": "image",
        "InvalidZone": "realm",
    }
    return kinds.get(code.split(".")[0], "resource")


@contextlib.contextmanager
def translated(resource_type: str = "", resource_id: str = "") -> Iterator[None]:
    """Run a block of backend calls; re-raise anything but SDK errors as SDK errors."""
    try:
        yield
    except DriverError:
        raise
    except Exception as error:
        # botocore's own (ClientError, BotoCoreError, parsers.ResponseParserError...),
        # urllib3's and socket failures it did not wrap; our own bugs stay bugs.
        if isinstance(error, OSError) or _from_the_client_stack(error):
            raise translate(error, resource_type, resource_id) from None
        raise


def _from_the_client_stack(error: BaseException) -> bool:
    root = type(error).__module__.split(".")[0]
    return root in ("botocore", "boto3", "urllib3", "s3transfer")


def translated_iter(
    chunks: Iterator[bytes], resource_type: str = "", resource_id: str = ""
) -> Iterator[bytes]:
    """Wrap a streaming body so its failures are SDK errors too."""
    with translated(resource_type, resource_id):
        yield from chunks


__all__ = ["BackendTimeoutError", "http_status", "translate", "translated", "translated_iter"]
