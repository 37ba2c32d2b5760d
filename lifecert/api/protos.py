"""The generated gRPC code, imported in one place with a clear message when it is missing
or was generated for another protobuf release."""

from __future__ import annotations

_HINT = (
    "the generated gRPC code of lifecert's contracts (lifecert/api/v1/) is missing or stale: "
    "run `make setup` or `python -m lifecert.api.build_protos`"
)

try:
    from lifecert.api.v1 import (
        common_pb2,
        consular_review_pb2,
        consular_review_pb2_grpc,
        face_verification_pb2,
        face_verification_pb2_grpc,
        partner_exchange_pb2,
        partner_exchange_pb2_grpc,
        status_query_pb2,
        status_query_pb2_grpc,
    )
except ImportError as exc:  # pragma: no cover - depends on the build having run
    raise ImportError(f"{_HINT} ({exc})") from exc
except Exception as exc:  # protobuf's VersionError: generated for another runtime
    if type(exc).__name__ != "VersionError":
        raise
    raise ImportError(f"{_HINT} ({exc})") from exc

__all__ = [
    "common_pb2",
    "consular_review_pb2",
    "consular_review_pb2_grpc",
    "face_verification_pb2",
    "face_verification_pb2_grpc",
    "partner_exchange_pb2",
    "partner_exchange_pb2_grpc",
    "status_query_pb2",
    "status_query_pb2_grpc",
]

SERVICE_NAMES: tuple[str, ...] = (
    partner_exchange_pb2.DESCRIPTOR.services_by_name["PartnerExchange"].full_name,
    status_query_pb2.DESCRIPTOR.services_by_name["StatusQuery"].full_name,
    face_verification_pb2.DESCRIPTOR.services_by_name["FaceVerification"].full_name,
    consular_review_pb2.DESCRIPTOR.services_by_name["ConsularReview"].full_name,
)
