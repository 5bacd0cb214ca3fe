"""`events.api.PurchaseFastPath` answers `POST /events/purchase` (JSON) before FastAPI's routing: every case is
sent both ways — as `application/json` (the fast path) and as `application/vnd.api+json`, which FastAPI reads as
JSON but the fast path leaves to the `purchase` route — and must get the same status, content type and body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from partners.db.session import Database
from partners.events import api
from partners.settings import Settings
from tests.events.support import Chain, make_chain
from tests.factories import host_headers

FAST = "application/json"
ROUTED = "application/vnd.api+json"


@pytest.fixture
async def chain(database: Database, settings: Settings) -> Chain:
    return await make_chain(database, settings)


@pytest.fixture
def fast_path_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies the fast path answered (so a test cannot pass with every request routed)."""
    calls: list[bytes] = []
    answer = api._answer_purchase

    async def counted(request: Any, body: bytes) -> Any:
        calls.append(body)
        return await answer(request, body)

    monkeypatch.setattr(api, "_answer_purchase", counted)
    return calls


async def _signup(client: httpx.AsyncClient, chain: Chain) -> None:
    body = {"external_id": "cust-1", "email": "cust-1@example.org", "referral_code": "cyd"}
    assert (await client.post("/events/signup", json=body, headers=chain.host)).status_code == 201


async def _send(client: httpx.AsyncClient, content_type: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/events/purchase", content=body, headers={**headers, "content-type": content_type})


def _answer(response: httpx.Response) -> tuple[int, str, Any]:
    assert response.headers["x-request-id"]  # still inside the request-id and access-log middleware
    return response.status_code, response.headers["content-type"], response.json()


def _purchase(external_id: str, **fields: Any) -> bytes:
    body = {"external_id": external_id, "customer": "cust-1", "amount": 10_000, "currency": "USD", "product": "sms"}
    return json.dumps(body | fields).encode()


async def test_a_purchase_is_answered_alike_both_ways(
    client: httpx.AsyncClient, chain: Chain, fast_path_calls: list[bytes]
) -> None:
    await _signup(client, chain)
    fast = _answer(await _send(client, FAST, _purchase("pay-1"), chain.host))
    routed_replay = _answer(await _send(client, ROUTED, _purchase("pay-1"), chain.host))
    assert fast[0] == 201 and [c["level"] for c in fast[2]["commissions"]] == [1, 2, 3]
    assert routed_replay == fast  # the route finds the fast path's stored answer, as a replay does
    routed = _answer(await _send(client, ROUTED, _purchase("pay-2"), chain.host))
    fast_replay = _answer(await _send(client, FAST, _purchase("pay-2"), chain.host))
    assert routed[0] == 201 and fast_replay == routed
    assert fast_path_calls == [_purchase("pay-1"), _purchase("pay-2")]


@pytest.mark.parametrize(
    ("case", "body", "status"),
    [
        ("malformed JSON", b'{"external_id": "pay-9", ', 422),
        ("not an object", b"[1, 2]", 422),
        ("a field missing", json.dumps({"external_id": "pay-9", "customer": "cust-1"}).encode(), 422),
        ("a negative amount", _purchase("pay-9", amount=-5), 422),
        ("an unknown customer", _purchase("pay-9", customer="nobody"), 404),
        ("an id used with another payload", _purchase("pay-1", amount=999), 409),
    ],
)
async def test_bad_input_gets_the_same_problem_both_ways(
    client: httpx.AsyncClient, chain: Chain, fast_path_calls: list[bytes], case: str, body: bytes, status: int
) -> None:
    await _signup(client, chain)
    await _send(client, FAST, _purchase("pay-1"), chain.host)
    fast = _answer(await _send(client, FAST, body, chain.host))
    routed = _answer(await _send(client, ROUTED, body, chain.host))
    assert fast == routed, case
    assert fast[0] == status and fast[1] == "application/problem+json", case
    assert fast_path_calls[-1] == body


@pytest.mark.parametrize(
    ("case", "body", "status"),
    [
        ("a valid purchase", _purchase("pay-9"), 401),
        ("invalid fields", _purchase("pay-9", amount="lots"), 401),  # the key is checked before the fields
        ("malformed JSON", b"{", 422),  # FastAPI decodes the body before it checks the key
    ],
)
async def test_a_missing_key_gets_the_same_answer_both_ways(
    client: httpx.AsyncClient, chain: Chain, case: str, body: bytes, status: int
) -> None:
    fast = _answer(await _send(client, FAST, body, {}))
    routed = _answer(await _send(client, ROUTED, body, {}))
    assert fast == routed, case
    assert fast[0] == status, case


async def test_a_key_without_the_events_scope_is_403_both_ways(
    client: httpx.AsyncClient, database: Database, settings: Settings, chain: Chain
) -> None:
    async with database.write() as session:
        reader = await host_headers(session, settings, "partners:read")
    fast = _answer(await _send(client, FAST, _purchase("pay-9"), reader))
    routed = _answer(await _send(client, ROUTED, _purchase("pay-9"), reader))
    assert fast == routed
    assert fast[0] == 403


async def test_other_requests_go_on_to_the_routes(
    client: httpx.AsyncClient, chain: Chain, fast_path_calls: list[bytes]
) -> None:
    await _signup(client, chain)
    empty = await _send(client, FAST, b"", chain.host)  # FastAPI's own answer for an empty body
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body"
    assert (await client.get("/events/purchase", headers=chain.host)).status_code == 405
    assert fast_path_calls == []


async def test_an_unexpected_failure_is_the_same_500_both_ways(
    app: Any, chain: Chain, monkeypatch: pytest.MonkeyPatch, fast_path_calls: list[bytes]
) -> None:
    async def database_gone(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(app.state.purchase_batcher, "record", database_gone)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await _signup(client, chain)
        fast = await _send(client, FAST, _purchase("pay-9"), chain.host)
        routed = await _send(client, ROUTED, _purchase("pay-9"), chain.host)
    assert (fast.status_code, fast.headers["content-type"], fast.json()) == (
        routed.status_code,
        routed.headers["content-type"],
        routed.json(),
    )
    assert fast.status_code == 500 and fast.headers["content-type"] == "application/problem+json"
    assert fast_path_calls == [_purchase("pay-9")]
