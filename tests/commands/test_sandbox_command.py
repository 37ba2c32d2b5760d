"""``lifecert sandbox``'s refusals, each before anything is started or made (no stack):
a name that cannot name topics and a database, an unknown role, a role that reports
nothing, a sandbox that does not exist; and the retirees a role's sandbox enrolls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lifecert.api.authz import MATRIX
from lifecert_dev.sandbox import SandboxError, check_name, check_role, sandbox_retirees


def lifecert(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecert.cli", "sandbox", "--root",
                           str(root), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("argv", "says"), [
    (["create", "Macau_1", "--role", "MACAU_SSF", "--agency", "MO-SSF", "--date",
      "2017-05-02"], "use 1-30 characters of a-z, 0-9 and -"),
    (["create", "m", "--role", "MACAO", "--agency", "MO-SSF", "--date", "2017-05-02"],
     "unknown role 'MACAO'; the roles: "),
    (["create", "m", "--role", "PORTAL", "--agency", "FS-PORTAL", "--date", "2017-05-02"],
     "role PORTAL submits nothing by SubmitBatch"),
    (["create", "m", "--role", "MACAU_SSF", "--agency", "MO-SSF", "--date", "2017-05-02",
      "--retirees", "0"], "--retirees must be between 1 and 1000"),
])
def test_create_refuses_bad_arguments_before_starting_anything(
    tmp_path: Path, argv: list[str], says: str
) -> None:
    done = lifecert(*argv, root=tmp_path)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "starting the local stack" not in done.stderr
    assert not any(tmp_path.iterdir())


def test_a_bad_date_is_refused_by_the_parser(tmp_path: Path) -> None:
    done = lifecert("create", "m", "--role", "MACAU_SSF", "--agency", "MO-SSF", "--date",
                    "2 May 2017", root=tmp_path)
    assert done.returncode == 2 and "YYYY-MM-DD" in done.stderr


@pytest.mark.parametrize("action", ["show", "reset", "delete"])
def test_a_sandbox_that_does_not_exist_is_named(tmp_path: Path, action: str) -> None:
    done = lifecert(action, "nosuch", root=tmp_path)
    assert done.returncode == 1
    assert f"no sandbox in {tmp_path.resolve() / 'nosuch'}" in done.stderr
    assert "lifecert sandbox list" in done.stderr


def test_list_without_sandboxes(tmp_path: Path) -> None:
    done = lifecert("list", root=tmp_path)
    assert done.returncode == 0 and "no sandboxes in" in done.stdout


def test_checks_directly() -> None:
    assert check_name("hk-2") == "hk-2"
    with pytest.raises(SandboxError):
        check_name("-x")
    assert check_role("EMPLOYER") == "EMPLOYER"


@pytest.mark.parametrize("role", sorted(r for r, rules in MATRIX.items() if rules.submits))
def test_every_test_retiree_is_in_the_roles_scope(role: str) -> None:
    """Each role's sandbox enrolls retirees it may act for, and (but EMPLOYER's, whose
    own retirees are all government ones) one its channel does not count for."""
    from lifecert.api.authz import Retiree

    found = sandbox_retirees(role, "AGENCY-1", 3)
    scope = MATRIX[role].scope
    for r in found:
        retiree = Retiree(r.retiree_id, r.residence, r.managing_unit, r.scheme, "REGULAR")
        assert scope.allows("AGENCY-1", retiree), (role, r)
        assert len(r.id_number) == 18
    governments = [r for r in found if r.scheme == "GOV_INSTITUTION"]
    if scope.own_unit:
        assert len(found) == 3 and len(governments) == 3
    else:
        assert len(found) == 4 and [r.retiree_id for r in governments] == [found[-1].retiree_id]
