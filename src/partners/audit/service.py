from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.audit.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    kind: str  # staff | partner | host | system
    id: str

    @classmethod
    def system(cls) -> Actor:
        return cls("system", "system")


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    subject_type: str,
    subject_id: int | str,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor_kind=actor.kind,
        actor_id=actor.id,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        details=details or {},
    )
    session.add(entry)
    await session.flush()
    return entry


async def entries_for(session: AsyncSession, subject_type: str, subject_id: int | str) -> list[AuditEntry]:
    result = await session.execute(
        sa.select(AuditEntry)
        .where(AuditEntry.subject_type == subject_type, AuditEntry.subject_id == str(subject_id))
        .order_by(AuditEntry.id)
    )
    return list(result.scalars())
