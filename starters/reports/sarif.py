"""SARIF 2.1.0 logs (CodeQL, Semgrep, Trivy...) → one ``SecuritySummary`` per run."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starters.reports.common import SARIF_FLAG, ReportError, as_mapping, parse_json, read_report
from workflows.pipeline.models import MAX_SECURITY_FINDINGS, SecurityFinding, SecuritySummary

__all__ = ["parse_sarif", "MAX_FINDINGS", "SERIOUS_CVSS"]

MAX_FINDINGS = 10
"""How many findings a ``SecuritySummary`` lists in ``top``."""
_MAX_FINDING = 300
_LEVEL_RANK = {"error": 0, "warning": 1, "note": 2}
_PLACEHOLDER_LINK = re.compile(r"\[([^\]]*)\]\((?:\d+|[a-z]+://[^)]*)\)")
SERIOUS_CVSS = 7.0
"""A CVSS score (``properties.security-severity``) from which a finding is serious whatever its level."""
_CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE)
_PACKAGE_LINE = re.compile(r"\bPackage:\s*([^\s,;]+)")
_PACKAGE_KEYS = ("package", "packageName", "purl")
_MAX_NAME = 200


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _norm_level(value: Any) -> str | None:
    """Maps a SARIF level (or a CodeQL ``problem.severity``) to a bucket."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    if value == "error":
        return "error"
    if value == "warning":
        return "warning"
    if value in ("note", "none", "recommendation"):
        return "note"
    return None


class _Run:
    """Rule and artifact lookups for one SARIF run."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        tool = as_mapping(run.get("tool"))
        self.driver = as_mapping(tool.get("driver"))
        self.extensions = [as_mapping(ext) for ext in _seq(tool.get("extensions"))]
        self.artifacts = _seq(run.get("artifacts"))
        self.by_id: dict[str, Mapping[str, Any]] = {}
        for component in [self.driver, *self.extensions]:
            for rule in _seq(component.get("rules")):
                rule = as_mapping(rule)
                rule_id = rule.get("id")
                if isinstance(rule_id, str):
                    self.by_id.setdefault(rule_id, rule)

    def rule(self, result: Mapping[str, Any]) -> Mapping[str, Any]:
        """The rule (``reportingDescriptor``) a result refers to, or ``{}``."""
        ref = as_mapping(result.get("rule"))
        index = _index(ref.get("index"))
        if index is None:
            index = _index(result.get("ruleIndex"))
        component = self.driver
        tc_index = _index(as_mapping(ref.get("toolComponent")).get("index"))
        if tc_index is not None:
            component = self.extensions[tc_index] if tc_index < len(self.extensions) else {}
        rules = _seq(component.get("rules"))
        if index is not None and index < len(rules):
            return as_mapping(rules[index])
        rule_id = result.get("ruleId") or ref.get("id")
        if isinstance(rule_id, str):
            return self.by_id.get(rule_id, {})
        return {}

    def uri(self, artifact_location: Mapping[str, Any]) -> str:
        """The URI of an ``artifactLocation`` (directly or via ``index``)."""
        uri = artifact_location.get("uri")
        if isinstance(uri, str) and uri:
            return uri
        index = _index(artifact_location.get("index"))
        if index is not None and index < len(self.artifacts):
            uri = as_mapping(as_mapping(self.artifacts[index]).get("location")).get("uri")
            if isinstance(uri, str):
                return uri
        return ""


def _is_suppressed(result: Mapping[str, Any]) -> bool:
    """True when a result is suppressed (accepted, or status not given)."""
    statuses = [as_mapping(s).get("status") for s in _seq(result.get("suppressions"))]
    if not statuses:
        return False
    if any(status in ("underReview", "rejected") for status in statuses):
        return False
    return any(status in (None, "accepted") for status in statuses)


def _result_level(result: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """The result's level: its own, else the rule's default, else warning."""
    level = _norm_level(result.get("level"))
    if level is None:
        level = _norm_level(as_mapping(rule.get("defaultConfiguration")).get("level"))
    if level is None:
        level = _norm_level(as_mapping(rule.get("properties")).get("problem.severity"))
    if level is None and isinstance(result.get("kind"), str) and result["kind"] != "fail":
        level = "note"  # SARIF: a non-"fail" kind implies level "none"
    return level or "warning"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _message(result: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """The result's message (its text, else the rule's message string or short description), on one line."""
    message = as_mapping(result.get("message"))
    text = message.get("text") or message.get("markdown")
    if not isinstance(text, str) or not text:
        msg_id = message.get("id")
        strings = as_mapping(rule.get("messageStrings"))
        text = as_mapping(strings.get(msg_id)).get("text") if isinstance(msg_id, str) else None
    if not isinstance(text, str) or not text:
        text = as_mapping(rule.get("shortDescription")).get("text") or ""
    return " ".join(_PLACEHOLDER_LINK.sub(r"\1", str(text)).split())


def _rule_id(result: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    rule_id = result.get("ruleId") or as_mapping(result.get("rule")).get("id") or rule.get("id") or ""
    return str(rule_id)


def _location(run: _Run, result: Mapping[str, Any]) -> str:
    """``uri:startLine`` of the result's first location (``uri`` without a line; ``""`` without one)."""
    locations = _seq(result.get("locations"))
    if not locations:
        return ""
    physical = as_mapping(as_mapping(locations[0]).get("physicalLocation"))
    uri = run.uri(as_mapping(physical.get("artifactLocation")))
    line = _index(as_mapping(physical.get("region")).get("startLine"))
    if not uri:
        return ""
    return f"{uri}:{line}" if line is not None else uri


def _finding(run: _Run, result: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """Formats one result as ``ruleId: message (uri:startLine)``."""
    rule_id = _rule_id(result, rule)
    text = _message(result, rule)
    where = _location(run, result)
    head = f"{rule_id}: {text}" if rule_id and text else str(rule_id or text or "(no message)")
    return _clip(head + (f" ({where})" if where else ""), _MAX_FINDING)


def _cvss(value: Any) -> float | None:
    """A CVSS score from ``security-severity`` (a string or a number, 0-10), else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        score = float(value)
    except ValueError:
        return None
    return score if math.isfinite(score) and 0 <= score <= 10 else None


def _score(result: Mapping[str, Any], rule: Mapping[str, Any]) -> float | None:
    """``properties.security-severity`` of the result, else of its rule (GitHub's convention)."""
    found = _cvss(as_mapping(result.get("properties")).get("security-severity"))
    return found if found is not None else _cvss(as_mapping(rule.get("properties")).get("security-severity"))


def _strings(value: Any) -> list[str]:
    """The strings of a property value (a string, or a list of them)."""
    if isinstance(value, str):
        return [value]
    return [item for item in _seq(value) if isinstance(item, str)]


def _cve(rule_id: str, result: Mapping[str, Any], rule: Mapping[str, Any], message: str) -> str | None:
    """The first ``CVE-YYYY-NNNN…`` in the rule id, the rule's and result's tags and properties, or the message."""
    props = [as_mapping(rule.get("properties")), as_mapping(result.get("properties"))]
    places = [rule_id, str(rule.get("name") or "")]
    for prop in props:
        for key in ("tags", "cve", "cves", "cveId", "vulnerabilityId"):
            places.extend(_strings(prop.get(key)))
    places.append(message)
    for place in places:
        match = _CVE.search(place)
        if match:
            return match.group(0).upper()
    return None


def _package(result: Mapping[str, Any], rule: Mapping[str, Any], message: str) -> str | None:
    """``package``/``packageName``/``purl`` of the result's or the rule's properties, else Trivy's ``Package: x``."""
    for prop in (as_mapping(result.get("properties")), as_mapping(rule.get("properties"))):
        for key in _PACKAGE_KEYS:
            value = prop.get(key)
            if isinstance(value, str) and value.strip():
                return _clip(value.strip(), _MAX_NAME)
    help_text = as_mapping(rule.get("help")).get("text")
    for text in (message, help_text if isinstance(help_text, str) else ""):
        match = _PACKAGE_LINE.search(text)
        if match:
            return _clip(match.group(1), _MAX_NAME)
    return None


def _serious(run: _Run, result: Mapping[str, Any], rule: Mapping[str, Any], level: str) -> SecurityFinding | None:
    """The result as a :class:`SecurityFinding` when it is serious (level ``error`` or CVSS ≥ 7), else None."""
    cvss = _score(result, rule)
    if level != "error" and (cvss is None or cvss < SERIOUS_CVSS):
        return None
    rule_id = _rule_id(result, rule)
    message = _message(result, rule)
    cve = _cve(rule_id, result, rule, message)
    return SecurityFinding(
        rule=_clip(rule_id or cve or "(no rule)", _MAX_NAME),
        cve=cve,
        package=_package(result, rule, message),
        location=_clip(_location(run, result), _MAX_FINDING),
        level=level,
        cvss=cvss,
        message=_clip(message, _MAX_FINDING),
    )


def _sarif_run(path: Path, run: Mapping[str, Any]) -> SecuritySummary:
    lookup = _Run(run)
    name = lookup.driver.get("name")
    counts = {"error": 0, "warning": 0, "note": 0}
    findings: list[tuple[int, int, str]] = []
    serious: list[tuple[float, int, int, SecurityFinding]] = []
    results = run.get("results")
    if results is not None and not isinstance(results, list):
        raise ReportError(SARIF_FLAG, path, "not a SARIF report (run results is not a list)")
    for position, result in enumerate(results or []):
        if not isinstance(result, Mapping):
            continue
        if result.get("kind") in ("pass", "notApplicable") or result.get("baselineState") == "absent":
            continue  # not a finding
        if _is_suppressed(result):
            continue
        rule = lookup.rule(result)
        level = _result_level(result, rule)
        counts[level] += 1
        findings.append((_LEVEL_RANK[level], position, _finding(lookup, result, rule)))
        found = _serious(lookup, result, rule, level)
        if found is not None:
            serious.append((-(found.cvss or 0.0), _LEVEL_RANK[level], position, found))
    findings.sort()
    serious.sort(key=lambda item: item[:3])
    return SecuritySummary(
        tool=name if isinstance(name, str) and name else "unknown",
        error=counts["error"],
        warning=counts["warning"],
        note=counts["note"],
        top=[text for _, _, text in findings[:MAX_FINDINGS]],
        critical=len(serious),
        findings=[found for *_, found in serious[:MAX_SECURITY_FINDINGS]],
    )


def parse_sarif(paths: list[Path]) -> list[SecuritySummary]:
    """Summarises SARIF 2.1.0 logs, one summary per run.

    Results are counted by level: the result's ``level``, else the rule's
    ``defaultConfiguration.level`` (rules found via ``ruleIndex``,
    ``rule.toolComponent`` extensions as CodeQL writes them, or ``ruleId``),
    else ``"warning"``; ``"none"`` counts as a note. Suppressed results,
    ``pass``/``notApplicable`` results and baseline-``absent`` results are not
    findings and are skipped.

    Args:
        paths: The files given with ``--sarif``.

    Returns:
        One summary per run, in file and run order; ``top`` lists the first
        ``MAX_FINDINGS`` findings as ``ruleId: message (uri:startLine)``,
        errors first, then warnings, then notes. ``critical`` counts the
        serious findings (level ``error``, or a CVSS score of at least
        ``SERIOUS_CVSS`` in ``properties.security-severity`` of the result or
        its rule, a string or a number as GitHub code scanning reads it);
        ``findings`` carries the first ``MAX_SECURITY_FINDINGS`` of them, the
        highest score first, with the rule, the CVE (``CVE-YYYY-NNNN`` in the
        rule id, the rule's or result's tags and properties, or the message),
        the package (``properties.package``/``packageName``/``purl`` of the
        result or the rule, else Trivy's ``Package: x`` in the message or the
        rule's help), ``file:line`` and the message on one line.

    Raises:
        ReportError: A file is missing, unreadable, not JSON or not SARIF.
    """
    summaries: list[SecuritySummary] = []
    for path in paths:
        data = read_report(SARIF_FLAG, path)
        doc = parse_json(SARIF_FLAG, path, data, "SARIF report")
        if not isinstance(doc, Mapping) or not isinstance(doc.get("runs"), list):
            raise ReportError(SARIF_FLAG, path, "not a SARIF report (no runs list)")
        version = doc.get("version")
        if isinstance(version, str) and not version.startswith("2."):
            raise ReportError(SARIF_FLAG, path, f"unsupported SARIF version {version} (need 2.1.0)")
        for run in doc["runs"]:
            if not isinstance(run, Mapping):
                raise ReportError(SARIF_FLAG, path, "not a SARIF report (a run is not an object)")
            summaries.append(_sarif_run(path, run))
    return summaries
