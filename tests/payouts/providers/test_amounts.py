from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partners.payouts.providers.amounts import decimal_str_to_minor, minor_to_decimal_str
from partners.payouts.providers.base import currency_exponent

amounts = st.integers(min_value=-(10**20), max_value=10**20)
exponents = st.integers(min_value=0, max_value=4)


@pytest.mark.parametrize(
    ("amount", "exponent", "text"),
    [
        (1234, 2, "12.34"),
        (5, 2, "0.05"),
        (100, 2, "1.00"),
        (0, 2, "0.00"),
        (-5, 2, "-0.05"),
        (1500, 0, "1500"),
        (1, 3, "0.001"),
        (123456789012345678, 2, "1234567890123456.78"),
    ],
)
def test_minor_to_decimal_string(amount: int, exponent: int, text: str) -> None:
    assert minor_to_decimal_str(amount, exponent) == text


@given(amounts, exponents)
def test_round_trip_is_exact(amount: int, exponent: int) -> None:
    text = minor_to_decimal_str(amount, exponent)
    assert decimal_str_to_minor(text, exponent) == amount


@given(amounts, exponents)
def test_string_has_the_value_of_the_minor_units(amount: int, exponent: int) -> None:
    text = minor_to_decimal_str(amount, exponent)
    assert Decimal(text) == Decimal(amount).scaleb(-exponent)
    assert ("." in text) == (exponent > 0)
    if exponent:
        assert len(text.split(".")[1]) == exponent


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["USD", "EUR", "JPY", "KWD", "HUF"]))
def test_round_trip_with_each_currency_exponent(amount: int, currency: str) -> None:
    exponent = currency_exponent(currency)
    assert decimal_str_to_minor(minor_to_decimal_str(amount, exponent), exponent) == amount


def test_parsing_accepts_fewer_decimals_and_trailing_zeros() -> None:
    assert decimal_str_to_minor("12.3", 2) == 1230
    assert decimal_str_to_minor("12", 2) == 1200
    assert decimal_str_to_minor("12.340", 2) == 1234
    assert decimal_str_to_minor("1500.00", 0) == 1500


@pytest.mark.parametrize("text", ["12.345", "1e3", "12,34", "", "abc", "--1", "0.001"])
def test_parsing_refuses_inexact_or_malformed_amounts(text: str) -> None:
    with pytest.raises(ValueError):
        decimal_str_to_minor(text, 2)
