"""`lifecert` without an extra a command needs names the extra, instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

from lifecert.cli import missing_extra


def _without(package: str) -> subprocess.CompletedProcess[str]:
    # a None in sys.modules makes `import package` fail as if it were not installed
    code = (f"import sys; sys.modules[{package!r}] = None\n"
            "from lifecert.cli import main\nmain(['--help'])")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_missing_live_package_names_the_extra() -> None:
    done = _without("kafka")
    assert done.returncode == 1, done.stderr
    assert "needs the Python package 'kafka', which is not installed" in done.stderr
    assert "'live' extra" in done.stderr and "lifecert[live,api]" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_lifecert_module_is_not_disguised_as_an_extra() -> None:
    exc = ModuleNotFoundError("No module named 'lifecert.nothing'", name="lifecert.nothing")
    assert missing_extra(exc, "lifecert.commands.replay") is None
    grpc = ModuleNotFoundError("No module named 'grpc'", name="grpc")
    assert "'api' extra" in (missing_extra(grpc, "lifecert.commands.api") or "")
