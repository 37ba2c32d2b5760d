"""``lifecert assistance request``'s refusals (the publishing itself: the SSF end-to-end
test, tests/connectors/macau_ssf/test_macau_ssf_end_to_end.py)."""

from __future__ import annotations

import pytest

from lifecert.cli import main


def test_a_time_without_offset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["assistance", "request", "--at", "2017-05-15T09:00:00"])
    assert exited.value.code == 2
    assert "has no UTC offset; add +08:00" in capsys.readouterr().err


def test_unreachable_read_models_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["assistance", "request", "--policy", "foshan-2017",
                 "--dsn", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"])
    assert code == 1
    assert "lifecert assistance: cannot reach the read models" in capsys.readouterr().err
