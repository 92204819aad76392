"""Workflows tests."""
