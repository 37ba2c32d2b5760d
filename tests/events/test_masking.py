"""The one citizen-id masking (lifecert.events.masking), as every door uses it."""

from __future__ import annotations

import pytest

from lifecert.events import masking

ID18 = "44060419300101000X"


@pytest.mark.parametrize(("text", "expected"), [
    (f"id {ID18},", f"id {'*' * 18},"),
    (f"ID{ID18}", f"ID{'*' * 18}"),  # a letter beside it does not protect it
    ("old 440604300101001 kept?", f"old {'*' * 15} kept?"),
    ("typed on 4406041930010100001234", f"typed on {'*' * 22}"),  # a longer run, whole
    ("４４０６０４１９３００１０１０００Ｘ", "*" * 18),  # full-width
    ("FS000104729 2017-04-01T09:00:00+08:00 MOHRSS-17-00000044", None),  # kept
    ("20170402093000 is a time", None),  # 14 digits: kept
])
def test_mask_text(text: str, expected: str | None) -> None:
    assert masking.mask_text(text) == (text if expected is None else expected)


def test_hong_kong_identity_cards_only_when_asked() -> None:
    assert masking.mask_text("陳A123456（7）") == "陳A123456（7）"
    assert masking.mask_text("陳A123456（7）", hong_kong=True) == "陳" + "*" * 10
    assert masking.mask_text("AB987654A,", hong_kong=True) == "*" * 9 + ","
    assert masking.mask_text("FS000000001,A1234567X", hong_kong=True) == \
        "FS000000001,A1234567X"


def test_mask_bytes_in_the_encoding_and_beside_bytes_that_are_not() -> None:
    assert masking.mask_bytes(f"张三,{ID18}\r\n".encode("gb18030"), "gb18030") == \
        f"张三,{'*' * 18}\r\n".encode("gb18030")
    assert masking.mask_bytes(b"\xff" + ID18.encode()) == b"\xff" + b"*" * 18


def test_show_masks_before_it_cuts() -> None:
    shown = masking.show("x" * 50 + ID18)
    assert "440604" not in shown and "4406" not in shown
    assert masking.show(ID18) == repr("*" * 18)
