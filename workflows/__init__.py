"""Tocsin's workflows (deterministic), their contracts (pydantic models) and ``policy/`` (pure functions).

The list of workflow types a worker registers lives in ``workers.registry``.
"""
