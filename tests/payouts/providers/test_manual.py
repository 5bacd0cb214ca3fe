from __future__ import annotations

import csv
import io

from partners.payouts.providers.manual import ManualProvider

from .support import instruction, provider_settings


def parse(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


async def test_wise_csv_has_one_row_per_payout_with_exact_amounts() -> None:
    wise = {
        "holder": "Jürgen Müller",
        "bank_name": "Wise",
        "account_number": "12345678",
        "bank_code": "231470",
        "country": "GB",
        "email": "jm@example.com",
    }
    items = [
        instruction(11, 123456, "GBP", "wise", wise, partner_name="Jürgen Müller"),
        instruction(12, 5, "GBP", "wise", {**wise, "holder": 'Ann, "Annie" Lee'}),
        instruction(13, 15000, "JPY", "wise", wise),
        instruction(14, 1001, "KWD", "wise", wise),
    ]

    execution = await ManualProvider(provider_settings(), "wise").execute(9, items)

    assert execution.file_name == "wise-batch-9.csv"
    assert execution.media_type == "text/csv"
    assert execution.file_bytes is not None
    rows = parse(execution.file_bytes)
    assert [(r["payout_id"], r["amount"], r["currency"], r["amount_minor"]) for r in rows] == [
        ("11", "1234.56", "GBP", "123456"),
        ("12", "0.05", "GBP", "5"),
        ("13", "15000", "JPY", "15000"),
        ("14", "1.001", "KWD", "1001"),
    ]
    assert rows[0]["partner_name"] == "Jürgen Müller"
    assert rows[0]["details_bank_code"] == "231470"
    assert rows[1]["details_holder"] == 'Ann, "Annie" Lee'
    assert all(r["method"] == "wise" for r in rows)
    assert [(r.payout_id, r.status) for r in execution.results] == [(p, "processing") for p in (11, 12, 13, 14)]


async def test_crypto_csv_lists_network_and_address() -> None:
    details = {"network": "bitcoin", "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}
    execution = await ManualProvider(provider_settings(), "crypto").execute(
        2, [instruction(21, 9999, "USD", "crypto", details)]
    )

    assert execution.file_bytes is not None
    (row,) = parse(execution.file_bytes)
    assert row["details_network"] == "bitcoin"
    assert row["details_address"] == details["address"]
    assert row["amount"] == "99.99"


async def test_cells_that_would_run_as_spreadsheet_formulas_are_quoted() -> None:
    details = {"network": "ethereum", "address": "0x52908400098527886E0F7030069857D2E4169EE7"}
    evil = instruction(31, 100, "USD", "crypto", details, partner_name='=HYPERLINK("http://x","y")')

    execution = await ManualProvider(provider_settings(), "crypto").execute(4, [evil])

    assert execution.file_bytes is not None
    (row,) = parse(execution.file_bytes)
    assert row["partner_name"] == '\'=HYPERLINK("http://x","y")'
    assert row["details_address"] == details["address"]


async def test_no_payouts_no_file() -> None:
    execution = await ManualProvider(provider_settings(), "wise").execute(5, [])
    assert execution.results == []
    assert execution.file_bytes is None
