"""Operations call workflows by contract: the names in ``workflows/<flow>/models.py``.

Each name a contract declares must be what the workflow class registers, so a
renamed handler fails here instead of at a user's ``tocsin ack``.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from temporalio.workflow import _Definition

from workers.registry import WORKFLOWS
from workflows import deployment, incident, notify, patterns, pipeline, report, silences

BY_NAME = {_Definition.must_from_class(cls).name: _Definition.must_from_class(cls) for cls in WORKFLOWS}

CASES: list[tuple[ModuleType, str, str]] = [
    (incident, "WORKFLOW", ""),
    (pipeline, "WORKFLOW", ""),
    (notify, "WORKFLOW", ""),
    (silences, "WORKFLOW", ""),
    (report, "WORKFLOW", ""),
    (deployment, "WORKFLOW", ""),
    (deployment, "LOCK_WORKFLOW", "LOCK_"),
    (patterns, "WORKFLOW", ""),
]


def _declared(module: ModuleType, prefix: str) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {"SIGNAL": [], "QUERY": [], "UPDATE": []}
    for attr in dir(module):
        for kind in kinds:
            wanted = f"{prefix}{kind}_"
            if attr.startswith(wanted) and (prefix or not attr.startswith("LOCK_")):
                kinds[kind].append(getattr(module, attr))
    return kinds


@pytest.mark.parametrize(("module", "name_attr", "prefix"), CASES, ids=[f"{m.__name__}.{a}" for m, a, _ in CASES])
def test_contract_names_are_registered(module: ModuleType, name_attr: str, prefix: str) -> None:
    name = getattr(module, name_attr)
    assert name in BY_NAME, f"{module.__name__}.{name_attr} = {name!r} is not a registered workflow type"
    defn = BY_NAME[name]
    declared = _declared(module, prefix)
    assert set(declared["SIGNAL"]) <= set(defn.signals), (name, declared["SIGNAL"], sorted(defn.signals))
    assert set(declared["QUERY"]) <= set(defn.queries), (name, declared["QUERY"], sorted(defn.queries))
    assert set(declared["UPDATE"]) <= set(defn.updates), (name, declared["UPDATE"], sorted(defn.updates))


def test_every_registered_workflow_has_a_contract() -> None:
    declared = {getattr(m, a) for m, a, _ in CASES}
    assert declared == set(BY_NAME)
