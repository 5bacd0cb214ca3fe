"""Imports every domain's models so `Base.metadata` knows all tables (Alembic, tests, create_all), and the
ORM listeners that keep derived rows (balance rows credited at commit, the rollups) in step with them."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "partners.ledger.models",
    "partners.identity.models",
    "partners.jobs.models",
    "partners.audit.models",
    "partners.programs.models",
    "partners.affiliates.models",
    "partners.tracking.models",
    "partners.events.models",
    "partners.commissions.models",
    "partners.disputes.models",
    "partners.payouts.models",
    "partners.rollups.models",
)
LISTENER_MODULES = ("partners.ledger.listeners", "partners.rollups.listeners")


def load_all_models() -> None:
    for module in (*MODEL_MODULES, *LISTENER_MODULES):
        importlib.import_module(module)
