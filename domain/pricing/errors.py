"""The one error the pricing engine raises."""

from enum import StrEnum


class PricingErrorCode(StrEnum):
    UNKNOWN_CURRENCY = "unknown_currency"
    MISSING_RATE = "missing_rate"
    BAD_RATE = "bad_rate"
    REGION_MISMATCH = "region_mismatch"
    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_PART = "unknown_part"
    UNKNOWN_MEMBER_LEVEL = "unknown_member_level"
    DUPLICATE_CODE = "duplicate_code"  # two rules with the same code / sku / level / party
    DUPLICATE_LINE = "duplicate_line"  # a service code or part sku twice in one request
    NEGATIVE_PRICE = "negative_price"
    BAD_PERCENT = "bad_percent"
    BAD_QUANTITY = "bad_quantity"
    BAD_AMOUNT = "bad_amount"  # a quoted service without an amount, or an amount for another
    BAD_INCREMENT = "bad_increment"
    BAD_TIER = "bad_tier"
    OVERLAPPING_TIERS = "overlapping_tiers"
    TIER_GAP = "tier_gap"
    BAD_APPLIES_TO = "bad_applies_to"
    SHARES_SUM = "shares_sum"
    BAD_SHARE = "bad_share"


class PricingError(Exception):
    """An invalid rule set or a request the rules cannot price.

    ``code`` is stable (map it to ``ApplicationError(type=…)`` / HTTP 422); ``path`` points
    at the offending field, e.g. ``rules.services[2].tiers[1].over`` or
    ``request.parts[0].sku``.
    """

    def __init__(self, code: PricingErrorCode, message: str, path: str = "") -> None:
        super().__init__(f"{code}: {message}" + (f" (at {path})" if path else ""))
        self.code = code
        self.message = message
        self.path = path

    def __reduce__(self) -> tuple[type["PricingError"], tuple[PricingErrorCode, str, str]]:
        # picklable with its fields (process pools, Temporal failures)
        return (type(self), (self.code, self.message, self.path))
