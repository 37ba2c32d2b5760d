"""The partner directory of missions (connectors/consular_app/missions.toml): which
embassies, consulates, trade offices and caretaker embassies certify Foshan retirees
abroad. The consular-app connector refuses a case from a mission not listed, or listed
with another kind or country (docs/partners/consular-app.md)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lifecert.events import bounds
from lifecert.events.catalogue import enum_symbols

KINDS: tuple[str, ...] = enum_symbols("MissionKind")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,63}")


class DirectoryError(ValueError):
    """A directory file that cannot be used; the message names the file and entry."""


@dataclass(frozen=True, slots=True)
class Mission:
    code: str
    kind: str
    country: str
    city: str


def shipped() -> str:
    """The directory shipped with the connector, as text."""
    return (resources.files("connectors.consular_app") / "missions.toml").read_text(
        encoding="utf-8")


def load(path: str | Path | None = None) -> dict[str, Mission]:
    """The missions by code, from ``path`` (default: the shipped directory)."""
    origin = str(path) if path is not None else "connectors/consular_app/missions.toml"
    try:
        text = Path(path).read_text(encoding="utf-8") if path is not None else shipped()
        data = tomllib.loads(text)
    except OSError as exc:
        raise DirectoryError(f"{origin}: cannot read it: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"{origin}: not TOML: {exc}") from None
    table = data.get("missions")
    if not isinstance(table, dict) or not table:
        raise DirectoryError(f"{origin}: no [missions.\"<code>\"] tables")
    missions = {}
    for code, entry in table.items():
        where = f"{origin}: [missions.{code!r}]"
        if not _CODE.fullmatch(code):
            raise DirectoryError(f"{where}: a code is 2 to 64 capitals, digits and dashes")
        if not isinstance(entry, dict):
            raise DirectoryError(f"{where}: expected a table with kind, country, city")
        kind, country, city = entry.get("kind"), entry.get("country"), entry.get("city")
        if kind not in KINDS:
            raise DirectoryError(f"{where}: kind {bounds.show(kind)} is not one of "
                                 f"{', '.join(KINDS)}")
        if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
            raise DirectoryError(f"{where}: country {bounds.show(country)} is not an ISO "
                                 f"3166-1 alpha-2 code such as CA")
        if not isinstance(city, str) or not city.strip():
            raise DirectoryError(f"{where}: city is required text")
        missions[code] = Mission(code, kind, country, city)
    return missions


def problem(missions: dict[str, Mission], code: str, kind: str, country: str) -> str | None:
    """Why a case from mission ``code`` (said to be of ``kind``, in ``country``) cannot be
    taken, or None."""
    mission = missions.get(code)
    if mission is None:
        return (f"field mission.code: {bounds.show(code)} is not a mission of the partner "
                f"directory (missions_file); if it is a new mission, add it there")
    if mission.kind != kind:
        return (f"field mission.type: {kind} but the directory lists {code} as a "
                f"{mission.kind}")
    if mission.country != country:
        return (f"field mission.country: {country} but the directory lists {code} in "
                f"{mission.country}")
    return None
