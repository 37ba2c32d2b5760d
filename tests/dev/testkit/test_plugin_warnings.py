"""The kit's plugin, loaded by a project outside lifecert's tree (none of lifecert's
``filterwarnings``), prints no kafka-python deprecation warning (there were 218)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OUTSIDE_TEST = '''
from lifecert_dev.testkit.contract import SourceContract


def test_a_connector_project_imports_the_kit():
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

    assert SourceContract and KafkaConsumer and StickyPartitionAssignor
'''


def test_no_kafka_python_deprecation_warnings_outside_the_tree(tmp_path: Path) -> None:
    (tmp_path / "test_outside.py").write_text(OUTSIDE_TEST, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_outside.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout
    assert "DeprecationWarning" not in done.stdout and " warning" not in done.stdout, done.stdout
