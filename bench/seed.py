"""The small data set of the click and purchase benchmarks: partners in 3-level chains, their links, and
customers attributed to the chains' last partner (so every sale pays three levels)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.progress import Progress

from bench import generate
from partners.affiliates.models import Partner
from partners.tracking.models import Customer, TrackingLink


@dataclass(frozen=True)
class Seeded:
    links: list[str]
    customers: list[str]
    partners: int


def seed_chains(url: str, *, chains: int = 50, customers: int = 5_000) -> Seeded:
    """`chains` chains grandparent → parent → child (ids 3k+1, 3k+2, 3k+3), one link per child, and
    `customers` customers spread over the children."""
    settings = generate.bench_settings(url)
    program_id, tiers = asyncio.run(generate._program(url, settings))
    starter = tiers["starter"]
    long_ago = datetime.now(UTC) - timedelta(days=365)
    partner_rows = [
        (
            partner_id,
            program_id,
            starter.id,
            "affiliate",
            "approved",
            f"chain{partner_id}@bench.example",
            f"Chain Partner {partner_id}",
            f"cp{partner_id}",
            long_ago,
            long_ago,
            long_ago,
        )
        for partner_id in range(1, 3 * chains + 1)
    ]
    children = [3 * chain + 3 for chain in range(chains)]
    links = [f"c{child}" for child in children]
    writer = generate.writer_for(url)
    with Progress(disable=True) as progress:
        load = generate._Load(writer, progress)
        load.table(Partner, generate.PARTNER_COLUMNS, partner_rows, len(partner_rows))
        writer.execute(
            "UPDATE partners SET parent_id = :parent WHERE id = :id",
            [{"id": child, "parent": child - 1} for child in range(1, 3 * chains + 1) if child % 3 != 1],
        )
        load.table(
            TrackingLink,
            generate.LINK_COLUMNS,
            [
                (number, child, f"c{child}", "https://namaskah.app/", "bench", {}, True, long_ago)
                for number, child in enumerate(children, 1)
            ],
            len(children),
        )
        load.table(
            Customer,
            generate.CUSTOMER_COLUMNS,
            [
                (
                    number,
                    f"c-{number}",
                    f"customer{number}@bench.example",
                    program_id,
                    children[number % chains],
                    "click",
                    long_ago,
                    "",
                    None,
                    long_ago,
                )
                for number in range(1, customers + 1)
            ],
            customers,
        )
        writer.finish()
    asyncio.run(generate.rebuild_rollups(url))
    return Seeded(links=links, customers=[f"c-{number}" for number in range(1, customers + 1)], partners=3 * chains)
