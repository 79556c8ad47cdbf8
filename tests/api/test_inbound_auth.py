"""The inbound signature scheme (domain/inbound_auth.py) on its own: what a timestamp header may be.

A timestamp is 1-12 ASCII digits. ``str.isdigit`` also takes superscripts (``²``, which ``int``
cannot read: a 500 before the fix) and ``int`` takes any script's digits (``١٢٣``, ``１２３``), so
a header that is not plain ASCII digits is refused as malformed before anything is computed."""

import time

import pytest

from domain.inbound_auth import BadSignature, sign, verify

SECRET = "s3cret-for-tests"
BODY = b'{"hello": "world"}'


def test_a_well_formed_signature_within_the_window_is_taken():
    now = int(time.time())
    assert verify([SECRET], str(now), sign(SECRET, now, BODY), BODY, now=now) == now


@pytest.mark.parametrize(
    "timestamp",
    [
        "²",  # superscript two: isdigit() but int() raises
        "¹²³",
        "1²",
        "١٧٠٠٠٠٠٠٠٠",  # Arabic-Indic digits: int() reads them
        "１７００００００００",  # fullwidth digits
        "+1700000000",
        "-1",
        " 1700000000",
        "1700000000 ",
        "1_700_000_000",
        "0x10",
        "1" * 13,
    ],
)
def test_a_timestamp_that_is_not_ascii_digits_is_malformed(timestamp: str):
    now = int(time.time())
    with pytest.raises(BadSignature) as refused:
        verify([SECRET], timestamp, sign(SECRET, now, BODY), BODY, now=now)
    assert refused.value.reason == "malformed timestamp"


def test_unicode_digits_for_the_right_time_do_not_verify():
    """Signed over the ASCII form of the same instant: still refused, one spelling only."""
    now = int(time.time())
    fullwidth = str(now).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    with pytest.raises(BadSignature, match="malformed"):
        verify([SECRET], fullwidth, sign(SECRET, now, BODY), BODY, now=now)
