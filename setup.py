"""The wheel ships the generated gRPC code (lifecert/api/v1/), which is never committed:
``build_py`` runs ``lifecert.api.build_protos`` (grpcio-tools, a build requirement in
pyproject.toml) into the build folder, so ``pip install lifecert[api]`` from a clean
checkout or an sdist can import ``lifecert.api.protos`` and run
``python -m lifecert.api.example_client``. Everything else is in pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        super().run()
        # Loaded by path: importing the lifecert package is not needed to compile.
        spec = importlib.util.spec_from_file_location(
            "lifecert_build_protos", HERE / "lifecert" / "api" / "build_protos.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out = Path(self.build_lib) / "lifecert" / "api" / "v1"
        written = module.build(out)
        print(f"build_protos: {len(written)} generated files in {out}")


setup(cmdclass={"build_py": BuildPyWithProtos})
