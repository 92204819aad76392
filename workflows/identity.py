"""Who acts: the :class:`Actor` every human action carries (a contract: it enters workflow history)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["Actor", "Method", "Door"]

Method = Literal["token", "oidc", "slack", "pagerduty", "unverified", "system"]
Door = Literal["cli", "api", "slack", "pagerduty", "ui", "alertmanager", "tocsin"]


class Actor(BaseModel):
    """A person or system acting on Tocsin, and how we know who they are."""

    name: str
    """The identity's name (a ``users[].name``, an OIDC ``as``, or a typed ``--by`` when unverified)."""
    verified: bool = False
    """True when a credential proved the name (API token, OIDC, Slack or PagerDuty signature)."""
    method: Method = "unverified"
    credential: str = ""
    """Which credential proved it: a token id, an OIDC subject, a Slack user id (never a secret)."""
    via: Door = "cli"
    """The door the action came through."""

    def keys(self) -> frozenset[str]:
        """What identifies the person, for four eyes: the name (case-folded) and, when verified by Slack,
        PagerDuty or OIDC, the credential (a Slack user id names one person whatever name it maps to).
        Token ids are not keys: two users may each have a token called ``laptop``."""
        found = {"name:" + self.name.strip().casefold()}
        if self.verified and self.credential and self.method in ("slack", "pagerduty", "oidc"):
            found.add(f"{self.method}:{self.credential}")
        return frozenset(found)

    @classmethod
    def system(cls, name: str = "tocsin", via: Door = "tocsin") -> Actor:
        """Tocsin itself (a rollback trigger, a schedule)."""
        return cls(name=name, verified=True, method="system", via=via)
