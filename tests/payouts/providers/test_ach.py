"""The NACHA file, read back field by field at the positions of the published record layout
(NACHA Operating Rules, Appendix Three; as in every bank's ACH file specification)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.us import rtn

from partners.payouts.providers.ach import AchProvider, next_business_day
from partners.payouts.providers.base import PayoutInstruction, ProviderError

from .support import instruction, provider_settings

NOW = datetime(2026, 11, 27, 16, 5, tzinfo=UTC)  # a Friday

# (first, last) 1-based inclusive positions per record type.
LAYOUT: dict[str, dict[str, tuple[int, int]]] = {
    "1": {
        "priority_code": (2, 3),
        "immediate_destination": (4, 13),
        "immediate_origin": (14, 23),
        "creation_date": (24, 29),
        "creation_time": (30, 33),
        "file_id_modifier": (34, 34),
        "record_size": (35, 37),
        "blocking_factor": (38, 39),
        "format_code": (40, 40),
        "destination_name": (41, 63),
        "origin_name": (64, 86),
        "reference_code": (87, 94),
    },
    "5": {
        "service_class": (2, 4),
        "company_name": (5, 20),
        "discretionary_data": (21, 40),
        "company_id": (41, 50),
        "sec_code": (51, 53),
        "entry_description": (54, 63),
        "descriptive_date": (64, 69),
        "effective_date": (70, 75),
        "settlement_date": (76, 78),
        "originator_status": (79, 79),
        "odfi": (80, 87),
        "batch_number": (88, 94),
    },
    "6": {
        "transaction_code": (2, 3),
        "rdfi": (4, 11),
        "check_digit": (12, 12),
        "account_number": (13, 29),
        "amount": (30, 39),
        "individual_id": (40, 54),
        "individual_name": (55, 76),
        "discretionary_data": (77, 78),
        "addenda_indicator": (79, 79),
        "trace_number": (80, 94),
    },
    "8": {
        "service_class": (2, 4),
        "entry_count": (5, 10),
        "entry_hash": (11, 20),
        "total_debit": (21, 32),
        "total_credit": (33, 44),
        "company_id": (45, 54),
        "authentication_code": (55, 73),
        "reserved": (74, 79),
        "odfi": (80, 87),
        "batch_number": (88, 94),
    },
    "9": {
        "batch_count": (2, 7),
        "block_count": (8, 13),
        "entry_count": (14, 21),
        "entry_hash": (22, 31),
        "total_debit": (32, 43),
        "total_credit": (44, 55),
        "reserved": (56, 94),
    },
}


def fields(line: str) -> dict[str, str]:
    return {name: line[first - 1 : last] for name, (first, last) in LAYOUT[line[0]].items()}


@dataclass
class ParsedFile:
    lines: list[str]
    header: dict[str, str]
    batch_header: dict[str, str]
    entries: list[dict[str, str]]
    batch_control: dict[str, str]
    file_control: dict[str, str]
    padding: list[str]


def parse(data: bytes) -> ParsedFile:
    text = data.decode("ascii")
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert [line[0] for line in lines[:2]] == ["1", "5"]
    entries = [line for line in lines if line[0] == "6"]
    rest = lines[2 + len(entries) :]
    assert rest[0][0] == "8" and rest[1][0] == "9"
    return ParsedFile(
        lines=lines,
        header=fields(lines[0]),
        batch_header=fields(lines[1]),
        entries=[fields(line) for line in entries],
        batch_control=fields(rest[0]),
        file_control=fields(rest[1]),
        padding=rest[2:],
    )


def routing(prefix8: str) -> str:
    return prefix8 + rtn.calc_check_digit(prefix8)


def ach(
    payout_id: int,
    amount: int,
    routing_number: str = "011401533",
    account_type: str = "checking",
    currency: str = "USD",
    **details: str,
) -> PayoutInstruction:
    defaults = {
        "routing_number": routing_number,
        "account_number": "0072345678",
        "account_type": account_type,
    }
    return instruction(payout_id, amount, currency, "ach", {**defaults, "holder": "", **details})


def provider(**overrides: object) -> AchProvider:
    return AchProvider(provider_settings(**overrides), clock=lambda: NOW)


async def test_nacha_file_parses_back_field_by_field() -> None:
    items = [
        ach(501, 123456, "011401533", "checking", holder="Jürgen Müller-Lüdenscheidt-Straßenbahn"),
        ach(502, 5, "021000021", "savings", holder="Ann Lee"),
        ach(503, 99_999_999_99, "122105278", "checking", holder="Big Partner LLC"),
    ]

    execution = await provider().execute(12, items)

    assert execution.file_name == "ach-batch-12.ach"
    assert execution.file_bytes is not None
    parsed = parse(execution.file_bytes)
    assert all(len(line) == 94 for line in parsed.lines)
    assert len(parsed.lines) % 10 == 0
    assert parsed.padding == ["9" * 94] * (10 - 7)  # 7 records: header, batch header, 3 entries, 2 controls

    assert parsed.header == {
        "priority_code": "01",
        "immediate_destination": " 021000021",
        "immediate_origin": "1234567890",
        "creation_date": "261127",
        "creation_time": "1605",
        "file_id_modifier": "L",
        "record_size": "094",
        "blocking_factor": "10",
        "format_code": "1",
        "destination_name": "JPMORGAN CHASE".ljust(23),
        "origin_name": "NAMASKAH".ljust(23),
        "reference_code": "12".ljust(8),
    }
    assert parsed.batch_header == {
        "service_class": "220",
        "company_name": "NAMASKAH".ljust(16),
        "discretionary_data": " " * 20,
        "company_id": "1234567890",
        "sec_code": "PPD",
        "entry_description": "PAYOUT".ljust(10),
        "descriptive_date": " " * 6,
        "effective_date": "261130",  # the Monday after Friday the 27th
        "settlement_date": "   ",
        "originator_status": "1",
        "odfi": "02100002",
        "batch_number": "0000001",
    }
    assert [
        (e["transaction_code"], e["rdfi"] + e["check_digit"], e["account_number"], int(e["amount"]))
        for e in parsed.entries
    ] == [
        ("22", "011401533", "0072345678".ljust(17), 123456),
        ("32", "021000021", "0072345678".ljust(17), 5),
        ("22", "122105278", "0072345678".ljust(17), 99_999_999_99),
    ]
    assert [e["individual_id"] for e in parsed.entries] == [str(i).ljust(15) for i in (501, 502, 503)]
    assert [e["individual_name"] for e in parsed.entries] == [
        "JURGEN MULLER-LUDENSCH",  # transliterated, upper case, cut to 22
        "ANN LEE".ljust(22),
        "BIG PARTNER LLC".ljust(22),
    ]
    assert {e["addenda_indicator"] for e in parsed.entries} == {"0"}
    traces = [e["trace_number"] for e in parsed.entries]
    assert traces == ["021000020000001", "021000020000002", "021000020000003"]
    assert [(r.payout_id, r.status, r.reference) for r in execution.results] == [
        (501, "processing", traces[0]),
        (502, "processing", traces[1]),
        (503, "processing", traces[2]),
    ]

    entry_hash = (1140153 + 2100002 + 12210527) % 10**10
    total = 123456 + 5 + 99_999_999_99
    assert parsed.batch_control == {
        "service_class": "220",
        "entry_count": "000003",
        "entry_hash": str(entry_hash).zfill(10),
        "total_debit": "0" * 12,
        "total_credit": str(total).zfill(12),
        "company_id": "1234567890",
        "authentication_code": " " * 19,
        "reserved": " " * 6,
        "odfi": "02100002",
        "batch_number": "0000001",
    }
    assert parsed.file_control == {
        "batch_count": "000001",
        "block_count": "000001",
        "entry_count": "00000003",
        "entry_hash": str(entry_hash).zfill(10),
        "total_debit": "0" * 12,
        "total_credit": str(total).zfill(12),
        "reserved": " " * 39,
    }


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=99_999_999_99),
            st.from_regex(r"[0-3][0-9]{7}", fullmatch=True),
            st.sampled_from(["checking", "savings"]),
        ),
        min_size=1,
        max_size=25,
    )
)
async def test_any_batch_parses_back_to_the_same_amounts_counts_and_hashes(
    payouts: list[tuple[int, str, str]],
) -> None:
    items = [ach(i + 1, amount, routing(prefix), kind) for i, (amount, prefix, kind) in enumerate(payouts)]

    execution = await provider().execute(3, items)

    assert execution.file_bytes is not None
    parsed = parse(execution.file_bytes)
    assert all(len(line) == 94 for line in parsed.lines)
    assert len(parsed.lines) % 10 == 0
    assert int(parsed.file_control["block_count"]) == len(parsed.lines) // 10
    assert all(line == "9" * 94 for line in parsed.padding) and len(parsed.padding) < 10
    assert [int(e["amount"]) for e in parsed.entries] == [amount for amount, _, _ in payouts]
    assert [int(e["individual_id"]) for e in parsed.entries] == list(range(1, len(payouts) + 1))
    assert [e["transaction_code"] for e in parsed.entries] == [
        "22" if kind == "checking" else "32" for _, _, kind in payouts
    ]
    for entry in parsed.entries:
        assert rtn.is_valid(entry["rdfi"] + entry["check_digit"])
    expected_hash = str(sum(int(prefix) for _, prefix, _ in payouts) % 10**10).zfill(10)
    total = sum(amount for amount, _, _ in payouts)
    for control in (parsed.batch_control, parsed.file_control):
        assert int(control["entry_count"]) == len(payouts)
        assert control["entry_hash"] == expected_hash
        assert int(control["total_credit"]) == total
        assert int(control["total_debit"]) == 0


async def test_entry_hash_keeps_the_ten_rightmost_digits() -> None:
    items = [ach(i, 100, routing("99999999")) for i in range(1, 121)]

    execution = await provider().execute(4, items)

    assert execution.file_bytes is not None
    parsed = parse(execution.file_bytes)
    assert 120 * 99_999_999 == 11_999_999_880
    assert parsed.batch_control["entry_hash"] == "1999999880"
    assert parsed.file_control["entry_hash"] == "1999999880"
    assert len(parsed.lines) == 130  # 1 + 1 + 120 + 1 + 1 = 124 records, padded to 13 blocks
    assert parsed.file_control["block_count"] == "000013"


async def test_payouts_ach_cannot_pay_fail_and_stay_out_of_the_file() -> None:
    items = [
        ach(1, 1000, "011401534"),  # bad check digit
        ach(2, 1000, currency="EUR"),
        ach(3, 1000, account_number="12"),
        ach(4, 1000, account_type="brokerage"),
        ach(5, 100_000_000_00),  # over the 10-digit amount field
        instruction(
            6,
            1000,
            "USD",
            "ach",
            {
                "routing_number": "011401533",
                "account_number": "1234",
                "account_type": "checking",
                "holder": "",
            },
            "",
        ),
        ach(7, 2500, account_number="0012-3456 78"),
    ]

    execution = await provider().execute(5, items)

    by_id = {r.payout_id: r for r in execution.results}
    assert by_id[1].failure_reason == "invalid ABA routing number"
    assert by_id[2].failure_reason == "ACH pays only USD, not EUR"
    assert by_id[3].failure_reason == "the account number must have 4 to 17 digits"
    assert by_id[4].failure_reason == "the account type must be checking or savings"
    assert by_id[5].status == "failed"
    assert by_id[6].failure_reason == "the account holder's name is missing"
    assert by_id[7].status == "processing"
    assert execution.file_bytes is not None
    parsed = parse(execution.file_bytes)
    assert [(e["individual_id"].strip(), e["account_number"].strip()) for e in parsed.entries] == [("7", "0012345678")]


async def test_ccd_batches_and_the_file_id_modifier_follow_the_settings_and_batch() -> None:
    execution = await provider(PARTNERS_ACH_SEC_CODE="CCD").execute(27, [ach(1, 100)])

    assert execution.file_bytes is not None
    parsed = parse(execution.file_bytes)
    assert parsed.batch_header["sec_code"] == "CCD"
    assert parsed.header["file_id_modifier"] == "0"  # A-Z for batches 1-26, then 0-9


async def test_bad_origination_settings_are_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="PARTNERS_ACH_IMMEDIATE_DESTINATION"):
        await provider(PARTNERS_ACH_IMMEDIATE_DESTINATION="123456789").execute(1, [ach(1, 100)])
    with pytest.raises(ProviderError, match="PARTNERS_ACH_ORIGINATING_DFI"):
        await provider(PARTNERS_ACH_ORIGINATING_DFI="0210").execute(1, [ach(1, 100)])


def test_effective_date_is_the_next_federal_reserve_banking_day() -> None:
    assert next_business_day(date(2026, 11, 23)) == date(2026, 11, 24)  # Monday → Tuesday
    assert next_business_day(date(2026, 11, 27)) == date(2026, 11, 30)  # Friday → Monday
    assert next_business_day(date(2026, 11, 28)) == date(2026, 11, 30)  # Saturday → Monday
    assert next_business_day(date(2026, 11, 25)) == date(2026, 11, 27)  # Thanksgiving (Thu 26th) is skipped
    assert next_business_day(date(2026, 12, 24)) == date(2026, 12, 28)  # Christmas, then the weekend
    assert next_business_day(date(2027, 7, 2)) == date(2027, 7, 6)  # Independence Day observed on Monday 5th
    # The Federal Reserve does not close on the Friday before a Saturday holiday (July 4th, 2026).
    assert next_business_day(date(2026, 7, 2)) == date(2026, 7, 3)


async def test_an_offset_account_balances_the_file_with_a_debit_of_the_total() -> None:
    items = [ach(601, 1500, "011401533"), ach(602, 250, "122105278", "savings", holder="Ann Lee")]
    balanced = provider(PARTNERS_ACH_OFFSET_ACCOUNT="9900-1122", PARTNERS_ACH_OFFSET_ACCOUNT_TYPE="savings")

    execution = await balanced.execute(3, items)

    assert execution.file_bytes is not None
    parsed = parse(execution.file_bytes)
    offset = parsed.entries[-1]
    assert (offset["transaction_code"], offset["rdfi"] + offset["check_digit"]) == ("37", "021000021")
    assert (offset["account_number"], int(offset["amount"])) == ("99001122".ljust(17), 1750)
    assert offset["individual_id"] == "OFFSET".ljust(15)
    assert parsed.batch_header["service_class"] == parsed.batch_control["service_class"] == "200"
    for control in (parsed.batch_control, parsed.file_control):
        assert (int(control["total_debit"]), int(control["total_credit"])) == (1750, 1750)
        assert int(control["entry_count"]) == 3
        assert int(control["entry_hash"]) == 1140153 + 12210527 + 2100002  # the offset's RDFI is the ODFI
    # The payouts keep their own trace numbers; the offset's is the next one.
    assert [(r.payout_id, r.reference) for r in execution.results] == [
        (601, "021000020000001"),
        (602, "021000020000002"),
    ]
    assert offset["trace_number"] == "021000020000003"


async def test_without_an_offset_account_the_file_has_credits_only() -> None:
    parsed = parse((await provider().execute(4, [ach(701, 999)])).file_bytes or b"")
    assert [e["transaction_code"] for e in parsed.entries] == ["22"]
    assert parsed.batch_control["service_class"] == "220"
    assert (int(parsed.file_control["total_debit"]), int(parsed.file_control["total_credit"])) == (0, 999)


async def test_a_malformed_offset_account_is_a_configuration_error() -> None:
    with pytest.raises(ProviderError, match="PARTNERS_ACH_OFFSET_ACCOUNT"):
        await provider(PARTNERS_ACH_OFFSET_ACCOUNT="12").execute(1, [ach(1, 100)])
