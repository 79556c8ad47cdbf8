"""The pricing engine: a region's rules + a request → an explainable statement.

Pure and deterministic (no I/O, no clock, no randomness, Decimal only), so it can run in
activities and in workflow code alike. See docs/pricing.md.

    book = compile_rules(rules)          # validates once; PricingError if the rules are wrong
    statement = price(book, request)     # or price(rules, request)
"""

from .book import PriceBook, compile_rules
from .engine import price
from .errors import PricingError, PricingErrorCode
from .money import allocate, round_money

__all__ = ["PriceBook", "PricingError", "PricingErrorCode", "allocate", "compile_rules", "price", "round_money"]
