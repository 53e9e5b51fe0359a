"""The one place where failures become statuses (server/errors.py), on its own."""

from __future__ import annotations

import grpc

from deltacloud.drivers import BackendError, NotFoundError, ValidationError
from deltacloud.server.errors import to_api_error


def test_error_messages_never_carry_credential_shaped_text() -> None:
    error = BackendError(
        "SignatureDoesNotMatch for Credential=AKIAIOSFODNN7EXAMPLE/20261127/us-east-1",
        metadata={"backend_message": "key AKIAIOSFODNN7EXAMPLE, Basic bW9jazpzZWNyZXQ="},
    )
    mapped = to_api_error(error, {})
    assert "AKIAIOSFODNN7EXAMPLE" not in mapped.message
    assert "AKIAIOSFODNN7EXAMPLE" not in mapped.metadata["backend_message"]
    assert "bW9jazpzZWNyZXQ=" not in mapped.metadata["backend_message"]
    assert "<redacted>" in mapped.message


def test_sdk_errors_map_to_their_codes_with_the_scope_in_metadata() -> None:
    scope = {"driver": "mock", "provider": "default"}
    cases = [
        (ValidationError("bad"), grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED"),
        (NotFoundError("instance", "i-1"), grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND"),
        (BackendError("no"), grpc.StatusCode.UNAVAILABLE, "BACKEND_ERROR"),
    ]
    for error, code, reason in cases:
        mapped = to_api_error(error, scope)
        assert (mapped.code, mapped.reason) == (code, reason)
        assert mapped.metadata["driver"] == "mock"


def test_an_unexpected_exception_is_internal_with_a_reference_and_no_detail() -> None:
    mapped = to_api_error(KeyError("secret-internal-detail"), {})
    assert mapped.code == grpc.StatusCode.INTERNAL
    assert "secret-internal-detail" not in mapped.message
    assert mapped.metadata["reference"] in mapped.message
