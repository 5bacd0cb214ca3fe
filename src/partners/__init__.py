"""Namaskah Partners: affiliate, partner and reseller platform."""

__version__ = "0.1.0"
