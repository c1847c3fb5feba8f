"""Errors the clients raise: one `FaregateError` family, keyed by gRPC status code.

Callers catch `FaregateError` (or a subclass such as `InvalidArgumentError`) and never
see a raw `grpc.RpcError`. Only the status code enum comes from gRPC; this module must
not import the wire types (`faregate.v1`) nor the servers.
"""

from __future__ import annotations

import grpc


class FaregateError(Exception):
    """A call to a Faregate server failed; `code` and `message` come from the server."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, target: str = ""
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.target = target

    @property
    def lines(self) -> list[str]:
        """The message split into lines: ApplyConfig reports one problem per line."""
        return [line for line in self.message.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgumentError(FaregateError, ValueError):
    """The request was rejected as invalid; the message names the field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(FaregateError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPreconditionError(FaregateError):
    """The server cannot serve this yet, e.g. a sidecar that has no snapshot."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(FaregateError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(FaregateError, ConnectionError):
    """The server could not be reached (or is shutting down)."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(FaregateError, TimeoutError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


_BY_CODE: dict[grpc.StatusCode, type[FaregateError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        FailedPreconditionError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
    )
}

# Codes worth retrying for an idempotent call such as Report (a repeat is answered
# `duplicate=true`, never counted twice).
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


def error_for(code: grpc.StatusCode, message: str, target: str = "") -> FaregateError:
    """The most specific `FaregateError` for a status code."""
    cls = _BY_CODE.get(code, FaregateError)
    return cls(message, code=code, target=target)


def from_rpc_error(error: grpc.RpcError, target: str = "") -> FaregateError:
    """Translate a sync or asyncio gRPC error (both expose `code()` and `details()`)."""
    code_of = getattr(error, "code", None)
    details_of = getattr(error, "details", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details = details_of() if callable(details_of) else ""
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return error_for(code, str(details or code.name.lower()), target)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, FaregateError) and error.code in TRANSIENT_CODES
