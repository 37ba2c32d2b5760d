"""Parts of the web pages that need no database: the charts (escaped, no style
attribute), money in fen, the status JSON's shape, the staff accounts' refusals, and the
shared status answer's parsing."""

from __future__ import annotations

import pytest

from lifecert.api import statusanswer as sa
from lifecert.api.nextstep import Step
from lifecert.web import charts, dashboard, staff
from lifecert.web.app import CSP, status_json


def test_charts_escape_labels_and_use_no_style_attribute() -> None:
    svg = charts.progress_bars([("<script>x</script>", 1, 2)], 'a "title"')
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&quot;title&quot;" in svg
    for drawn in (svg, charts.count_bars([("A&B", 3)], "t"),
                  charts.day_columns([("2017-05-01", 4), ("2017-05-02", 0)], "t")):
        assert "style=" not in drawn and drawn.startswith("<svg") and drawn.endswith("</svg>")
    assert "50% (1/2)" in svg
    assert "0% (0/0)" in charts.progress_bars([("none", 0, 0)], "t")  # no division by zero


def test_fen_as_yuan() -> None:
    assert dashboard.fen(123456) == "1,234.56"
    assert dashboard.fen(-5) == "-0.05"
    assert dashboard.fen(0) == "0.00"


def test_status_json_shape() -> None:
    found = sa.StatusAnswer("FS-1", "foshan-2017", "SUSPENDED", None,
                            Step("CERTIFY_TO_RESUME", "中文", "English"),
                            hold_month="2017-07", hold_placed_at=1.0)
    assert status_json(found) == {
        "retiree_id": "FS-1", "cycle": "foshan-2017", "status": "SUSPENDED",
        "status_text": {"zh": "养老金已暂停发放", "en": "Pension suspended"},
        "channel": None, "completed_on": None, "open_hold_month": "2017-07",
        "next_step": {"code": "CERTIFY_TO_RESUME", "zh": "中文", "en": "English"},
    }
    none = sa.StatusAnswer("X-1", "", None, None, Step("NO_DECISION_YET", "", ""))
    assert status_json(none)["status_text"]["en"] == "No status for this year yet"


@pytest.mark.parametrize(("username", "password", "role", "district", "says"), [
    ("Bad Name", "long enough pw", "CITY", None, "username"),
    ("ok.name", "short", "CITY", None, "at least 10"),
    ("ok.name", "long enough pw", "ADMIN", None, "CITY or DISTRICT"),
    ("ok.name", "long enough pw", "DISTRICT", None, "names its district"),
    ("ok.name", "long enough pw", "CITY", "Nanhai", "names its district"),
])
def test_staff_accounts_refused(username: str, password: str, role: str,
                                district: str | None, says: str) -> None:
    with pytest.raises(staff.StaffError, match=says):
        staff.add_user(None, username, password, role, district)  # type: ignore[arg-type]


@pytest.mark.parametrize(("retiree_id", "factor"), [("", "1234"), ("FS-1", "12"),
                                                     ("FS-1", "12345"), ("x" * 500, "1234")])
def test_status_input_refused_before_any_lookup(retiree_id: str, factor: str) -> None:
    with pytest.raises(sa.StatusRefused) as caught:
        sa.parse(retiree_id, factor)
    assert caught.value.kind == sa.INVALID


def test_csp_allows_nothing_inline_or_foreign() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_every_template_and_static_file_is_package_data() -> None:
    """The wheel carries every file the pages use (pyproject's package-data globs)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["lifecert"]
    web = root / "lifecert"
    files = [p.relative_to(web).as_posix()
             for folder in ("web/templates", "web/static") for p in (web / folder).iterdir()]
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert missing == []
