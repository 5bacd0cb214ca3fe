"""A program with two partners (each with a commission), an unattributed customer, and staff logins."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import pytest

from partners.affiliates.models import Partner
from partners.commissions import service as commissions
from partners.db.session import Database
from partners.identity.roles import Role
from partners.jobs.registry import load_handlers
from partners.settings import Settings
from tests.commissions.support import T0, make_customer, make_purchase
from tests.factories import create_partner, create_program, partner_headers, staff_headers

load_handlers()


@dataclass
class World:
    seller: Partner
    other: Partner
    seller_commission_id: int
    other_commission_id: int
    seller_headers: dict[str, str]
    other_headers: dict[str, str]
    support: dict[str, str]
    viewer: dict[str, str]
    lost_customer: str  # an unattributed customer the seller says it brought
    others_customer: str  # a customer bound to the other partner


@pytest.fixture
async def world(database: Database, settings: Settings) -> World:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        seller = await create_partner(session, program, tiers["starter"], email="seller@example.com")
        other = await create_partner(session, program, tiers["starter"], email="other@example.com")
        commission_ids = []
        for partner in (seller, other):
            customer = await make_customer(session, program, partner)
            purchase = await make_purchase(session, customer, 10_000)
            created = await commissions.create_commissions_for_purchase(
                session, purchase=purchase, customer=customer, now=T0
            )
            commission_ids.append(created[0].id)
        lost = await make_customer(session, program, None, external_id="cust-lost")
        bound = await make_customer(session, program, other, external_id="cust-other")
        return World(
            seller=seller,
            other=other,
            seller_commission_id=commission_ids[0],
            other_commission_id=commission_ids[1],
            seller_headers=await partner_headers(session, settings, seller),
            other_headers=await partner_headers(session, settings, other),
            support=await staff_headers(session, settings, Role.SUPPORT),
            viewer=await staff_headers(session, settings, Role.VIEWER),
            lost_customer=lost.external_id,
            others_customer=bound.external_id,
        )


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def tiny_png() -> bytes:
    """A valid 1x1 RGB PNG."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def tiny_pdf() -> bytes:
    """A valid one-page PDF with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n".encode() + content + b"\nendobj\n"
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    body += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    body += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return body


# The start of a Windows executable (the "MZ" DOS header).
FAKE_EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256))
