"""attribute_customer: the precedence documented in partners.tracking.service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from partners.affiliates.models import AgreementVersion, Partner
from partners.db.session import Database
from partners.db.types import utcnow
from partners.programs.models import Program
from partners.settings import Settings
from partners.tracking.models import Coupon, Customer
from partners.tracking.service import attribute_customer, find_customer, hash_ip
from tests.factories import create_partner, create_program
from tests.tracking.conftest import World, add_click, add_link

NOW = utcnow()


async def signup(
    database: Database, settings: Settings, program: Program, external_id: str = "cust-1", **given: Any
) -> Customer:
    values: dict[str, Any] = {
        "email": "customer@example.com",
        "click_id": None,
        "referral_code": None,
        "coupon_code": None,
        "ip": None,
        "now": NOW,
    } | given
    async with database.write() as session:
        return await attribute_customer(session, settings, program=program, external_id=external_id, **values)


async def add_coupon(database: Database, partner: Partner, code: str, active: bool = True) -> None:
    async with database.write() as session:
        session.add(Coupon(code=code, partner_id=partner.id, active=active))


async def set_attribution_model(database: Database, program: Program, model: str) -> Program:
    async with database.write() as session:
        stored = await session.get(Program, program.id)
        assert stored is not None
        stored.attribution_model = model
    return stored


async def test_a_valid_click_beats_coupon_and_referral_code(
    database: Database, settings: Settings, world: World
) -> None:
    click_id = await add_click(database, await add_link(database, world.alice), at=NOW - timedelta(days=2))
    await add_coupon(database, world.bob, "BOB10")
    customer = await signup(
        database,
        settings,
        world.program,
        click_id=click_id,
        coupon_code="BOB10",
        referral_code=world.bob.referral_code,
        ip="198.51.100.4",
    )
    assert (customer.partner_id, customer.attributed_via, customer.click_id) == (
        world.alice.id,
        "click",
        click_id,
    )
    assert customer.attributed_at == NOW
    assert customer.program_id == world.program.id
    assert customer.signup_ip_hash == hash_ip(settings, "198.51.100.4")


async def test_a_coupon_beats_a_referral_code_and_is_matched_ignoring_case(
    database: Database, settings: Settings, world: World
) -> None:
    await add_coupon(database, world.bob, "BOB10")
    customer = await signup(
        database, settings, world.program, coupon_code="bob10", referral_code=world.alice.referral_code
    )
    assert (customer.partner_id, customer.attributed_via, customer.click_id) == (world.bob.id, "coupon", None)


async def test_an_inactive_coupon_falls_back_to_the_referral_code(
    database: Database, settings: Settings, world: World
) -> None:
    await add_coupon(database, world.bob, "OLD", active=False)
    customer = await signup(
        database, settings, world.program, coupon_code="OLD", referral_code=world.alice.referral_code
    )
    assert (customer.partner_id, customer.attributed_via) == (world.alice.id, "referral_code")


async def test_an_unknown_click_id_falls_back_to_the_coupon(
    database: Database, settings: Settings, world: World
) -> None:
    await add_coupon(database, world.bob, "BOB10")
    customer = await signup(database, settings, world.program, click_id="f" * 32, coupon_code="BOB10")
    assert (customer.partner_id, customer.attributed_via) == (world.bob.id, "coupon")


async def test_a_click_outside_the_cookie_window_falls_back_to_the_referral_code(
    database: Database, settings: Settings, world: World
) -> None:
    link = await add_link(database, world.alice)
    click_id = await add_click(database, link, at=NOW - timedelta(days=30, seconds=1))
    customer = await signup(database, settings, world.program, click_id=click_id, referral_code=world.bob.referral_code)
    assert (customer.partner_id, customer.attributed_via) == (world.bob.id, "referral_code")

    # The same click, seen by a signup still inside the 30-day window, attributes.
    inside = await signup(
        database, settings, world.program, "cust-2", click_id=click_id, now=NOW - timedelta(seconds=2)
    )
    assert (inside.partner_id, inside.attributed_via) == (world.alice.id, "click")


async def test_a_bot_click_is_not_attributed(database: Database, settings: Settings, world: World) -> None:
    click_id = await add_click(database, await add_link(database, world.alice), is_bot=True)
    customer = await signup(database, settings, world.program, click_id=click_id)
    assert customer.partner_id is None
    assert customer.attributed_via is None


async def test_a_self_referral_is_not_attributed(database: Database, settings: Settings, world: World) -> None:
    click_id = await add_click(database, await add_link(database, world.alice))
    customer = await signup(
        database,
        settings,
        world.program,
        email="Alice@Example.com",
        click_id=click_id,
        referral_code=world.alice.referral_code,
    )
    assert customer.partner_id is None


async def test_a_self_referral_click_falls_through_to_another_partners_coupon(
    database: Database, settings: Settings, world: World
) -> None:
    click_id = await add_click(database, await add_link(database, world.alice))
    await add_coupon(database, world.bob, "BOB10")
    customer = await signup(
        database, settings, world.program, email="alice@example.com", click_id=click_id, coupon_code="BOB10"
    )
    assert (customer.partner_id, customer.attributed_via) == (world.bob.id, "coupon")


async def test_a_partner_who_cannot_earn_is_skipped(database: Database, settings: Settings, world: World) -> None:
    click_id = await add_click(database, await add_link(database, world.alice))
    async with database.write() as session:
        alice = await session.get(Partner, world.alice.id)
        assert alice is not None
        alice.status = "suspended"
        # Bob has not accepted the program's current agreement: he can't earn either.
        session.add(AgreementVersion(program_id=world.program.id, version=1, title="Terms", body="..."))
    customer = await signup(database, settings, world.program, click_id=click_id, referral_code=world.bob.referral_code)
    assert customer.partner_id is None


async def test_a_partner_of_another_program_is_not_attributed(
    database: Database, settings: Settings, world: World
) -> None:
    async with database.write() as session:
        other, tiers = await create_program(session, settings, slug="other", is_default=False)
        outsider = await create_partner(session, other, tiers["starter"])
    customer = await signup(database, settings, world.program, referral_code=outsider.referral_code)
    assert customer.partner_id is None


async def test_an_attributed_customer_keeps_its_partner_for_life(
    database: Database, settings: Settings, world: World
) -> None:
    first = await signup(database, settings, world.program, referral_code=world.alice.referral_code)
    click_id = await add_click(database, await add_link(database, world.bob))
    again = await signup(database, settings, world.program, click_id=click_id, now=NOW + timedelta(days=400))
    assert again.id == first.id
    assert (again.partner_id, again.attributed_via, again.attributed_at) == (
        world.alice.id,
        "referral_code",
        NOW,
    )


async def test_an_unattributed_customer_can_be_attributed_by_a_later_signup(
    database: Database, settings: Settings, world: World
) -> None:
    first = await signup(database, settings, world.program)
    assert first.partner_id is None
    later = await signup(database, settings, world.program, referral_code=world.bob.referral_code)
    assert later.id == first.id
    assert later.partner_id == world.bob.id
    async with database.read() as session:
        assert await find_customer(session, "cust-1") is not None
        assert await find_customer(session, "nobody") is None


async def browser_chain(database: Database, world: World) -> tuple[str, str, str, str]:
    """One browser's clicks, oldest first: expired (Bob), Alice 20 days ago, a bot, Bob 1 day ago."""
    alice_link = await add_link(database, world.alice)
    bob_link = await add_link(database, world.bob)
    expired = await add_click(database, bob_link, at=NOW - timedelta(days=45))
    alices = await add_click(database, alice_link, at=NOW - timedelta(days=20), previous=expired)
    bot = await add_click(database, bob_link, at=NOW - timedelta(days=10), previous=alices, is_bot=True)
    bobs = await add_click(database, bob_link, at=NOW - timedelta(days=1), previous=bot)
    return expired, alices, bot, bobs


async def test_last_click_credits_the_newest_valid_click_of_the_browser(
    database: Database, settings: Settings, world: World
) -> None:
    _expired, _alices, bot, bobs = await browser_chain(database, world)
    customer = await signup(database, settings, world.program, click_id=bobs)
    assert (customer.partner_id, customer.click_id) == (world.bob.id, bobs)
    # Sent the bot's click id, last-click walks back to the newest human click: Alice's.
    from_bot = await signup(database, settings, world.program, "cust-2", click_id=bot)
    assert from_bot.partner_id == world.alice.id


async def test_first_click_credits_the_oldest_click_still_inside_the_window(
    database: Database, settings: Settings, world: World
) -> None:
    program = await set_attribution_model(database, world.program, "first_click")
    _expired, alices, _bot, bobs = await browser_chain(database, world)
    customer = await signup(database, settings, program, click_id=bobs)
    assert (customer.partner_id, customer.attributed_via, customer.click_id) == (
        world.alice.id,
        "click",
        alices,
    )
    # Twenty-one days later Alice's click has left the window: Bob's is now the first one inside it.
    later = await signup(database, settings, program, "cust-2", click_id=bobs, now=NOW + timedelta(days=11))
    assert (later.partner_id, later.click_id) == (world.bob.id, bobs)
