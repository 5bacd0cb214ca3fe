"""Payout rails, one module per rail, all implementing `base.PayoutProvider`.

Each module exposes one class built from the settings:
    platform_credit.PlatformCreditProvider(settings)
    paypal.PayPalProvider(settings)
    sepa.SepaProvider(settings)
    ach.AchProvider(settings)
    manual.ManualProvider(settings, method)   # wise, crypto and any other rail: a CSV for finance
"""

from __future__ import annotations

import importlib
from typing import Any

from partners.payouts.providers.base import PayoutProvider
from partners.settings import Settings

# method -> (module, class); modules are imported on first use.
PROVIDER_CLASSES: dict[str, tuple[str, str]] = {
    "platform_credit": ("partners.payouts.providers.platform_credit", "PlatformCreditProvider"),
    "paypal": ("partners.payouts.providers.paypal", "PayPalProvider"),
    "sepa": ("partners.payouts.providers.sepa", "SepaProvider"),
    "ach": ("partners.payouts.providers.ach", "AchProvider"),
    "wise": ("partners.payouts.providers.manual", "ManualProvider"),
    "crypto": ("partners.payouts.providers.manual", "ManualProvider"),
}

_overrides: dict[str, PayoutProvider] = {}


def get_provider(method: str, settings: Settings) -> PayoutProvider:
    override = _overrides.get(method)
    if override is not None:
        return override
    if method not in PROVIDER_CLASSES:
        raise LookupError(f"no payout provider for method {method!r}")
    module_name, class_name = PROVIDER_CLASSES[method]
    provider_class: Any = getattr(importlib.import_module(module_name), class_name)
    if class_name == "ManualProvider":
        provider: PayoutProvider = provider_class(settings, method)
    else:
        provider = provider_class(settings)
    return provider


def override_provider(method: str, provider: PayoutProvider | None) -> None:
    """Tests: replace the provider of a method (None restores the real one)."""
    if provider is None:
        _overrides.pop(method, None)
    else:
        _overrides[method] = provider
