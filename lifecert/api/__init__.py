"""The partner gRPC API: PartnerExchange, StatusQuery and FaceVerification over mutual TLS
(``lifecert api serve``). Contracts in proto/lifecert/v1/; generated code in
lifecert/api/v1/ (``python -m lifecert.api.build_protos``); docs/api.md for partners.

This package's ``__init__`` imports nothing: ``lifecert.api.authz`` (the authorization
matrix) is read by ``lifecert pki`` without loading gRPC.
"""
