"""What ``lifecert topics tail`` shows of the records it read (no broker needed)."""

from __future__ import annotations

import pytest

from lifecert.pipeline.readable import Decoded
from lifecert.pipeline.topic_reader import chosen

# One record in each of partitions 2, 3 and 4, in time order 2, 3, 4 (the walk-through's
# topic, where `-n 4` printed one record).
RECORDS = [Decoded("t", p, 0, 1000 + p, None, None, "none") for p in (4, 2, 3)]


def _where(records: list[Decoded]) -> list[str]:
    return [f"{r.partition}@{r.offset}" for r in records]


@pytest.mark.parametrize("count", range(11))
def test_the_last_n_are_the_newest_n_and_all_when_fewer(count: int) -> None:
    assert _where(chosen(RECORDS, count, from_beginning=False)) == \
        ["2@0", "3@0", "4@0"][max(0, 3 - count):]


@pytest.mark.parametrize("count", range(6))
def test_from_the_beginning_the_first_n(count: int) -> None:
    assert _where(chosen(RECORDS, count, from_beginning=True)) == ["2@0", "3@0", "4@0"][:count]


def test_no_count_is_every_record_in_time_order() -> None:
    assert _where(chosen(RECORDS, None, from_beginning=True)) == ["2@0", "3@0", "4@0"]
