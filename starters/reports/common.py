"""What the report parsers share: :class:`ReportError`, reading files, safe XML and JSON, number parsing."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

__all__ = [
    "ReportError",
    "JUNIT_FLAG",
    "COVERAGE_FLAG",
    "SARIF_FLAG",
    "read_report",
    "file_error",
    "parse_xml",
    "parse_json",
    "local_name",
    "parse_number",
    "parse_count",
    "first_line",
    "as_mapping",
]

JUNIT_FLAG = "--junit"
COVERAGE_FLAG = "--coverage"
SARIF_FLAG = "--sarif"


class ReportError(ValueError):
    """A report file given to ``tocsin build`` could not be used.

    Attributes:
        field: The CLI flag the file was given with, e.g. ``"--junit"``.
        path: The file.
        reason: What is wrong with it, without the flag and file name.
    """

    def __init__(self, field: str, path: Path | str, reason: str) -> None:
        """Builds the error.

        Args:
            field: The CLI flag, e.g. ``"--junit"``.
            path: The offending file.
            reason: A short description of the problem.
        """
        self.field = field
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{field}: {path}: {reason}")


def file_error(field: str, path: Path, exc: OSError) -> ReportError:
    """The :class:`ReportError` for a file that could not be read."""
    if isinstance(exc, FileNotFoundError):
        return ReportError(field, path, "file not found")
    if isinstance(exc, IsADirectoryError):
        return ReportError(field, path, "is a directory, not a file")
    if isinstance(exc, PermissionError):
        return ReportError(field, path, "permission denied")
    return ReportError(field, path, f"cannot read file ({exc.strerror or exc})")


def read_report(field: str, path: Path) -> bytes:
    """Reads a whole report file, turning OS errors into ``ReportError``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise file_error(field, path, exc) from None
    if not data.strip():
        raise ReportError(field, path, "file is empty")
    return data


def parse_xml(field: str, path: Path, data: bytes, what: str) -> Element:
    """Parses XML safely (no entity declarations, no external references)."""
    try:
        return SafeET.fromstring(data)
    except defusedxml.DefusedXmlException as exc:
        raise ReportError(field, path, f"refused unsafe XML ({type(exc).__name__})") from None
    except ParseError as exc:
        raise ReportError(field, path, f"not a {what} (not well-formed XML: {exc})") from None
    except (ValueError, RecursionError) as exc:
        raise ReportError(field, path, f"not a {what} (unreadable XML: {exc})") from None


def parse_json(field: str, path: Path, data: bytes, what: str) -> Any:
    """Parses JSON (any of the encodings ``json`` detects, BOM allowed)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise ReportError(field, path, f"not a {what} (not valid JSON: {exc})") from None


def local_name(tag: object) -> str:
    """The tag name without any ``{namespace}`` prefix."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def parse_number(value: object) -> float | None:
    """Parses a number from an attribute, tolerating thousands separators.

    Accepts ``"1,234.5"`` (Maven surefire 3.0/3.1 with grouping) as 1234.5
    and ``"0,160"`` (a decimal comma from some locales) as 0.16. Returns
    None for missing, unparseable, negative or non-finite values.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if not text:
            return None
        if "," in text:
            if "." in text or re.fullmatch(r"[+-]?[1-9]\d{0,2}(,\d{3})+", text):
                text = text.replace(",", "")
            elif text.count(",") == 1:
                text = text.replace(",", ".")
            else:
                return None
        try:
            number = float(text)
        except ValueError:
            return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def parse_count(value: object) -> int:
    """Parses a non-negative count from an attribute (0 when unusable)."""
    number = parse_number(value)
    return int(number) if number is not None else 0


def first_line(text: str, limit: int) -> str:
    """The first non-blank line of ``text``, trimmed to ``limit`` characters."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "\u2026"
    return ""


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a JSON object), else an empty one."""
    return value if isinstance(value, Mapping) else {}
