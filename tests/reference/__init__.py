"""An independent reference fold of policy foshan-2017, used by the property tests.

It is written only from ``DESIGN.md`` (rules 1-14) and ``docs/rules.md`` (with its
"Late-logged events" decision, a separate, switchable step), without looking at
``lifecert/domain`` or ``lifecert/replay.py``, so that a comparison of the two catches a
mistake in either. Rules 11-14 were written again that way for issue 16.
"""

from .fold import RefResult, reference_replay

__all__ = ["RefResult", "reference_replay"]
