"""Where the project's data lies does not depend on the folder a command is run from
(issue 18: `lifecert stack status` said "stopped" and `api second-factor set` looked for
its key under the working folder when run outside the tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecert.endpoints import LocalStack, project_data_dir
from lifecert.pki import PkiPaths

ROOT = Path(__file__).resolve().parents[1]


def test_data_dir_from_another_folder_is_the_checkouts(tmp_path: Path) -> None:
    assert project_data_dir("stack", cwd=tmp_path) == ROOT / "data" / "stack"
    assert project_data_dir("stack", cwd=ROOT / "docs") == ROOT / "data" / "stack"
    assert LocalStack.from_env({}, cwd=tmp_path).data_dir == (ROOT / "data" / "stack").resolve()


def test_an_explicit_data_dir_is_still_relative_to_the_working_folder(tmp_path: Path) -> None:
    stack = LocalStack.from_env({"LIFECERT_DATA_DIR": "mine"}, cwd=tmp_path)
    assert stack.data_dir == (tmp_path / "mine").resolve()


def test_the_second_factor_key_folder_does_not_follow_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIFECERT_PKI_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    # lifecert/commands/api.py keeps the key in data/api, beside the PKI folder
    assert PkiPaths.default().root.parent / "api" == ROOT / "data" / "api"
