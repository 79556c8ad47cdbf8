"""Contact identities: one normal form per kind, so the same phone or openid written two ways
is still the same customer (``store/customers.py`` resolves on ``(kind, normal form)``).

Phones go through ``phonenumbers`` (E.164; a number without a country code is read as the
``default_region``'s), e-mail addresses are lower-cased, the WeChat and app ids are kept as
given (they are case-sensitive opaque ids) after a character check.
"""

import re

import phonenumbers

KINDS = ("phone", "email", "wechat_openid", "wechat_unionid", "app_user")
_OPAQUE = re.compile(r"^[A-Za-z0-9_\-.:@]{1,128}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,24}$")


class BadIdentity(ValueError):
    """The value is not a valid identity of its kind (the API answers 422 naming the field)."""


def normalize(kind: str, value: str, default_region: str = "CN") -> str:
    value = value.strip()
    if kind not in KINDS:
        raise BadIdentity(f"unknown identity kind {kind!r} (one of {', '.join(KINDS)})")
    if kind == "phone":
        try:
            number = phonenumbers.parse(value, default_region)
        except phonenumbers.NumberParseException as exc:
            raise BadIdentity(f"not a phone number: {exc}") from None
        if not phonenumbers.is_possible_number(number):
            raise BadIdentity("not a possible phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == "email":
        if not _EMAIL.match(value):
            raise BadIdentity("not an e-mail address")
        return value.lower()
    if not _OPAQUE.match(value):
        raise BadIdentity(f"a {kind} is 1-128 letters, digits or _-.:@")
    return value
