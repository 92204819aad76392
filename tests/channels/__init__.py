"""Channels tests."""
