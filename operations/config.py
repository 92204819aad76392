"""Loading ``tocsin.yaml``: file, YAML, ``${ENV}`` references, validation.

The worker holds a :class:`ConfigStore`; workflows get a snapshot through the
``load_config`` activity (recorded in history, secrets stripped). Starters use
:func:`load_config_file` for ``config check`` and ``routes test``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from workflows.config import Config, ConfigIssue, default_config, validate_references

__all__ = ["ConfigError", "config_path", "load_config_file", "parse_config", "resolve_env", "ConfigStore"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config that cannot be used; ``issues`` name each key path."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: explicit, ``$TOCSIN_CONFIG``, ``./tocsin.yaml``, or none."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("TOCSIN_CONFIG")
    if env:
        return Path(env)
    local = Path("tocsin.yaml")
    return local if local.exists() else None


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "continue_":
            out += ".continue"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_config(data: Any) -> tuple[Config, list[ConfigIssue]]:
    """Validate a parsed YAML document.

    Returns:
        The config and its warnings.

    Raises:
        ConfigError: with every error found, each naming its key path.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(path="(root)", message="the config must be a mapping")])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            # channel type unions add the literal's tag to the location; drop it.
            issues.append(ConfigIssue(path=_loc(loc) or "(root)", message=err["msg"].removeprefix("Value error, ")))
        raise ConfigError(issues) from None
    found = validate_references(config)
    errors = [i for i in found if i.level == "error"]
    if errors:
        raise ConfigError(errors)
    return config, [i for i in found if i.level == "warning"]


def load_config_file(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the config file, or the built-in default when there is none.

    ``${ENV}`` references are *not* resolved here: that happens in the worker,
    at send time (:func:`resolve_env`).

    Raises:
        ConfigError: the file is missing, not YAML, or invalid.
    """
    chosen = config_path(path)
    if chosen is None:
        return default_config()
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(path=str(chosen), message=f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([ConfigIssue(path=str(chosen), message=f"not valid YAML{where}")]) from None
    config, _ = parse_config(data)
    return config


def resolve_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace ``${NAME}`` (or ``${NAME:-default}``) in strings, recursively.

    Raises:
        KeyError: a referenced variable is unset and has no default.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise KeyError(name)

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: resolve_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, env) for v in value]
    return value


class ConfigStore:
    """The worker's view of the config file, reloaded when the file changes."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self._path = config_path(path)
        self._mtime: float | None = None
        self._config = default_config() if self._path is None else load_config_file(self._path)
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        if self._path is None:
            return None
        try:
            return self._path.stat().st_mtime
        except OSError:
            return None

    @property
    def path(self) -> Path | None:
        """The file in use (None: built-in defaults)."""
        return self._path

    def get(self) -> Config:
        """The current config; a changed file is reloaded, a broken one keeps the last good."""
        mtime = self._stat()
        if mtime != self._mtime:
            try:
                self._config = load_config_file(self._path)
            except ConfigError:
                pass
            self._mtime = mtime
        return self._config
