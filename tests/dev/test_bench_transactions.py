"""``lifecert bench transactions`` (issue 17, item 2's figures) runs on the stack's broker
and reports both modes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.stack
def test_bench_transactions_measures_both_modes(stack: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "bench", "transactions", "--batches", "3",
         "--batch", "200", "--bootstrap", stack.kafka_bootstrap, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["batches"] == 3 and figures["records_per_batch"] == 200
    assert set(figures["per_batch_ms"]) == {"plain", "transactional"}
    assert all(ms > 0 for ms in figures["per_batch_ms"].values())
    assert figures["records_per_s"]["plain"] > 0 and figures["records_per_s"]["transactional"] > 0
