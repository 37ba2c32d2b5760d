"""The wheel built from a clean checkout ships the generated gRPC code, so the example
client runs from a plain install (docs/partners.md, "The client"): clone the tree (only
committed files: lifecert/api/v1 is never committed), build the wheel (setup.py's build step
runs protoc), install the wheel with its `api` extra and run the example's --help and
imports outside the tree.

The build runs as pip's build isolation would, in a fresh venv holding nothing but the
`build-system.requires` of the clone's pyproject.toml, and the wheel is then installed with
its `api` extra into that same venv: the build requirements (setuptools, grpcio-tools) are
in the `api` extra too, so one resolve of them serves both, where pip's isolated build
resolved them a second time into a throw-away environment. The venv gets no pip of its own
(this test's pip installs into it with `--python`), and nothing is byte-compiled at install
(Python compiles what the example imports when it runs).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
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
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    # the build environment: only what the clone's pyproject.toml declares for the build
    build_requires = tomllib.loads((clone / "pyproject.toml").read_text("utf-8"))[
        "build-system"]["requires"]
    run(*pip, "install", "--quiet", "--no-compile", *build_requires, cwd=tmp_path)
    wheels = tmp_path / "wheels"
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", wheels, ".",
        cwd=clone)
    (wheel,) = wheels.glob("lifecert-*.whl")
    run(*pip, "install", "--quiet", "--no-compile", f"{wheel}[api]", cwd=tmp_path)
    helped = run(python, "-m", "lifecert.api.example_client", "--help", cwd=tmp_path)
    assert "submit" in helped.stdout and "feed" in helped.stdout
    imported = run(python, "-c", "import lifecert.api.example_client as e, "
                   "lifecert.api.protos as p; print(e.__file__); "
                   "print(p.partner_exchange_pb2.SubscribeRequest(from_start=True))",
                   cwd=tmp_path)
    assert str(env) in imported.stdout and "from_start: true" in imported.stdout
