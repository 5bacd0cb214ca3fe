"""Placeholder until the jobs module lands."""
