"""Staff view of the outbox: list jobs, replay dead ones (the CLI `partners jobs` does the same)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from partners.identity.deps import require_staff
from partners.identity.principals import StaffPrincipal
from partners.jobs import service
from partners.kit.deps import SessionDep

router = APIRouter(prefix="/admin/jobs", tags=["jobs"])


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    last_error: str | None
    unique_key: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]


@router.get("", response_model=list[JobOut])
async def list_jobs(
    session: SessionDep,
    staff: Annotated[StaffPrincipal, Depends(require_staff("jobs:read"))],
    status: Annotated[str | None, Query(description="queued, running, done or dead")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Any]:
    return await service.list_jobs(session, status=status, limit=limit)


@router.post("/{job_id}/replay", response_model=JobOut)
async def replay_job(
    job_id: int, session: SessionDep, staff: Annotated[StaffPrincipal, Depends(require_staff("jobs:manage"))]
) -> Any:
    return await service.replay_job(session, job_id)
