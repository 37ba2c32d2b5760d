"""Settings of ``lifecert web serve``: where PostgreSQL is (as the web's own role,
``lifecert_web``: the read models it shows, the status query's tables and lockouts, the
staff sessions, the audit trail; lifecert/dbroles.py), the second-factor key (the API's:
the same hashes, the same lockouts), and the cookies' Secure flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lifecert.api import lockouts
from lifecert.api.authz import MATRIX, RoleRules
from lifecert.api.server_config import Limits, second_factor_dir, second_factor_key

# The agency the web pages ask as: the retirees' portal (a public front, so that each
# visitor's address keys its own lockout and budget, as the gRPC portal's do).
AGENCY = "lifecert-web"
ROLE = "PORTAL"


@dataclass(frozen=True)
class WebConfig:
    dsn: str
    second_factor_key: bytes
    policy: lockouts.Policy = field(default_factory=lambda: lockouts.Policy.of(Limits()))
    rules: RoleRules = field(default_factory=lambda: MATRIX[ROLE])
    agency: str = AGENCY
    secure_cookies: bool = False  # Secure on every cookie (behind TLS); else when https
    poll_seconds: int = 15  # how often the dashboard refreshes itself
    cycle: str | None = None  # the campaign shown (None: the latest in the read models)

    @classmethod
    def resolve(cls, dsn: str | None = None, pki_dir: Path | None = None,
                **kwargs: object) -> WebConfig:
        from lifecert.endpoints import postgres_dsn

        return cls(postgres_dsn(dsn, "web"), second_factor_key(second_factor_dir(pki_dir)),
                   **kwargs)  # type: ignore[arg-type]
