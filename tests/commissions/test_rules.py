"""The engine's pure arithmetic, property-tested against exact rational arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from partners.commissions.rules import (
    add_months,
    bonus_rate,
    level_share,
    reversal_delta,
    reversed_for,
    round_half_even_div,
    split_commissions,
    within_duration,
)

amounts = st.integers(min_value=0, max_value=10**13)
positive_amounts = st.integers(min_value=1, max_value=10**13)
rates = st.integers(min_value=0, max_value=10_000)


def exact_half_even(value: Fraction) -> int:
    """The reference: Python's round() on a Fraction rounds half to even, exactly."""
    return round(value)


@given(amounts, rates)
def test_a_share_is_exactly_round_half_even_of_amount_times_rate(amount: int, rate: int) -> None:
    assert level_share(amount, rate) == exact_half_even(Fraction(amount * rate, 10_000))


@pytest.mark.parametrize(
    ("amount", "rate", "share"),
    [
        (250, 500, 12),  # 12.5 -> 12 (even)
        (350, 500, 18),  # 17.5 -> 18 (even)
        (12345, 500, 617),  # 617.25
        (12345, 200, 247),  # 246.9
        (12345, 100, 123),  # 123.45
        (1, 5000, 0),  # 0.5 -> 0
        (3, 5000, 2),  # 1.5 -> 2
        (0, 10_000, 0),
        (999, 10_000, 999),
    ],
)
def test_known_shares(amount: int, rate: int, share: int) -> None:
    assert level_share(amount, rate) == share


@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=1, max_value=10**6))
def test_integer_division_rounds_half_even_for_any_sign(numerator: int, denominator: int) -> None:
    assert round_half_even_div(numerator, denominator) == exact_half_even(Fraction(numerator, denominator))


@given(amounts, st.lists(rates, min_size=1, max_size=3))
def test_split_shares_are_exact_and_never_exceed_the_sale(amount: int, level_rates: list[int]) -> None:
    if sum(level_rates) > 10_000:
        with pytest.raises(ValueError, match="more than 100%"):
            split_commissions(amount, level_rates)
        return
    exact = [level_share(amount, rate) for rate in level_rates]
    if sum(exact) > amount:  # only rates near 100% on tiny sales; refused rather than re-rounded
        with pytest.raises(ValueError, match="exceed"):
            split_commissions(amount, level_rates)
        return
    shares = split_commissions(amount, level_rates)
    assert shares == exact
    assert sum(shares) <= amount
    assert all(share >= 0 for share in shares)


@given(amounts, st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=3))
def test_realistic_rate_cards_always_split(amount: int, level_rates: list[int]) -> None:
    """Rate cards up to 57.5% in total (the white-label maximum) never trip the guard on sales of 4+ cents."""
    assume(sum(level_rates) <= 5_750 and amount >= 4)
    assert sum(split_commissions(amount, level_rates)) <= amount


def test_rates_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        level_share(100, 10_001)
    with pytest.raises(ValueError):
        level_share(100, -1)
    with pytest.raises(ValueError):
        level_share(-1, 100)


@st.composite
def refund_sequences(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A sale, its commission (any share of it), and cumulative refund totals climbing to the amount."""
    amount = draw(positive_amounts)
    commission = level_share(amount, draw(rates))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=amount), max_size=8)))
    return amount, commission, [*cuts, amount]


@given(refund_sequences())
def test_partial_refunds_reaching_the_amount_reverse_exactly_the_commission(
    case: tuple[int, int, list[int]],
) -> None:
    amount, commission, cumulative = case
    reversed_total, previous = 0, 0
    for refunded in cumulative:
        delta = reversal_delta(commission, amount, previous, refunded)
        assert delta >= 0  # monotone: a refund never gives money back to the partner
        reversed_total += delta
        assert reversed_total <= commission  # never more than the commission
        assert reversed_total == reversed_for(commission, amount, refunded)  # no drift
        previous = refunded
    assert reversed_total == commission


@given(positive_amounts, rates, st.data())
def test_reversed_is_round_half_even_of_the_pro_rata_share(amount: int, rate: int, data: st.DataObject) -> None:
    commission = level_share(amount, rate)
    refunded = data.draw(st.integers(min_value=0, max_value=amount))
    assert reversed_for(commission, amount, refunded) == exact_half_even(Fraction(commission * refunded, amount))


def test_refund_bounds_are_enforced() -> None:
    with pytest.raises(ValueError):
        reversed_for(10, 100, 101)
    with pytest.raises(ValueError):
        reversal_delta(10, 100, 50, 40)


STEPS = [{"threshold": 100_000, "rate_bps": 750}, {"threshold": 500_000, "rate_bps": 1000}]


@pytest.mark.parametrize(
    ("revenue", "rate"),
    [(0, 500), (99_999, 500), (100_000, 750), (499_999, 750), (500_000, 1000), (10**9, 1000)],
)
def test_bonus_steps_lift_the_base_by_monthly_revenue(revenue: int, rate: int) -> None:
    assert bonus_rate(500, 1000, STEPS, revenue) == rate


def test_bonus_never_goes_above_the_ceiling_nor_below_the_base() -> None:
    assert bonus_rate(500, 800, STEPS, 10**9) == 800
    assert bonus_rate(500, 1000, [{"threshold": 0, "rate_bps": 300}], 10) == 500
    # steps in any order: the highest reached step wins
    assert bonus_rate(500, 1000, list(reversed(STEPS)), 600_000) == 1000


@given(
    rates,
    rates,
    st.lists(st.fixed_dictionaries({"threshold": amounts, "rate_bps": rates}), max_size=4),
    amounts,
)
def test_bonus_rate_stays_in_range(base: int, ceiling: int, steps: list[dict[str, int]], revenue: int) -> None:
    assume(base <= ceiling)
    assert base <= bonus_rate(base, ceiling, steps, revenue) <= ceiling


FIRST = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    assert add_months(FIRST, 1) == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert add_months(FIRST, 13) == datetime(2027, 2, 28, 9, 0, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 15, tzinfo=UTC), 2) == datetime(2027, 1, 15, tzinfo=UTC)


def test_duration_rules() -> None:
    assert within_duration("lifetime", None, FIRST, 1000, FIRST + timedelta(days=5000))
    end = datetime(2026, 4, 30, 9, 0, tzinfo=UTC)  # 3 months after Jan 31
    assert within_duration("months", 3, FIRST, 5, end - timedelta(seconds=1))
    assert not within_duration("months", 3, FIRST, 5, end)
    assert within_duration("months", 1, None, 1, FIRST)  # the first purchase itself
    assert within_duration("purchases", 2, FIRST, 2, FIRST)
    assert not within_duration("purchases", 2, FIRST, 3, FIRST)
    with pytest.raises(ValueError):
        within_duration("months", None, FIRST, 1, FIRST)
    with pytest.raises(ValueError):
        within_duration("forever", 1, FIRST, 1, FIRST)
