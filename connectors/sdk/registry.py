"""Finding connector types: Python entry points in the group ``lifecert.connectors``, so a
connector can ship as a package of its own (``[project.entry-points."lifecert.connectors"]
my-partner = "my_package.connector:MyPartnerSource"``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from connectors.sdk.base import Connector, SinkConnector, SourceConnector
from connectors.sdk.errors import ConfigError

GROUP = "lifecert.connectors"


@dataclass(frozen=True)
class Installed:
    kind: str
    target: str  # "module:Class"
    distribution: str


def installed() -> dict[str, Installed]:
    """Every connector type installed, by kind (entry-point name)."""
    found: dict[str, Installed] = {}
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        found[ep.name] = Installed(ep.name, ep.value, dist)
    return found


def load(kind: str) -> type[SourceConnector] | type[SinkConnector]:
    """The connector class of ``kind``. Raises :class:`ConfigError` for an unknown kind or
    an entry point that cannot be imported (saying which package to install)."""
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if kind not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(
            f"no connector of kind {kind!r} is installed (installed: {known}); install the "
            f"package that provides it (entry point group {GROUP!r})"
        )
    return _load(eps[kind])


def _load(ep: EntryPoint) -> type[SourceConnector] | type[SinkConnector]:
    try:
        cls = ep.load()
    except ImportError as exc:
        raise ConfigError(
            f"connector {ep.name!r} points at {ep.value}, which cannot be imported: {exc}. "
            f"Install its package and the extras it needs"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, SourceConnector | SinkConnector)):
        raise ConfigError(f"connector {ep.name!r} ({ep.value}) is not a SourceConnector or "
                          f"SinkConnector subclass")
    if cls.kind != ep.name:
        raise ConfigError(f"connector class {ep.value} has kind {cls.kind!r} but is "
                          f"registered as {ep.name!r}; make them equal")
    return cls


def is_source(cls: type[Connector]) -> bool:
    return issubclass(cls, SourceConnector)
