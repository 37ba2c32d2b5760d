"""A broken face_recognition install is reported, not a silent exit 0.

face_recognition 1.3.0 calls quit() when face_recognition_models (or the pkg_resources it
needs, gone from setuptools 82) cannot be imported: the process exits with status 0. These
tests run a child Python with one module made unimportable.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run_with_blocked(module: str, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{module!r}] = None  # makes `import {module}` raise ImportError
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("module", "named"),
    [
        ("pkg_resources", "setuptools<81"),
        ("face_recognition_models", "face_recognition_models"),
        ("dlib", "dlib-bin"),
    ],
)
def test_a_missing_piece_raises_an_import_error_naming_what_to_install(
    module: str, named: str
) -> None:
    done = run_with_blocked(
        module,
        """
        from lifecert.face import FaceEngine
        FaceEngine()
        print("engine built")
        """,
    )
    assert done.returncode != 0, done.stdout
    assert "engine built" not in done.stdout
    assert "FaceLibraryUnavailable" in done.stderr
    assert named in done.stderr
    assert "pip install --no-deps face_recognition==1.3.0" in done.stderr


def test_the_library_alone_would_exit_0_which_is_why_we_check_first() -> None:
    done = run_with_blocked(
        "face_recognition_models",
        """
        import face_recognition
        print("imported")
        """,
    )
    assert done.returncode == 0  # the trap: a broken install looks like success
    assert "imported" not in done.stdout
    assert "Please install `face_recognition_models`" in done.stdout


def test_the_package_imports_without_the_library() -> None:
    done = run_with_blocked(
        "dlib",
        """
        import lifecert.face as face
        from lifecert.face.key import key_from_env
        print(face.DEFAULT_THRESHOLD, key_from_env is not None)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "0.5"
