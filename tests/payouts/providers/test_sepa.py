from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sepaxml
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from partners.payouts.providers.base import PayoutInstruction, ProviderError
from partners.payouts.providers.sepa import SepaProvider, message_id, payment_information_id

from .support import instruction, provider_settings

SCHEMAS = Path(sepaxml.__file__).parent / "schemas"
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / f"{name}.xsd")))


def sepa(
    payout_id: int, amount: int, iban: str, bic: str = "", holder: str = "Asha Rao", currency: str = "EUR"
) -> PayoutInstruction:
    return instruction(payout_id, amount, currency, "sepa", {"iban": iban, "bic": bic, "holder": holder})


def provider(**overrides: object) -> SepaProvider:
    return SepaProvider(provider_settings(**overrides), clock=lambda: NOW)


class Pain001:
    """The parts of a pain.001 document the tests read, namespace-aware."""

    def __init__(self, data: bytes, schema_name: str) -> None:
        self.root = etree.fromstring(data)
        self.ns = {"p": f"urn:iso:std:iso:20022:tech:xsd:{schema_name}"}

    def text(self, path: str) -> str:
        return str(self.root.findtext(path, namespaces=self.ns))

    def all(self, path: str) -> list[etree._Element]:
        return list(self.root.iterfind(path, namespaces=self.ns))

    def transfers(self) -> list[tuple[str, Decimal, str, str, str]]:
        rows = []
        for tx in self.all("p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf"):
            amount = tx.find("p:Amt/p:InstdAmt", self.ns)
            assert amount is not None
            assert amount.get("Ccy") == "EUR"
            rows.append(
                (
                    str(tx.findtext("p:PmtId/p:EndToEndId", namespaces=self.ns)),
                    Decimal(str(amount.text)),
                    str(tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=self.ns)),
                    str(tx.findtext("p:Cdtr/p:Nm", namespaces=self.ns)),
                    "".join(tx.xpath(".//p:CdtrAgt//text()", namespaces=self.ns)).strip(),
                )
            )
        return rows


@pytest.mark.parametrize("schema_name", ["pain.001.001.09", "pain.001.001.03"])
async def test_pain001_validates_against_the_schema_with_exact_totals(schema_name: str) -> None:
    items = [
        sepa(101, 123456, "DE44 5001 0517 5407 3249 31", "INGDDEFFXXX", holder="Jürgen Müller"),
        sepa(102, 5, "FR1420041010050500013M02606"),
        sepa(103, 99_999_999_999, "NL91ABNA0417164300", "ABNANL2A", holder="Ōtsuka & Søn"),
    ]

    execution = await provider(PARTNERS_SEPA_SCHEMA=schema_name).execute(42, items)

    assert execution.file_name == "sepa-batch-42.xml"
    assert execution.media_type == "application/xml"
    assert execution.file_bytes is not None
    xsd = schema(schema_name)
    document = etree.fromstring(execution.file_bytes)
    assert xsd.validate(document), xsd.error_log
    pain = Pain001(execution.file_bytes, schema_name)
    assert pain.text("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId") == message_id(42)
    assert pain.text("p:CstmrCdtTrfInitn/p:PmtInf/p:PmtInfId") == payment_information_id(42, 1)
    assert pain.text("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs") == "3"
    assert pain.text("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum") == "1000001234.60"
    assert pain.text("p:CstmrCdtTrfInitn/p:PmtInf/p:NbOfTxs") == "3"
    assert pain.text("p:CstmrCdtTrfInitn/p:PmtInf/p:CtrlSum") == "1000001234.60"
    assert pain.text("p:CstmrCdtTrfInitn/p:PmtInf/p:DbtrAcct/p:Id/p:IBAN") == "DE89370400440532013000"
    assert "COBADEFFXXX" in etree.tostring(pain.all("p:CstmrCdtTrfInitn/p:PmtInf/p:DbtrAgt")[0]).decode()
    assert pain.transfers() == [
        ("101", Decimal("1234.56"), "DE44500105175407324931", "Jurgen Muller", "INGDDEFFXXX"),
        ("102", Decimal("0.05"), "FR1420041010050500013M02606", "Asha Rao", ""),
        ("103", Decimal("999999999.99"), "NL91ABNA0417164300", "Otsuka Son", "ABNANL2A"),
    ]
    assert "2026-11-24" in execution.file_bytes.decode()
    assert [(r.payout_id, r.status, r.reference) for r in execution.results] == [
        (101, "processing", "101"),
        (102, "processing", "102"),
        (103, "processing", "103"),
    ]


async def test_the_schema_check_is_real_a_broken_file_fails_it() -> None:
    execution = await provider().execute(1, [sepa(1, 100, "FR1420041010050500013M02606")])
    assert execution.file_bytes is not None
    broken = execution.file_bytes.replace(b"<IBAN>FR14", b"<IBAN>fr14")
    assert broken != execution.file_bytes
    assert not schema("pain.001.001.09").validate(etree.fromstring(broken))


async def test_payouts_sepa_cannot_pay_fail_and_stay_out_of_the_file() -> None:
    items = [
        sepa(1, 1000, "DE89370400440532013001"),  # wrong check digits
        sepa(2, 1000, "FR1420041010050500013M02606", currency="USD"),
        sepa(3, 1000, "BR1800360305000010009795493C1"),  # valid, but Brazil is not SEPA
        sepa(4, 1000, "NL91ABNA0417164300", bic="NOTABIC"),
        sepa(5, 0, "NL91ABNA0417164300"),
        instruction(6, 1000, "EUR", "sepa", {"iban": "NL91ABNA0417164300", "bic": "", "holder": " "}, ""),
        sepa(7, 2500, "GB33BUKB20201555555555"),
    ]

    execution = await provider().execute(5, items)

    by_id = {r.payout_id: r for r in execution.results}
    assert [r.payout_id for r in execution.results] == [1, 2, 3, 4, 5, 6, 7]
    assert by_id[1].status == "failed" and "IBAN" in str(by_id[1].failure_reason)
    assert by_id[2].failure_reason == "SEPA pays only EUR, not USD"
    assert by_id[3].failure_reason == "IBAN country BR is not in the SEPA zone"
    assert by_id[4].status == "failed" and "BIC" in str(by_id[4].failure_reason)
    assert by_id[5].status == "failed"
    assert by_id[6].failure_reason == "the account holder's name is missing"
    assert by_id[7].status == "processing"
    assert execution.file_bytes is not None
    pain = Pain001(execution.file_bytes, "pain.001.001.09")
    assert [row[0] for row in pain.transfers()] == ["7"]
    assert pain.text("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum") == "25.00"


async def test_no_payable_payout_no_file() -> None:
    execution = await provider().execute(6, [sepa(1, 1000, "XX00")])
    assert execution.file_bytes is None
    assert [r.status for r in execution.results] == ["failed"]


async def test_a_bad_debtor_account_in_the_settings_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="PARTNERS_SEPA_DEBTOR_IBAN"):
        await provider(PARTNERS_SEPA_DEBTOR_IBAN="DE00123").execute(7, [sepa(1, 100, "NL91ABNA0417164300")])


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=12))
async def test_control_sum_and_count_match_any_amounts(amounts: list[int]) -> None:
    items = [sepa(i + 1, amount, "NL91ABNA0417164300") for i, amount in enumerate(amounts)]

    execution = await provider().execute(8, items)

    assert execution.file_bytes is not None
    pain = Pain001(execution.file_bytes, "pain.001.001.09")
    assert schema("pain.001.001.09").validate(pain.root)
    assert pain.text("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs") == str(len(amounts))
    assert Decimal(pain.text("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum")) == Decimal(sum(amounts)).scaleb(-2)
    assert [row[1] for row in pain.transfers()] == [Decimal(a).scaleb(-2) for a in amounts]


async def test_the_payment_information_id_names_the_batch_every_time() -> None:
    items = [sepa(1, 100, "FR1420041010050500013M02606")]
    first = await provider().execute(7, items)
    again = await provider().execute(7, items)
    ids = [
        Pain001(execution.file_bytes or b"", "pain.001.001.09").text("p:CstmrCdtTrfInitn/p:PmtInf/p:PmtInfId")
        for execution in (first, again)
    ]
    assert ids == [payment_information_id(7, 1)] * 2 == ["NAMASKAH-BATCH-7-1"] * 2


@pytest.mark.parametrize(
    ("today", "requested"),
    [
        (datetime(2026, 11, 24, 9, tzinfo=UTC), "2026-11-24"),  # a TARGET2 business day: today
        (datetime(2026, 12, 25, 9, tzinfo=UTC), "2026-12-28"),  # Christmas, Boxing Day, the weekend
        (datetime(2027, 3, 26, 9, tzinfo=UTC), "2027-03-30"),  # Good Friday and Easter Monday
        (datetime(2027, 5, 1, 9, tzinfo=UTC), "2027-05-03"),  # Labour Day on a Saturday, then Sunday
    ],
)
async def test_the_requested_execution_date_is_a_target2_business_day(today: datetime, requested: str) -> None:
    sepa_provider = SepaProvider(provider_settings(), clock=lambda: today)
    execution = await sepa_provider.execute(9, [sepa(1, 100, "FR1420041010050500013M02606")])
    pain = Pain001(execution.file_bytes or b"", "pain.001.001.09")
    assert pain.text("p:CstmrCdtTrfInitn/p:PmtInf/p:ReqdExctnDt/p:Dt") == requested
