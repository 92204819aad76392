"""Roles and who may approve: pure decisions over plain names (no config objects, no I/O).

A role is ``builder``, ``responder``, ``silencer``, ``admin``, or ``deployer:<env>`` /
``approver:<env>``; ``admin`` grants every role and ``*`` as the environment matches every
one. ``operations.auth`` decides with :func:`grants` before any workflow is called; a
deployment uses :func:`approver_pool` (the same rule) to check approvals itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

__all__ = ["grants", "listed", "approver_pool", "Person"]

Person = tuple[str, Collection[str], Collection[str]]
"""(name, groups, roles) of a configured user."""


def grants(roles: Iterable[str], role: str) -> bool:
    """Whether holding ``roles`` grants ``role`` (``admin`` grants all; ``approver:*`` every environment)."""
    kind, _, env = role.partition(":")
    for held in roles:
        if held == "admin" or held == role:
            return True
        held_kind, _, held_env = held.partition(":")
        if env and held_kind == kind and held_env == "*":
            return True
    return False


def listed(approvers: Collection[str], name: str, groups: Collection[str]) -> bool:
    """Whether ``environments.<env>.approvers`` names ``name`` or one of its ``groups``."""
    return name in approvers or any(g in approvers for g in groups)


def approver_pool(env: str, approvers: Sequence[str], people: Iterable[Person]) -> list[str]:
    """Who may approve in ``env``: the names listed, members of listed groups, holders of ``approver:<env>``.

    An empty list stays empty (anyone may approve; authorization happens before the workflow).
    Group names stay in the list (a user may be named like a group); order: listed first.
    """
    if not approvers:
        return []
    pool = list(dict.fromkeys(approvers))
    for name, groups, roles in people:
        if name not in pool and (listed(approvers, name, groups) or grants(roles, f"approver:{env}")):
            pool.append(name)
    return pool
