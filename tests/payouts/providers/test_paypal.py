from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partners.payouts.providers import paypal
from partners.payouts.providers.base import PayoutInstruction, ProviderError
from partners.payouts.providers.paypal import PayPalProvider, paypal_amount, paypal_value_to_minor, sender_batch_id

from .paypal_server import PayPalState, running_paypal
from .support import instruction, provider_settings


@pytest.fixture
def server() -> Iterator[PayPalState]:
    with running_paypal() as state:
        yield state


class Sleeps:
    """Stands in for asyncio.sleep: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_provider(state: PayPalState, sleeps: Sleeps | None = None, **overrides: object) -> PayPalProvider:
    values: dict[str, object] = {
        "PARTNERS_PAYPAL_BASE_URL": state.base_url,
        "PARTNERS_PAYPAL_CLIENT_ID": state.client_id,
        "PARTNERS_PAYPAL_CLIENT_SECRET": state.client_secret,
        "PARTNERS_PAYPAL_POLL_ATTEMPTS": 3,
        "PARTNERS_PAYPAL_POLL_INTERVAL_SECONDS": 2,
    }
    settings = provider_settings(**{**values, **overrides})
    return PayPalProvider(settings, backoff_seconds=0.5, sleep=sleeps or Sleeps())


def pay(payout_id: int, amount: int, email: str, currency: str = "USD") -> PayoutInstruction:
    return instruction(payout_id, amount, currency, "paypal", {"email": email})


def statuses(execution: paypal.BatchExecution) -> dict[int, str]:
    return {r.payout_id: r.status for r in execution.results}


async def test_batch_is_created_polled_and_paid(server: PayPalState) -> None:
    sleeps = Sleeps()
    items = [pay(1, 1234, "asha@example.com"), pay(2, 5, "ben@example.com"), pay(3, 1500, "jp@example.com", "JPY")]

    execution = await make_provider(server, sleeps).execute(77, items)

    assert statuses(execution) == {1: "paid", 2: "paid", 3: "paid"}
    (batch,) = server.batches.values()
    assert execution.remote_reference == batch.payout_batch_id
    assert all(r.reference and r.reference.startswith("ITEM") for r in execution.results)
    (body,) = server.create_bodies
    assert body["sender_batch_header"]["sender_batch_id"] == sender_batch_id(77)
    assert [(i["recipient_type"], i["receiver"], i["amount"], i["sender_item_id"]) for i in body["items"]] == [
        ("EMAIL", "asha@example.com", {"value": "12.34", "currency": "USD"}, "1"),
        ("EMAIL", "ben@example.com", {"value": "0.05", "currency": "USD"}, "2"),
        ("EMAIL", "jp@example.com", {"value": "1500", "currency": "JPY"}, "3"),
    ]
    assert server.count("POST", "/v1/oauth2/token") == 1
    assert server.count("GET", "/v1/payments/payouts/") == 2  # PENDING first, then SUCCESS
    assert sleeps.delays == [2]


async def test_failed_unclaimed_and_returned_items_map_to_failed_and_processing(server: PayPalState) -> None:
    server.set_outcome(
        "nobody@example.com", "FAILED", {"name": "RECEIVER_UNREGISTERED", "message": "Receiver is unregistered"}
    )
    server.set_outcome("later@example.com", "UNCLAIMED")
    server.set_outcome("gone@example.com", "RETURNED")
    server.set_outcome("held@example.com", "ONHOLD")
    items = [
        pay(1, 1000, "ok@example.com"),
        pay(2, 1000, "nobody@example.com"),
        pay(3, 1000, "later@example.com"),
        pay(4, 1000, "gone@example.com"),
        pay(5, 1000, "held@example.com"),
    ]

    execution = await make_provider(server).execute(5, items)

    by_id = {r.payout_id: r for r in execution.results}
    assert statuses(execution) == {1: "paid", 2: "failed", 3: "processing", 4: "failed", 5: "processing"}
    assert by_id[2].failure_reason == "PayPal: Receiver is unregistered"
    assert by_id[4].failure_reason == "PayPal: payment returned"
    # bounded: one read, then at most PARTNERS_PAYPAL_POLL_ATTEMPTS more while items stay processing
    assert server.count("GET", "/v1/payments/payouts/") == 1 + 3


async def test_a_500_then_ok_retries_without_a_second_batch(server: PayPalState) -> None:
    sleeps = Sleeps()
    server.fail_next("create", "500")

    execution = await make_provider(server, sleeps).execute(8, [pay(1, 2500, "asha@example.com")])

    assert statuses(execution) == {1: "paid"}
    assert server.count("POST", "/v1/payments/payouts") == 2
    assert len(server.batches) == 1
    assert sleeps.delays[0] == 0.5


async def test_a_lost_response_is_found_by_its_sender_batch_id_not_paid_twice(server: PayPalState) -> None:
    server.fail_next("create", "500-after-create")  # PayPal created the batch; the answer was lost

    execution = await make_provider(server).execute(9, [pay(1, 2500, "asha@example.com")])

    assert statuses(execution) == {1: "paid"}
    assert server.count("POST", "/v1/payments/payouts") == 2  # the retry got "already exists" + a link
    (batch,) = server.batches.values()
    assert execution.remote_reference == batch.payout_batch_id
    assert len(batch.items) == 1


async def test_a_dropped_connection_is_retried(server: PayPalState) -> None:
    server.fail_next("create", "drop")
    server.fail_next("get", "drop", "500")

    execution = await make_provider(server).execute(10, [pay(1, 100, "asha@example.com")])

    assert statuses(execution) == {1: "paid"}
    assert len(server.batches) == 1


async def test_running_the_job_twice_pays_once(server: PayPalState) -> None:
    items = [pay(1, 700, "asha@example.com"), pay(2, 800, "ben@example.com")]
    provider = make_provider(server)

    first = await provider.execute(11, items)
    second = await make_provider(server).execute(11, items)

    assert statuses(first) == statuses(second) == {1: "paid", 2: "paid"}
    assert len(server.batches) == 1
    assert first.remote_reference == second.remote_reference
    assert [r.reference for r in first.results] == [r.reference for r in second.results]


async def test_persistent_server_errors_back_off_then_raise_for_the_job_to_retry(server: PayPalState) -> None:
    sleeps = Sleeps()
    server.fail_next("create", "500", "500", "500", "500")

    with pytest.raises(ProviderError, match="after 4 attempts"):
        await make_provider(server, sleeps).execute(12, [pay(1, 100, "asha@example.com")])

    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert server.batches == {}


async def test_wrong_credentials_are_a_provider_error(server: PayPalState) -> None:
    provider = make_provider(server, PARTNERS_PAYPAL_CLIENT_SECRET="wrong")
    with pytest.raises(ProviderError, match="client credentials"):
        await provider.execute(13, [pay(1, 100, "asha@example.com")])
    assert server.batches == {}


async def test_an_expired_token_is_renewed(server: PayPalState) -> None:
    provider = make_provider(server)
    await provider.execute(14, [pay(1, 100, "asha@example.com")])
    server.expire_tokens()

    execution = await provider.execute(15, [pay(2, 100, "ben@example.com")])

    assert statuses(execution) == {2: "paid"}
    assert server.count("POST", "/v1/oauth2/token") == 2


async def test_payouts_paypal_cannot_take_fail_without_reaching_paypal(server: PayPalState) -> None:
    items = [
        pay(1, 100, "not-an-email"),
        pay(2, 12345, "hu@example.com", "HUF"),  # 123.45 HUF: PayPal takes whole forints only
        pay(3, 100, "in@example.com", "INR"),
    ]

    execution = await make_provider(server).execute(16, items)

    assert [(r.payout_id, r.status, r.failure_reason) for r in execution.results] == [
        (1, "failed", "the PayPal e-mail address is missing or invalid"),
        (2, "failed", "PayPal pays HUF in whole units only"),
        (3, "failed", "PayPal does not pay out in INR"),
    ]
    assert server.requests == []


async def test_a_batch_paypal_refuses_fails_every_payout_with_the_reason(server: PayPalState) -> None:
    server.reject_with = {"name": "INSUFFICIENT_FUNDS", "message": "Sender does not have sufficient funds."}

    execution = await make_provider(server).execute(17, [pay(1, 100, "a@example.com"), pay(2, 5, "b@example.com")])

    assert statuses(execution) == {1: "failed", 2: "failed"}
    assert execution.results[0].failure_reason == (
        "PayPal refused the payout batch: INSUFFICIENT_FUNDS: Sender does not have sufficient funds."
    )


async def test_a_denied_batch_fails_its_items(server: PayPalState) -> None:
    server.deny_batches = True

    execution = await make_provider(server).execute(18, [pay(1, 100, "a@example.com")])

    assert statuses(execution) == {1: "failed"}
    assert execution.results[0].failure_reason == "PayPal: The payout batch was denied."


async def test_a_foreign_batch_with_our_sender_batch_id_is_refused(server: PayPalState) -> None:
    server.seed_batch(
        sender_batch_id(19),
        [{"receiver": "x@example.com", "amount": {"value": "9.99", "currency": "USD"}, "sender_item_id": "1"}],
    )

    with pytest.raises(ProviderError, match="does not hold payout 1"):
        await make_provider(server).execute(19, [pay(1, 100, "a@example.com")])


async def test_poll_reads_the_current_status(server: PayPalState) -> None:
    server.pending_gets = 10
    items = [pay(1, 100, "a@example.com"), pay(2, 200, "b@example.com")]
    provider = make_provider(server, PARTNERS_PAYPAL_POLL_ATTEMPTS=0)
    execution = await provider.execute(20, items)
    assert statuses(execution) == {1: "processing", 2: "processing"}

    server.pending_gets = 0
    polled = await provider.poll(20, execution.remote_reference, items)

    assert statuses(polled) == {1: "paid", 2: "paid"}
    assert len(server.batches) == 1


async def test_poll_without_a_remote_reference_finds_the_batch_again(server: PayPalState) -> None:
    items = [pay(1, 100, "a@example.com")]
    provider = make_provider(server)
    execution = await provider.execute(21, items)

    polled = await provider.poll(21, None, items)

    assert polled.remote_reference == execution.remote_reference
    assert statuses(polled) == {1: "paid"}
    assert len(server.batches) == 1


async def test_every_page_of_a_large_batch_is_read(server: PayPalState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paypal, "PAGE_SIZE", 2)
    server.pending_gets = 0
    items = [pay(i, 100 * i, f"p{i}@example.com") for i in range(1, 6)]

    execution = await make_provider(server).execute(22, items)

    assert statuses(execution) == {i: "paid" for i in range(1, 6)}
    assert server.count("GET", "/v1/payments/payouts/") == 3


@pytest.mark.parametrize(
    ("amount", "currency", "value"),
    [(1234, "USD", "12.34"), (5, "EUR", "0.05"), (1500, "JPY", "1500"), (150000, "HUF", "1500"), (100, "TWD", "1")],
)
def test_paypal_amounts_are_exact(amount: int, currency: str, value: str) -> None:
    assert paypal_amount(amount, currency) == value


@given(st.integers(min_value=1, max_value=10**15), st.sampled_from(["USD", "EUR", "GBP", "JPY", "CAD"]))
def test_paypal_amount_round_trips(amount: int, currency: str) -> None:
    assert paypal_value_to_minor(paypal_amount(amount, currency), currency) == amount
