"""API tokens: ``tocsin token create --user U [--id NAME] [--expires D]``.

The token is printed once, on stdout (so ``TOKEN=$(tocsin token create --user alice)`` keeps
it out of the terminal's scrollback); the line to add to ``users[].tokens`` in ``tocsin.yaml``
goes to stderr. Tocsin stores only the token's SHA-256: a lost token cannot be recovered, only
replaced (create another, remove the old line).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Optional

import typer

from operations.auth import hash_token, new_token
from starters.cli.common import app, bad_input, load_config_or_exit
from workflows.policy.durations import DurationError, parse_duration

__all__ = ["token_app", "expiry", "token_line"]

token_app = typer.Typer(help="API tokens (for TOCSIN_URL / TOCSIN_TOKEN).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(token_app, name="token")

DEFAULT_EXPIRY = "90d"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def expiry(value: str, today: date) -> date | None:
    """The last day a token is accepted: ``never``, a date (``2027-03-01``) or a duration from today (``90d``).

    Raises:
        ValueError: none of those, or a day already past.
    """
    text = value.strip()
    if text.lower() == "never":
        return None
    day = _date(text)
    if day is None:
        try:
            length = parse_duration(text)
        except DurationError:
            raise ValueError(f"not a duration (90d, 12w) or a date (YYYY-MM-DD): {value!r}") from None
        if length < timedelta(days=1):
            raise ValueError(f"must be at least one day, got {value!r}")
        day = today + timedelta(days=length.days)
    if day < today:
        raise ValueError(f"{day.isoformat()} is in the past")
    return day


def token_line(token_id: str, digest: str, expires: date | None) -> str:
    """The ``users[].tokens`` entry, as one YAML flow mapping."""
    return f"- {{id: {token_id}, sha256: {digest}" + (f", expires: {expires.isoformat()}}}" if expires else "}")


@token_app.command("create")
def create(
    user: str = typer.Option(..., "--user", metavar="U", help="The user the token acts as (a users[].name)."),
    token_id: Optional[str] = typer.Option(
        None, "--id", metavar="NAME", help="The token's id, recorded with each action (default: token-YYYYMMDD)."
    ),
    expires: str = typer.Option(
        DEFAULT_EXPIRY, "--expires", metavar="D", help="A duration (90d), a date (YYYY-MM-DD) or 'never'."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", metavar="FILE", help="Config file whose users --user must be in (default: $TOCSIN_CONFIG)."
    ),
) -> None:
    """Print a new API token once (stdout) and the line to add to the user's tokens in tocsin.yaml (stderr)."""
    name = user.strip()
    if not name:
        bad_input("--user", "must not be empty")
    users = load_config_or_exit(config).users
    if users and name not in {u.name for u in users}:
        bad_input("--user", f"no user {name!r} in the config (users: {', '.join(u.name for u in users)})")
    today = datetime.now(UTC).date()
    chosen = (token_id or f"token-{today:%Y%m%d}").strip()
    if not _ID.match(chosen):
        bad_input("--id", f"letters, digits, '.', '_' or '-', at most 64, got {chosen!r}")
    if any(t.id == chosen for u in users if u.name == name for t in u.tokens):
        bad_input("--id", f"{name} already has a token {chosen!r} (choose another --id)")
    try:
        last_day = expiry(expires, today)
    except ValueError as exc:
        bad_input("--expires", str(exc))
    token = new_token()
    typer.echo(token)
    typer.echo(f"Add under users[name={name}].tokens in tocsin.yaml (the token is not shown again):", err=True)
    typer.echo(f"  {token_line(chosen, hash_token(token), last_day)}", err=True)
