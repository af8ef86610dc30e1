"""Phone and email normalisation and masking rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import ValidationFailed
from app.services import pii


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("13812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("0086-13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("010-12345678", "010-12345678"),
        ("01012345678", "010-12345678"),
        ("0755 8600 1234", "0755-86001234"),
        ("(0571)8765432", "0571-8765432"),
    ],
)
def test_plausible_chinese_numbers_are_normalized(raw: str, normalized: str) -> None:
    assert pii.normalize_phone(raw, ["phones", 0]) == normalized


@pytest.mark.parametrize(
    "raw", ["12345", "23812345678", "1381234567", "138123456789", "abc", "10086", "+1 415 555 0100"]
)
def test_implausible_numbers_are_rejected_with_their_location(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        pii.normalize_phone(raw, ["body", "phones", 2])
    assert list(caught.value.errors[0].loc) == ["body", "phones", 2]


def test_masked_marketplace_phone_is_an_identifier_not_a_contact() -> None:
    with pytest.raises(ValidationFailed) as caught:
        pii.normalize_phone("138****1234", ["body", "phones", 0])
    assert "identity" in caught.value.errors[0].msg


def test_masks() -> None:
    assert pii.mask_phone("13812341234") == "138****1234"
    assert pii.mask_phone("010-12345678") == "010-****5678"
    assert pii.mask_name("张三") == "张*"
    assert pii.mask_name("欧阳娜娜") == "欧***"
    assert pii.mask_email("wang.xiao@Example.com".lower()) == "w***@example.com"
    assert pii.mask_street("文三路100号3幢201室").endswith("****")


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_every_mobile_round_trips_and_masks_to_3_4_4(mobile: str) -> None:
    assert pii.normalize_phone(mobile, []) == mobile
    masked = pii.mask_phone(mobile)
    assert masked == mobile[:3] + "****" + mobile[-4:]
