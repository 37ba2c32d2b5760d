"""Rules 11-14 on random logs: production == reference on logs with corrections.

Both folds judge late-logged events as of the knowledge moment (docs/rules.md "Late-logged
events"), each written from that page on its own; the random logs include lines out of
recorded_at order, and the two logs that lost money before the decision are examples.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.helpers import (
    ReplayImpl,
    examples,
    first_differences,
    normalize,
    reasons,
)
from tests.property.test_money import DEATH_BEHIND_THE_DEADLINE_HOLD, REVOKED_IN_THE_PAST
from tests.property.test_properties import SETTINGS, UNTILS, describe, event_logs


@settings(SETTINGS, max_examples=examples(400))
@given(lines=event_logs(corrections=True), until=st.sampled_from(UNTILS))
@example(lines=REVOKED_IN_THE_PAST, until=None)
@example(lines=DEATH_BEHIND_THE_DEADLINE_HOLD, until=None)
def test_production_equals_reference_with_corrections(
    production_impl: ReplayImpl,
    reference_impl: ReplayImpl,
    lines: list[str],
    until: dt.date | None,
) -> None:
    expected = reference_impl(lines, until=until)
    actual = production_impl(lines, until=until)
    want, got = normalize(expected.instructions), normalize(actual.instructions)
    assert got == want, (
        f"instructions differ (until={until})\n{first_differences(want, got)}\n"
        f"log:\n{describe(lines)}"
    )
    assert dict(actual.statuses) == dict(expected.statuses), (
        f"statuses differ (until={until}): reference {dict(expected.statuses)}, "
        f"production {dict(actual.statuses)}\nlog:\n{describe(lines)}"
    )
    want_r, got_r = reasons(expected), reasons(actual)
    assert got_r == want_r, (
        f"rejections differ (until={until})\n{first_differences(want_r, got_r)}\n"
        f"log:\n{describe(lines)}"
    )
