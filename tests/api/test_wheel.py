"""The wheel built from a clean checkout ships the generated gRPC code, so the example
client runs from a plain install (docs/partners.md, "The client"): clone the tree (only
committed files: lifecert/api/v1 is never committed), `pip wheel --no-deps` (setup.py's
build step runs protoc), install the wheel with its `api` extra into a fresh venv (from
pip's cache when it holds them) and run the example's --help and imports outside the tree.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_the_wheel_of_a_clean_checkout_runs_the_example_client(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run("git", "clone", "--quiet", ROOT, clone, cwd=tmp_path)
    assert not (clone / "lifecert" / "api" / "v1").exists()
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, ".",
        cwd=clone)
    (wheel,) = wheels.glob("lifecert-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[api]", cwd=tmp_path)
    helped = run(python, "-m", "lifecert.api.example_client", "--help", cwd=tmp_path)
    assert "submit" in helped.stdout and "feed" in helped.stdout
    imported = run(python, "-c", "import lifecert.api.example_client as e, "
                   "lifecert.api.protos as p; print(e.__file__); "
                   "print(p.partner_exchange_pb2.SubscribeRequest(from_start=True))",
                   cwd=tmp_path)
    assert str(env) in imported.stdout and "from_start: true" in imported.stdout
