"""What every call goes through: the caller's identity from its client certificate, the
authorization matrix for the method, the agency's rate limit, and the audit row.

    call = await gate.enter(context, authz.STATUS, cost=1)   # aborts when refused
    ...
    await call.refuse(grpc.StatusCode.NOT_FOUND, "...")     # audited, then aborted
    call.done(outcome="OK", subject=retiree_id)              # audited

Servicer methods never raise to gRPC for an expected outcome: each ends through
``done`` or ``refuse``, so each call leaves exactly one audit row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc

from lifecert.api import authz
from lifecert.api.db import AuditRow, AuditWriter
from lifecert.api.escape import escaped
from lifecert.api.ratelimit import RateLimiter
from lifecert.api.secondfactor import subject_ref
from lifecert.pki import DenyList, Identity, PkiError, identity_of

log = logging.getLogger("lifecert.api")


class Aborted(Exception):
    """Raised after a call was refused and audited (``context.abort`` raises too; this
    is for code paths that must not continue)."""


@dataclass
class Call:
    gate: Gate
    context: grpc.aio.ServicerContext
    method: str
    identity: Identity | None
    rules: authz.RoleRules | None
    peer: str | None
    started: float = field(default_factory=time.perf_counter)
    finished: bool = False

    @property
    def agency(self) -> str:
        assert self.identity is not None
        return self.identity.agency

    @property
    def role(self) -> str:
        assert self.identity is not None
        return self.identity.role

    def _audit(self, outcome: str, detail: str | None, **counts: Any) -> None:
        if self.finished:
            return
        self.finished = True
        self._write(outcome, detail, **counts)

    def also(self, outcome: str, detail: str | None, **counts: Any) -> None:
        """An audit row of its own for one item of the call (e.g. a death report
        retracted), besides the call's row."""
        self._write(outcome, detail, **counts)

    def _write(self, outcome: str, detail: str | None, **counts: Any) -> None:
        subject = counts.pop("subject", None)
        row = AuditRow(
            at=datetime.now(UTC),
            agency=self.identity.agency if self.identity else None,
            role=self.identity.role if self.identity else None,
            peer=self.peer,
            method=self.method,
            outcome=outcome,
            detail=detail,
            subject=subject_ref(self.gate.subject_key, subject) if subject else None,
            duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
            **counts,
        )
        self.gate.audit.write(row)
        if log.isEnabledFor(logging.INFO):  # --verbose
            log.info(
                "%s %s %s: %s%s (%.1f ms)", row.agency or "-", row.role or "-", self.method,
                outcome, f" [{escaped(detail)}]" if detail else "", row.duration_ms or 0.0,
            )

    def done(self, outcome: str = "OK", detail: str | None = None, **counts: Any) -> None:
        self._audit(outcome, detail, **counts)

    async def refuse(
        self, code: grpc.StatusCode, message: str, *, detail: str | None = None,
        **counts: Any,
    ) -> NoReturn:
        """Audit, then end the call with ``code`` and ``message`` (sent to the caller;
        it must not contain ID numbers)."""
        self._audit(code.name, detail or message, **counts)
        await self.context.abort(code, message)
        raise Aborted(message)  # abort raises; this line is for the type checker


class Gate:
    def __init__(self, audit: AuditWriter, limiter: RateLimiter, subject_key: bytes,
                 deny: DenyList | None = None) -> None:
        self.audit = audit
        self.limiter = limiter
        self.subject_key = subject_key
        self.deny = deny

    async def enter(
        self, context: grpc.aio.ServicerContext, method: str, cost: float = 1.0
    ) -> Call:
        peer = context.peer()
        call = Call(self, context, method, None, None, peer)
        try:
            call.identity = caller_identity(context)
        except PkiError as exc:
            await call.refuse(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if self.deny is not None and (revoked := self.deny.refusal(caller_certificate(context))):
            await call.refuse(grpc.StatusCode.UNAUTHENTICATED, revoked)
        try:
            call.rules = authz.check_method(call.role, method)
        except authz.Refusal as exc:
            await call.refuse(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        rules = call.rules
        wait = self.limiter.take(call.agency, rules.rate, rules.burst, max(cost, 1.0))
        if wait > 0:
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit of agency {call.agency} exceeded; retry in {wait:.2f} s",
                detail="RATE_LIMITED",
            )
        return call


@dataclass(frozen=True)
class _Unparsable:
    """What a request that protobuf cannot parse is handed to the servicer as."""

    type_name: str
    error: str


# The behaviours of a grpc.aio server's method handlers. types-grpcio types the fields of
# RpcMethodHandler as the sync server's (functions returning the response or an iterator).
_AioUnaryUnary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
_AioUnaryStream = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class MalformedRequests(grpc.aio.ServerInterceptor):
    """A request of a lifecert service that does not parse as its message (invalid UTF-8
    in a string field, a truncated or corrupt body) goes through the gate like any call
    and is refused INVALID_ARGUMENT, so it is audited, instead of ending in gRPC's bare
    UNKNOWN before any of the server's code runs."""

    PREFIX = "/lifecert.v1."

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        name = details.method
        if handler is None or not name.startswith(self.PREFIX) or \
                handler.request_deserializer is None or handler.request_streaming:
            return handler
        wrapped = self._handlers.get(name)
        if wrapped is None:
            wrapped = self._handlers[name] = self._wrap(name[len(self.PREFIX):], handler)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        parse = handler.request_deserializer
        if parse is None:  # intercept_service wraps only the handlers that deserialize
            return handler
        # FromString of the request's message class
        type_name = getattr(getattr(parse, "__self__", None), "__name__", "request")

        def deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as exc:
                return _Unparsable(type_name, f"{type(exc).__name__}: {exc}")

        async def refuse(request: _Unparsable, context: grpc.aio.ServicerContext) -> NoReturn:
            call = await self.gate.enter(context, method)
            await call.refuse(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request.type_name} message (is every string "
                "field valid UTF-8?)",
                detail=f"MALFORMED_REQUEST {request.error}",
            )

        if handler.response_streaming:
            # types-grpcio gives the sync server's type (see _AioUnaryStream).
            inner_stream: _AioUnaryStream = handler.unary_stream  # type: ignore[assignment]

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Unparsable):
                    await refuse(request, context)
                async for response in inner_stream(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=deserialize,
                response_serializer=handler.response_serializer)
        # types-grpcio gives the sync server's type (see _AioUnaryUnary).
        inner: _AioUnaryUnary = handler.unary_unary  # type: ignore[assignment]

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Unparsable):
                await refuse(request, context)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=deserialize,
            response_serializer=handler.response_serializer)


def caller_identity(context: grpc.aio.ServicerContext) -> Identity:
    """Agency and role from the verified client certificate of the call."""
    return identity_of(caller_certificate(context))


def caller_certificate(context: grpc.aio.ServicerContext) -> bytes:
    """The verified client certificate of the call (PEM)."""
    pem = next(iter(context.auth_context().get("x509_pem_cert") or ()), None)
    if pem is None:
        raise PkiError("no client certificate: the API requires mutual TLS")
    return bytes(pem)
