"""PayPal Payouts API: one PayPal batch per payout batch, paid to the partners' PayPal e-mail addresses.

- OAuth2 client credentials: POST /v1/oauth2/token (PARTNERS_PAYPAL_CLIENT_ID / _SECRET), token cached.
- Create: POST /v1/payments/payouts with `sender_batch_id` derived from our batch id. PayPal pays a
  sender_batch_id only once (30 days) and answers a repeat with an error that links to the original batch:
  a retry after a timeout or a 5xx, or a second run of the job, finds that batch instead of paying twice.
- Status: GET /v1/payments/payouts/{payout_batch_id}; item statuses map to paid / failed / processing.
- Transport trouble (network errors, 429, 5xx) is retried with exponential backoff, then raised as
  `ProviderError` so the job retries later (again idempotent).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from partners.payouts.providers.amounts import decimal_str_to_minor, minor_to_decimal_str
from partners.payouts.providers.base import (
    BatchExecution,
    PayoutInstruction,
    ProviderError,
    ProviderResult,
    ResultStatus,
    check_each,
    currency_exponent,
)
from partners.settings import Settings

TOKEN_PATH = "/v1/oauth2/token"
PAYOUTS_PATH = "/v1/payments/payouts"
PAGE_SIZE = 1000  # the largest page GET /v1/payments/payouts/{id} gives

# Currencies PayPal pays out (its currency-codes reference); HUF, JPY and TWD take no decimals there.
PAYPAL_CURRENCIES = frozenset(
    {"AUD", "BRL", "CAD", "CNY", "CZK", "DKK", "EUR", "HKD", "HUF", "ILS", "JPY", "MYR"}
    | {"MXN", "TWD", "NZD", "NOK", "PHP", "PLN", "GBP", "SGD", "SEK", "CHF", "THB", "USD"}
)
PAYPAL_WHOLE_UNIT_CURRENCIES = frozenset({"HUF", "JPY", "TWD"})

ITEM_PAID = frozenset({"SUCCESS"})
ITEM_FAILED = frozenset({"FAILED", "RETURNED", "BLOCKED", "REFUNDED", "REVERSED"})
# PENDING, UNCLAIMED (no PayPal account yet: RETURNED after 30 days), ONHOLD and anything new: processing.
BATCH_REFUSED = frozenset({"DENIED", "CANCELED"})

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_BATCH_LINK = re.compile(r"/v1/payments/payouts/([^/?#]+)$")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class PayPalRefused(Exception):
    """PayPal refused the whole create request for good (4xx other than a duplicate)."""


def paypal_amount(amount: int, currency: str) -> str:
    """Minor units → PayPal's `value` string, exactly; ValueError if PayPal can't take the amount."""
    code = currency.upper()
    if code not in PAYPAL_CURRENCIES:
        raise ValueError(f"PayPal does not pay out in {code}")
    exponent = currency_exponent(code)
    if code in PAYPAL_WHOLE_UNIT_CURRENCIES and exponent > 0:
        whole, rest = divmod(amount, 10**exponent)
        if rest:
            raise ValueError(f"PayPal pays {code} in whole units only")
        return str(whole)
    return minor_to_decimal_str(amount, exponent)


def paypal_value_to_minor(value: str, currency: str) -> int:
    return decimal_str_to_minor(value, currency_exponent(currency))


def sender_batch_id(batch_id: int) -> str:
    return f"namaskah-partners-batch-{batch_id}"


def payout_item(item: PayoutInstruction) -> dict[str, Any]:
    """The Payouts API item for one payout; ValueError says, readably, why PayPal can't pay it."""
    email = item.details.get("email", "").strip()
    if not _EMAIL.fullmatch(email):
        raise ValueError("the PayPal e-mail address is missing or invalid")
    if item.amount <= 0:
        raise ValueError("the amount must be positive")
    return {
        "recipient_type": "EMAIL",
        "amount": {"value": paypal_amount(item.amount, item.currency), "currency": item.currency.upper()},
        "receiver": email,
        "sender_item_id": str(item.payout_id),
        "note": f"Partner payout {item.payout_id}",
    }


def create_payout_body(batch_id: int, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sender_batch_header": {
            "sender_batch_id": sender_batch_id(batch_id),
            "recipient_type": "EMAIL",
            "email_subject": "You have a payout from Namaskah Partners",
            "email_message": "Your partner earnings have been sent to your PayPal account.",
        },
        "items": list(items),
    }


@dataclass
class RemoteBatch:
    payout_batch_id: str
    sender_batch_id: str
    batch_status: str
    items: dict[str, dict[str, Any]]  # sender_item_id -> item


def item_result(payout_id: int, item: Mapping[str, Any] | None, batch_status: str) -> ProviderResult:
    if item is None:
        if batch_status in BATCH_REFUSED:
            return ProviderResult(payout_id, "failed", failure_reason=f"PayPal {batch_status.lower()} the batch")
        return ProviderResult(payout_id, "processing")
    status = str(item.get("transaction_status", "PENDING")).upper()
    reference = item.get("payout_item_id")
    result: ResultStatus = "processing"
    if status in ITEM_PAID:
        result = "paid"
    elif status in ITEM_FAILED or batch_status in BATCH_REFUSED:
        result = "failed"
    reason = failure_reason(item, status) if result == "failed" else None
    return ProviderResult(payout_id, result, reference=reference, failure_reason=reason)


def remote_result(remote: RemoteBatch, payout_id: int) -> ProviderResult:
    return item_result(payout_id, remote.items.get(str(payout_id)), remote.batch_status)


def failed(payout_id: int, reason: str) -> ProviderResult:
    return ProviderResult(payout_id, "failed", failure_reason=reason)


def item_payout_id(item: Mapping[str, Any]) -> int:
    return int(item["sender_item_id"])


def failure_reason(item: Mapping[str, Any], status: str) -> str:
    errors = item.get("errors")
    if isinstance(errors, Mapping) and errors.get("message"):
        return f"PayPal: {errors['message']}"
    if isinstance(errors, Mapping) and errors.get("name"):
        return f"PayPal: {errors['name']}"
    return f"PayPal: payment {status.lower()}"


class PayPalClient:
    """A small Payouts API client over one httpx connection pool. Retries transport trouble itself."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        client_id: str,
        client_secret: str,
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        token_cache: dict[str, Any] | None = None,
    ) -> None:
        self.http = http
        self.client_id = client_id
        self.client_secret = client_secret
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.token_cache = token_cache if token_cache is not None else {}

    async def send(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One API request with the bearer token; an expired token (401) is renewed once per attempt."""

        async def attempt() -> httpx.Response:
            response = await self.http.request(method, path, headers=await self._headers(headers), **kwargs)
            if response.status_code == 401:
                self.token_cache.clear()
                response = await self.http.request(method, path, headers=await self._headers(headers), **kwargs)
            return response

        return await self.retrying(f"{method} {path}", attempt)

    async def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**(extra or {}), "Authorization": f"Bearer {await self.token()}"}

    async def retrying(self, what: str, request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        """Network errors, 429 and 5xx are retried with exponential backoff (at least Retry-After)."""
        delay = self.backoff_seconds
        for attempt in range(self.attempts):
            if attempt:
                await self.sleep(delay)
                delay *= 2
            try:
                response = await request()
            except httpx.TransportError:
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            delay = max(delay, _retry_after_seconds(response))
        raise ProviderError(f"PayPal {what} failed after {self.attempts} attempts")

    async def token(self) -> str:
        cached = self.token_cache.get("token")
        if cached and self.token_cache.get("expires_at", 0.0) > time.monotonic():
            return str(cached)

        async def request() -> httpx.Response:
            return await self.http.post(
                TOKEN_PATH,
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.client_secret),
                headers={"Accept": "application/json"},
            )

        response = await self.retrying("token request", request)
        if response.status_code != 200:
            raise ProviderError(f"PayPal refused the client credentials (HTTP {response.status_code})")
        body = _json(response)
        lifetime = float(body.get("expires_in", 300))
        self.token_cache.update(token=body["access_token"], expires_at=time.monotonic() + lifetime - 60)
        return str(body["access_token"])

    async def create_or_find(self, body: Mapping[str, Any]) -> str:
        """The payout_batch_id of the batch with this sender_batch_id: created now, or found if it exists."""
        request_id = body["sender_batch_header"]["sender_batch_id"]
        response = await self.send("POST", PAYOUTS_PATH, json=body, headers={"PayPal-Request-Id": request_id})
        payload = _json(response)
        if response.status_code in (200, 201):
            return str(payload["batch_header"]["payout_batch_id"])
        existing = _linked_batch_id(payload)
        if existing is not None:
            return existing
        if 400 <= response.status_code < 500 and response.status_code not in (401, 403):
            name = payload.get("name", f"HTTP {response.status_code}")
            raise PayPalRefused(f"PayPal refused the payout batch: {name}: {payload.get('message', '')}".strip())
        raise ProviderError(f"PayPal answered HTTP {response.status_code} to the payout batch")

    async def get_batch(self, payout_batch_id: str) -> RemoteBatch:
        """The batch with all its items (every page)."""
        items: dict[str, dict[str, Any]] = {}
        page, pages = 1, 1
        header: Mapping[str, Any] = {}
        while page <= pages:
            params = {"page": page, "page_size": PAGE_SIZE, "total_required": "true"}
            response = await self.send("GET", f"{PAYOUTS_PATH}/{payout_batch_id}", params=params)
            if response.status_code != 200:
                raise ProviderError(f"PayPal answered HTTP {response.status_code} to the batch status")
            payload = _json(response)
            header = payload.get("batch_header", {})
            pages = int(payload.get("total_pages") or 1)
            for item in payload.get("items", []):
                items[str(item.get("payout_item", {}).get("sender_item_id"))] = item
            page += 1
        return RemoteBatch(
            payout_batch_id=payout_batch_id,
            sender_batch_id=str(header.get("sender_batch_header", {}).get("sender_batch_id", "")),
            batch_status=str(header.get("batch_status", "PENDING")).upper(),
            items=items,
        )


def _retry_after_seconds(response: httpx.Response) -> float:
    """Retry-After in seconds (capped at 30); 0 when absent or given as a date."""
    try:
        return min(float(response.headers.get("Retry-After", "0")), 30.0)
    except ValueError:
        return 0.0


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _linked_batch_id(error: Mapping[str, Any]) -> str | None:
    """A duplicate sender_batch_id is refused with a HATEOAS link to the original batch."""
    for link in error.get("links", []) or []:
        match = _BATCH_LINK.search(httpx.URL(str(link.get("href", ""))).path)
        if match:
            return match.group(1)
    return None


def check_same_batch(remote: RemoteBatch, expected_sender_batch_id: str, items: Sequence[dict[str, Any]]) -> None:
    """The batch PayPal found must be ours: same sender_batch_id, and once PayPal lists items, every one of
    ours there with the same amount (another installation on the same PayPal account could collide)."""
    if remote.sender_batch_id != expected_sender_batch_id:
        raise ProviderError(f"PayPal batch {remote.payout_batch_id} is not {expected_sender_batch_id}")
    if not remote.items:
        return
    for item in items:
        found = remote.items.get(item["sender_item_id"])
        if found is None or not same_amount(found.get("payout_item", {}).get("amount", {}), item["amount"]):
            raise ProviderError(
                f"PayPal batch {remote.payout_batch_id} does not hold payout {item['sender_item_id']} "
                "with the same amount"
            )


def same_amount(remote: Mapping[str, Any], sent: Mapping[str, str]) -> bool:
    currency = sent["currency"]
    if remote.get("currency") != currency:
        return False
    try:
        return paypal_value_to_minor(str(remote.get("value")), currency) == paypal_value_to_minor(
            sent["value"], currency
        )
    except ValueError:
        return False


class PayPalProvider:
    method = "paypal"

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.settings = settings
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.timeout_seconds = timeout_seconds
        self.token_cache: dict[str, Any] = {}

    @asynccontextmanager
    async def client(self) -> AsyncIterator[PayPalClient]:
        base_url = self.settings.paypal_base_url.rstrip("/")
        async with httpx.AsyncClient(base_url=base_url, timeout=self.timeout_seconds) as http:
            yield PayPalClient(
                http,
                self.settings.paypal_client_id,
                self.settings.paypal_client_secret,
                backoff_seconds=self.backoff_seconds,
                sleep=self.sleep,
                token_cache=self.token_cache,
            )

    async def execute(self, batch_id: int, instructions: Sequence[PayoutInstruction]) -> BatchExecution:
        """Create (or find) the PayPal batch, then poll it a few times while items are still processing."""
        items, results = check_each(instructions, payout_item)
        if not items:
            return BatchExecution(results=list(results.values()))
        async with self.client() as client:
            try:
                payout_batch_id = await client.create_or_find(create_payout_body(batch_id, items))
            except PayPalRefused as refused:
                results.update((item_payout_id(item), failed(item_payout_id(item), str(refused))) for item in items)
                return BatchExecution(results=[results[i.payout_id] for i in instructions])
            remote = await self.settle(client, payout_batch_id, batch_id, items)
        results.update((item_payout_id(item), remote_result(remote, item_payout_id(item))) for item in items)
        return BatchExecution(
            results=[results[i.payout_id] for i in instructions],
            remote_reference=payout_batch_id,
            extra={"sender_batch_id": sender_batch_id(batch_id), "batch_status": remote.batch_status},
        )

    async def settle(
        self, client: PayPalClient, payout_batch_id: str, batch_id: int, items: Sequence[dict[str, Any]]
    ) -> RemoteBatch:
        """Fetch the batch, then again (bounded) while any of our items is still processing."""
        remote = await client.get_batch(payout_batch_id)
        check_same_batch(remote, sender_batch_id(batch_id), items)
        for _ in range(self.settings.paypal_poll_attempts):
            statuses = {remote_result(remote, item_payout_id(item)).status for item in items}
            if "processing" not in statuses:
                break
            await self.sleep(self.settings.paypal_poll_interval_seconds)
            remote = await client.get_batch(payout_batch_id)
        return remote

    async def poll(
        self, batch_id: int, remote_reference: str | None, instructions: Sequence[PayoutInstruction]
    ) -> BatchExecution:
        """Current results of payouts still processing. Without a remote reference (the job died between
        create and store), `execute` finds the batch again by its sender_batch_id."""
        if remote_reference is None:
            return await self.execute(batch_id, instructions)
        async with self.client() as client:
            remote = await client.get_batch(remote_reference)
        if remote.sender_batch_id != sender_batch_id(batch_id):
            raise ProviderError(f"PayPal batch {remote_reference} is not {sender_batch_id(batch_id)}")
        results = [remote_result(remote, instruction.payout_id) for instruction in instructions]
        return BatchExecution(
            results=results, remote_reference=remote_reference, extra={"batch_status": remote.batch_status}
        )
