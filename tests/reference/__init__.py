"""An independent reference fold of policy foshan-2017, used by the property tests.

It is written only from ``DESIGN.md`` (rules 1-10) and ``docs/rules.md``, without looking at
``lifecert/domain`` or ``lifecert/replay.py``, so that a comparison of the two catches a
mistake in either.
"""

from .fold import RefResult, reference_replay

__all__ = ["RefResult", "reference_replay"]
