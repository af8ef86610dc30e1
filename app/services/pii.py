"""Rules for personal data: normalising phones and emails, and how each kind is masked."""

from __future__ import annotations

import re

from app.errors import FieldError, ValidationFailed

_SEPARATORS = re.compile(r"[\s\-()（）]")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{9,11}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalize_phone(raw: str, loc: list[str | int]) -> str:
    """A Chinese mobile (`13812345678`) or landline (`010-12345678`), or a 422 naming `loc`."""
    text = raw.strip()
    if "*" in text:
        raise ValidationFailed(
            "a masked phone number is not a contact number",
            [
                FieldError(
                    loc,
                    "masked phone numbers from marketplaces are identifiers, not contact "
                    "numbers: record them as a channel identity instead",
                    input=raw,
                )
            ],
        )
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if _MOBILE.fullmatch(digits):
        return digits
    if _LANDLINE.fullmatch(digits) and len(digits) in (10, 11, 12):
        area = 3 if digits.startswith(("010", "02")) else 4
        number = digits[area:]
        if 7 <= len(number) <= 8:
            return f"{digits[:area]}-{number}"
    raise ValidationFailed(
        "not a plausible Chinese phone number",
        [
            FieldError(
                loc,
                "expected a mobile number (11 digits starting 13-19) or a landline "
                "(area code starting 0, then 7-8 digits)",
                input=raw,
            )
        ],
    )


def normalize_email(raw: str, loc: list[str | int]) -> str:
    text = raw.strip()
    if not _EMAIL.fullmatch(text) or len(text) > 254:
        raise ValidationFailed(
            "not a valid email address", [FieldError(loc, "expected name@domain", input=raw)]
        )
    local, domain = text.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def mask_phone(phone: str) -> str:
    if "-" in phone:
        area, number = phone.split("-", 1)
        return f"{area}-{'*' * (len(number) - 4)}{number[-4:]}"
    if len(phone) == 11:
        return f"{phone[:3]}****{phone[-4:]}"
    return "*" * max(len(phone) - 4, 0) + phone[-4:]


def mask_email(email: str) -> str:
    local, domain = email.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"


def mask_name(name: str) -> str:
    """`张三` -> `张*`, `欧阳娜娜` -> `欧***`: the family name stays, the rest is hidden."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def mask_street(street: str) -> str:
    keep = min(4, max(1, len(street) // 3))
    return street[:keep] + "****"
