"""Payout methods: validation per rail, encryption at rest, masking, email confirmation and the cool-down."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from partners.db.session import Database
from partners.db.types import utcnow
from partners.jobs.models import Job
from partners.kit.errors import Unprocessable
from partners.payouts import service
from partners.payouts.methods import mask_details, validate_details
from partners.payouts.models import PayoutMethod
from partners.programs.models import Program
from partners.settings import Settings
from tests.payouts.support import (
    World,
    confirmed_method,
    earn,
    headers_for,
    make_world,
)

IBAN = "DE89370400440532013000"
BIC = "COBADEFFXXX"
ROUTING = "021000021"
BTC_BECH32 = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
BTC_BASE58 = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
ETH_CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


# --- validation, no database -------------------------------------------------------------------------------


def test_sepa_details_are_normalised_and_checked_with_schwifty() -> None:
    details = validate_details(
        "sepa", {"iban": "de89 3704 0044 0532 0130 00", "bic": "cobadeffxxx", "holder": " Alice  Example "},
        currency="EUR",
    )  # fmt: skip
    assert details == {"iban": IBAN, "bic": BIC, "holder": "Alice Example"}
    # the BIC can be derived from the IBAN's bank code
    assert validate_details("sepa", {"iban": IBAN, "holder": "A"}, currency="EUR")["bic"] == BIC


@pytest.mark.parametrize(
    ("details", "currency", "field"),
    [
        ({"iban": "DE89370400440532013001", "bic": BIC, "holder": "A"}, "EUR", "details.iban"),
        ({"iban": IBAN, "bic": "NOTABIC", "holder": "A"}, "EUR", "details.bic"),
        ({"iban": IBAN, "bic": "BNPAFRPPXXX", "holder": "A"}, "EUR", "details.bic"),
        ({"iban": IBAN, "bic": BIC, "holder": ""}, "EUR", "details.holder"),
        ({"iban": IBAN, "bic": BIC, "holder": "A"}, "USD", "currency"),
        ({"iban": IBAN, "bic": BIC, "holder": "A", "pin": "1"}, "EUR", "details.pin"),
    ],
)
def test_bad_sepa_details_name_the_field(details: dict[str, str], currency: str, field: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        validate_details("sepa", details, currency=currency)
    assert caught.value.field == field


def test_ach_routing_checksum_and_account_number() -> None:
    good = {"routing_number": ROUTING, "account_number": "123456789", "holder": "Alice"}
    assert validate_details("ach", good, currency="USD")["account_type"] == "checking"
    for key, value in (("routing_number", "021000022"), ("account_number", "12ab"), ("account_type", "gold")):
        with pytest.raises(Unprocessable) as caught:
            validate_details("ach", {**good, key: value}, currency="USD")
        assert caught.value.field == f"details.{key}"


def test_crypto_addresses_are_checked_by_format_and_checksum() -> None:
    for network, address in (("bitcoin", BTC_BECH32), ("bitcoin", BTC_BASE58), ("ethereum", ETH_CHECKSUMMED)):
        assert validate_details("crypto", {"network": network, "address": address}, currency="USD")["address"]
    broken = [
        ("bitcoin", BTC_BECH32[:-1] + "5"),  # bech32 checksum
        ("bitcoin", BTC_BASE58[:-1] + "3"),  # base58check checksum
        ("ethereum", ETH_CHECKSUMMED.replace("a", "A", 1)),  # EIP-55 checksum
        ("ethereum", "0x1234"),
        ("dogecoin", BTC_BASE58),
    ]
    for network, address in broken:
        with pytest.raises(Unprocessable):
            validate_details("crypto", {"network": network, "address": address}, currency="USD")


def test_paypal_email_and_masking() -> None:
    details = validate_details("paypal", {"email": "Alice@Example.com"}, currency="USD")
    assert mask_details("paypal", details) == {"email": "A***@example.com"}
    with pytest.raises(Unprocessable):
        validate_details("paypal", {"email": "not-an-email"}, currency="USD")
    masked = mask_details("sepa", {"iban": IBAN, "bic": BIC, "holder": "Alice"})
    assert masked["iban"] == "DE89**************3000"
    assert mask_details("ach", {"account_number": "123456789"})["account_number"] == "*****6789"


# --- through the API ---------------------------------------------------------------------------------------


@pytest.fixture
async def world(database: Database, settings: Settings) -> World:
    return await make_world(database, settings)


async def _token_from_mail(database: Database, email: str) -> str:
    async with database.read() as session:
        jobs = list(await session.scalars(sa.select(Job).where(Job.name == "mail.send").order_by(Job.id)))
    texts = [job.payload["text"] for job in jobs if job.payload["to"] == email]
    assert texts, "no confirmation email was queued"
    match = re.search(r"\n\n([A-Za-z0-9_-]{30,})\n\n", texts[-1])
    assert match, texts[-1]
    return match.group(1)


async def test_details_are_encrypted_at_rest_masked_in_the_api_and_confirmed_by_email(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    body = {"method": "sepa", "details": {"iban": IBAN, "bic": BIC, "holder": "Alice Example"}}
    response = await client.put("/affiliate/payout/methods/EUR", json=body, headers=alice)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["details"]["iban"] == "DE89**************3000"
    assert shown["confirmed"] is False and shown["ready"] is False
    assert IBAN not in response.text

    async with database.read() as session:
        row = await session.scalar(sa.select(PayoutMethod).where(PayoutMethod.partner_id == world.alice.id))
    assert row is not None
    assert IBAN not in row.details_encrypted and "Alice" not in row.details_encrypted
    assert service.decrypt_details(settings, row.details_encrypted, "sepa")["iban"] == IBAN

    token = await _token_from_mail(database, world.alice.email)
    bob = await headers_for(database, settings, world.bob)
    stolen = await client.post("/affiliate/payout/methods/confirm", json={"token": token}, headers=bob)
    assert stolen.status_code == 422
    assert stolen.json()["errors"][0]["field"] == "token"
    confirmed = await client.post("/affiliate/payout/methods/confirm", json={"token": token}, headers=alice)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["confirmed"] is True
    assert confirmed.json()["ready"] is True  # the first method has no cool-down
    listed = (await client.get("/affiliate/payout/methods", headers=alice)).json()
    assert [(item["currency"], item["method"], item["details"]["iban"]) for item in listed] == [
        ("EUR", "sepa", "DE89**************3000")
    ]
    assert (await client.get("/affiliate/payout/methods", headers=bob)).json() == []


async def test_changing_details_pauses_payouts_for_the_cooldown(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    await confirmed_method(database, settings, world.alice, method="paypal", details={"email": "a@example.com"})
    async with database.write() as session:
        await earn(session, world.program, world.alice, 10_000)
    alice = await headers_for(database, settings, world.alice)

    changed = await client.put(
        "/affiliate/payout/methods/USD", json={"method": "paypal", "details": {"email": "thief@example.net"}},
        headers=alice,
    )  # fmt: skip
    assert changed.status_code == 200
    token = await _token_from_mail(database, world.alice.email)
    await client.post("/affiliate/payout/methods/confirm", json={"token": token}, headers=alice)

    refused = await client.post("/affiliate/payout/request", json={"amount": 6000, "currency": "USD"}, headers=alice)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["errors"][0]["field"] == "method"
    assert "paypal" in problem["detail"] and "changed recently" in problem["detail"]

    async with database.write() as session:
        row = await service.find_method(session, world.alice.id, "USD")
        assert row is not None and row.cooldown_until is not None
        expected = row.updated_at + timedelta(hours=settings.payout_details_cooldown_hours)
        assert row.cooldown_until == expected
        # the scheduled run skips the partner while the cool-down lasts...
        program = await session.get(Program, world.program.id)
        assert program is not None
        program.payout_day = 1
        assert await service.run_scheduled_payouts(session, settings, now=utcnow()) == 0
        row.cooldown_until = utcnow() - timedelta(seconds=1)  # ...and the wait is over
    accepted = await client.post("/affiliate/payout/request", json={"amount": 6000, "currency": "USD"}, headers=alice)
    assert accepted.status_code == 201, accepted.text


async def test_requests_need_a_confirmed_method_for_the_currency(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    async with database.write() as session:
        await earn(session, world.program, world.alice, 10_000)
    alice = await headers_for(database, settings, world.alice)
    none = await client.post("/affiliate/payout/request", json={"amount": 6000, "currency": "USD"}, headers=alice)
    assert none.status_code == 422 and none.json()["errors"][0]["field"] == "method"
    await client.put(
        "/affiliate/payout/methods/USD", json={"method": "paypal", "details": {"email": "a@example.com"}},
        headers=alice,
    )  # fmt: skip
    unconfirmed = await client.post(
        "/affiliate/payout/request", json={"amount": 6000, "currency": "USD"}, headers=alice
    )
    assert unconfirmed.status_code == 422
    assert "not confirmed" in unconfirmed.json()["detail"]


async def test_crypto_only_where_the_program_allows_it(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    body = {"method": "crypto", "details": {"network": "bitcoin", "address": BTC_BECH32}}
    refused = await client.put("/affiliate/payout/methods/USD", json=body, headers=alice)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "method"
    async with database.write() as session:
        program = await session.get(Program, world.program.id)
        assert program is not None
        program.allow_crypto_payouts = True
    allowed = await client.put("/affiliate/payout/methods/USD", json=body, headers=alice)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["details"]["address"] == "bc1qw5...f3t4"
    bad = {"method": "crypto", "details": {"network": "bitcoin", "address": BTC_BECH32[:-1] + "5"}}
    invalid = await client.put("/affiliate/payout/methods/USD", json=bad, headers=alice)
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "details.address"


async def test_platform_credit_needs_no_confirmation(
    client: httpx.AsyncClient, database: Database, settings: Settings, world: World
) -> None:
    alice = await headers_for(database, settings, world.alice)
    response = await client.put("/affiliate/payout/methods/USD", json={"method": "platform_credit"}, headers=alice)
    assert response.status_code == 200
    assert response.json()["ready"] is True
    assert response.json()["details"] == {"account_reference": str(world.alice.id)}
