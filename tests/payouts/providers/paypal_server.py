"""A local stand-in for the PayPal Payouts API, on 127.0.0.1, speaking its documented shapes.

- POST /v1/oauth2/token: HTTP Basic client id/secret, form grant_type=client_credentials → access_token.
- POST /v1/payments/payouts: bearer token required; the body is checked (sender_batch_header,
  items with recipient_type, amount {value: decimal string with the currency's decimals, currency},
  receiver, sender_item_id). 201 with batch_header {payout_batch_id, batch_status: PENDING}. A
  sender_batch_id used before → 400 USER_BUSINESS_ERROR with a HATEOAS link to the original batch.
- GET /v1/payments/payouts/{payout_batch_id}?page&page_size&total_required: the batch and its items. Items
  are PENDING for the first `pending_gets` reads, then take their outcome (SUCCESS unless set per receiver).

Faults for the client's retry paths: `fail_next(...)` queues "500" (refuse), "500-after-create" (create, then
answer 500 as if the response was lost), "drop" (close the connection without an answer), per endpoint.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAYOUTS = "/v1/payments/payouts"
WHOLE_UNIT_CURRENCIES = {"HUF", "JPY", "TWD"}
VALUE = re.compile(r"\d+(\.\d+)?")


@dataclass
class Batch:
    payout_batch_id: str
    sender_batch_header: dict[str, Any]
    items: list[dict[str, Any]]
    gets: int = 0
    denied: bool = False


@dataclass
class PayPalState:
    client_id: str
    client_secret: str
    base_url: str = ""
    pending_gets: int = 1
    deny_batches: bool = False
    reject_with: dict[str, Any] | None = None  # a 400 body to answer every create with
    outcomes: dict[str, tuple[str, dict[str, str] | None]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    batches: dict[str, Batch] = field(default_factory=dict)
    by_sender_batch_id: dict[str, str] = field(default_factory=dict)
    faults: dict[str, deque[str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    create_bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, endpoint: str, *faults: str) -> None:
        """endpoint: "token", "create" or "get"; faults: "500", "500-after-create", "drop"."""
        self.faults.setdefault(endpoint, deque()).extend(faults)

    def set_outcome(self, receiver: str, status: str, errors: dict[str, str] | None = None) -> None:
        self.outcomes[receiver] = (status, errors)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def count(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    def seed_batch(self, sender_batch_id: str, items: list[dict[str, Any]]) -> str:
        """A batch made by someone else with this sender_batch_id."""
        batch_id = "SEED" + secrets.token_hex(4).upper()
        header = {"sender_batch_id": sender_batch_id, "recipient_type": "EMAIL"}
        self.batches[batch_id] = Batch(batch_id, header, [self._item(batch_id, item) for item in items])
        self.by_sender_batch_id[sender_batch_id] = batch_id
        return batch_id

    def _item(self, batch_id: str, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "payout_item_id": "ITEM" + secrets.token_hex(5).upper(),
            "payout_batch_id": batch_id,
            "payout_item": {
                "recipient_type": item.get("recipient_type", "EMAIL"),
                "amount": dict(item["amount"]),
                "note": item.get("note", ""),
                "receiver": item["receiver"],
                "sender_item_id": item["sender_item_id"],
            },
        }


def validation_issues(body: Any) -> list[dict[str, str]]:
    """What the create endpoint checks, as PayPal's error `details`."""
    issues: list[dict[str, str]] = []

    def issue(where: str, text: str) -> None:
        issues.append({"field": where, "location": "body", "issue": text})

    if not isinstance(body, dict):
        return [{"field": "body", "location": "body", "issue": "MALFORMED_REQUEST_JSON"}]
    header = body.get("sender_batch_header")
    if not isinstance(header, dict) or not isinstance(header.get("sender_batch_id"), str):
        issue("sender_batch_header.sender_batch_id", "Required field missing")
    elif not 0 < len(header["sender_batch_id"]) <= 256:
        issue("sender_batch_header.sender_batch_id", "Invalid length")
    items = body.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= 15000:
        issue("items", "Between 1 and 15000 items are required")
        return issues
    header_type = header.get("recipient_type") if isinstance(header, dict) else None
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if item.get("recipient_type", header_type) not in ("EMAIL", "PHONE", "PAYPAL_ID"):
            issue(f"{where}.recipient_type", "Invalid recipient type")
        amount = item.get("amount")
        if not isinstance(amount, dict) or not isinstance(amount.get("value"), str):
            issue(f"{where}.amount.value", "Amount value must be a string")
            continue
        currency = amount.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            issue(f"{where}.amount.currency", "Invalid currency code")
        value = amount["value"]
        decimals = len(value.split(".")[1]) if "." in value else 0
        allowed = 0 if currency in WHOLE_UNIT_CURRENCIES else 2
        if not VALUE.fullmatch(value) or decimals > allowed:
            issue(f"{where}.amount.value", f"Invalid amount for {currency}")
        if not item.get("receiver"):
            issue(f"{where}.receiver", "Required field missing")
        sender_item_id = item.get("sender_item_id")
        if not isinstance(sender_item_id, str) or not sender_item_id:
            issue(f"{where}.sender_item_id", "Required field missing")
        elif sender_item_id in seen:
            issue(f"{where}.sender_item_id", "DUPLICATE_ITEM")
        else:
            seen.add(sender_item_id)
    return issues


class PayPalHandler(BaseHTTPRequestHandler):
    server: PayPalHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def state(self) -> PayPalState:
        return self.server.state

    # --- plumbing -------------------------------------------------------------------------------------

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _fault(self, endpoint: str) -> str | None:
        with self.state.lock:
            queue = self.state.faults.get(endpoint)
            return queue.popleft() if queue else None

    def _drop(self) -> None:
        self.close_connection = True

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[len("Bearer ") :] in self.state.tokens:
            return True
        self._send_json(
            401,
            {
                "name": "AUTHENTICATION_FAILURE",
                "message": "Authentication failed due to invalid authentication credentials or a missing "
                "Authorization header.",
                "links": [
                    {
                        "href": "https://developer.paypal.com/docs/api/overview/#error",
                        "rel": "information_link",
                    }
                ],
            },
        )
        return False

    def _batch_link(self, payout_batch_id: str) -> dict[str, str]:
        return {
            "href": f"{self.state.base_url}{PAYOUTS}/{payout_batch_id}",
            "rel": "self",
            "method": "GET",
            "encType": "application/json",
        }

    # --- endpoints ------------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        with self.state.lock:
            self.state.requests.append(("POST", path))
        if path == "/v1/oauth2/token":
            self._token(body)
        elif path == PAYOUTS:
            self._create(body)
        else:
            self._send_json(404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        with self.state.lock:
            self.state.requests.append(("GET", url.path))
        if url.path.startswith(PAYOUTS + "/"):
            self._get(url.path[len(PAYOUTS) + 1 :], parse_qs(url.query))
        else:
            self._send_json(404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."})

    def _token(self, body: bytes) -> None:
        fault = self._fault("token")
        if fault == "drop":
            return self._drop()
        if fault == "500":
            return self._send_json(500, {"name": "INTERNAL_SERVER_ERROR"})
        expected = base64.b64encode(f"{self.state.client_id}:{self.state.client_secret}".encode()).decode()
        form = parse_qs(body.decode())
        content_type = self.headers.get("Content-Type", "")
        if self.headers.get("Authorization") != f"Basic {expected}":
            return self._send_json(
                401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
            )
        if not content_type.startswith("application/x-www-form-urlencoded") or form.get("grant_type") != [
            "client_credentials"
        ]:
            return self._send_json(400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"})
        token = "A21AA" + secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.tokens.add(token)
        self._send_json(
            200,
            {
                "scope": "https://uri.paypal.com/services/payments/payouts",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": 32400,
                "nonce": secrets.token_hex(8),
            },
        )

    def _create(self, raw: bytes) -> None:
        fault = self._fault("create")
        if fault == "drop":
            return self._drop()
        if fault == "500":
            return self._send_json(
                500, {"name": "INTERNAL_SERVER_ERROR", "message": "An internal server error occurred."}
            )
        if not self._authorized():
            return None
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self._send_json(415, {"name": "UNSUPPORTED_MEDIA_TYPE"})
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        issues = validation_issues(body)
        if issues:
            return self._send_json(
                400,
                {"name": "VALIDATION_ERROR", "message": "Invalid request - see details.", "details": issues},
            )
        with self.state.lock:
            self.state.create_bodies.append(body)
            if self.state.reject_with is not None:
                return self._send_json(400, self.state.reject_with)
            sender_batch_id = body["sender_batch_header"]["sender_batch_id"]
            existing = self.state.by_sender_batch_id.get(sender_batch_id)
            if existing is not None:
                return self._send_json(400, self._duplicate(existing))
            batch = self._new_batch(body)
        if fault == "500-after-create":
            return self._send_json(
                500, {"name": "INTERNAL_SERVER_ERROR", "message": "An internal server error occurred."}
            )
        self._send_json(
            201,
            {
                "batch_header": {
                    "payout_batch_id": batch.payout_batch_id,
                    "batch_status": "PENDING",
                    "sender_batch_header": batch.sender_batch_header,
                },
                "links": [self._batch_link(batch.payout_batch_id)],
            },
        )

    def _duplicate(self, payout_batch_id: str) -> dict[str, Any]:
        return {
            "name": "USER_BUSINESS_ERROR",
            "message": "User business error.",
            "debug_id": secrets.token_hex(6),
            "information_link": "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors",
            "details": [
                {
                    "field": "SENDER_BATCH_ID",
                    "location": "body",
                    "issue": "Batch with given sender_batch_id already exists",
                }
            ],
            "links": [self._batch_link(payout_batch_id)],
        }

    def _new_batch(self, body: dict[str, Any]) -> Batch:
        payout_batch_id = secrets.token_hex(6).upper()
        header = body["sender_batch_header"]
        items = [self.state._item(payout_batch_id, item) for item in body["items"]]
        batch = Batch(payout_batch_id, dict(header), items, denied=self.state.deny_batches)
        self.state.batches[payout_batch_id] = batch
        self.state.by_sender_batch_id[header["sender_batch_id"]] = payout_batch_id
        return batch

    def _get(self, payout_batch_id: str, query: dict[str, list[str]]) -> None:
        fault = self._fault("get")
        if fault == "drop":
            return self._drop()
        if fault == "500":
            return self._send_json(500, {"name": "INTERNAL_SERVER_ERROR"})
        if not self._authorized():
            return None
        with self.state.lock:
            batch = self.state.batches.get(payout_batch_id)
            if batch is None:
                return self._send_json(
                    404, {"name": "INVALID_RESOURCE_ID", "message": "Requested resource ID was not found."}
                )
            batch.gets += 1
            body = self._batch_body(batch, query)
        self._send_json(200, body)

    def _batch_body(self, batch: Batch, query: dict[str, list[str]]) -> dict[str, Any]:
        page = int(query.get("page", ["1"])[0])
        page_size = int(query.get("page_size", ["1000"])[0])
        settled = batch.gets > self.state.pending_gets
        items = [self._item_state(batch, item, settled) for item in batch.items]
        status = "DENIED" if batch.denied else ("SUCCESS" if settled else "PENDING")
        body: dict[str, Any] = {
            "batch_header": {
                "payout_batch_id": batch.payout_batch_id,
                "batch_status": status,
                "time_created": "2026-11-24T10:00:00Z",
                "sender_batch_header": batch.sender_batch_header,
            },
            "items": items[(page - 1) * page_size : page * page_size],
            "links": [self._batch_link(batch.payout_batch_id)],
        }
        if query.get("total_required") == ["true"]:
            body["total_items"] = len(items)
            body["total_pages"] = max(1, -(-len(items) // page_size))
        return body

    def _item_state(self, batch: Batch, item: dict[str, Any], settled: bool) -> dict[str, Any]:
        state = dict(item)
        if batch.denied:
            state["transaction_status"] = "FAILED"
            state["errors"] = {"name": "BATCH_DENIED", "message": "The payout batch was denied."}
            return state
        if not settled:
            state["transaction_status"] = "PENDING"
            return state
        status, errors = self.state.outcomes.get(item["payout_item"]["receiver"], ("SUCCESS", None))
        state["transaction_status"] = status
        if status == "SUCCESS":
            state["transaction_id"] = secrets.token_hex(8).upper()
        if errors:
            state["errors"] = errors
        return state


class PayPalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: PayPalState) -> None:
        super().__init__(("127.0.0.1", 0), PayPalHandler)
        self.state = state
        state.base_url = f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def running_paypal(client_id: str = "client-id", client_secret: str = "client-secret") -> Iterator[PayPalState]:
    """Serve the stand-in in a thread for the duration of the block."""
    state = PayPalState(client_id=client_id, client_secret=client_secret)
    server = PayPalHTTPServer(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
