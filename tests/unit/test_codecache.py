"""The worker compiles flow modules once per process (workers/codecache.py), and the sandbox still re-runs them."""

from __future__ import annotations

import importlib.machinery
import sys
from types import ModuleType

import pytest

from workers import codecache
from workers.registry import workflow_runner


def _fresh(name: str) -> ModuleType:
    """Import ``name`` anew, as the sandbox does for every run (its own ``sys.modules``); the original is put back."""
    parent, _, child = name.rpartition(".")
    original = sys.modules.pop(name)
    try:
        return importlib.import_module(name)
    finally:
        sys.modules[name] = original
        setattr(sys.modules[parent], child, original)


def test_the_workflow_runner_installs_the_finder_once() -> None:
    workflow_runner()
    workflow_runner()
    finders = [f for f in sys.meta_path if type(f).__name__ == "_OwnModulesFinder"]
    assert len(finders) == 1
    assert sys.meta_path[0] is finders[0]


def test_own_modules_are_compiled_once_and_executed_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    codecache.install()
    calls: list[str] = []
    real = importlib.machinery.SourceFileLoader.get_code

    def counting(self: importlib.machinery.SourceFileLoader, fullname: str) -> object:
        calls.append(fullname)
        return real(self, fullname)

    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "get_code", counting)
    name = "workflows.incident.deliveries"  # a flow module the sandbox re-imports for every incident
    first, second = _fresh(name), _fresh(name)
    assert isinstance(first.__loader__, codecache.CachedSourceLoader)
    # The second run found its code in memory; the first compiled (or unmarshalled) it unless an
    # earlier test already had: at most one compile for both.
    assert calls.count(name) <= 1
    assert codecache.compiled() >= 1
    # Each run still has its own module state: new classes, new globals (the sandbox's promise).
    assert first is not second
    assert first.__dict__ is not second.__dict__
    classes = [v for v in vars(first).values() if isinstance(v, type) and v.__module__ == name]
    assert classes, f"{name} defines no class to compare"
    assert all(getattr(second, c.__name__) is not c for c in classes)


def test_other_packages_are_left_to_the_usual_finders() -> None:
    codecache.install()
    import yaml

    import workflows

    finder = next(f for f in sys.meta_path if type(f).__name__ == "_OwnModulesFinder")
    assert finder.find_spec("yaml.constructor", yaml.__path__) is None
    assert finder.find_spec("workflows.timer", workflows.__path__) is not None


@pytest.mark.parametrize("name", ["workflows.incident", "workflows.incident.chat"])  # a package, a module
def test_a_module_found_once_is_found_again_without_the_file_system(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    codecache.install()
    import workflows

    finder = next(f for f in sys.meta_path if type(f).__name__ == "_OwnModulesFinder")
    path = workflows.__path__ if name.count(".") == 1 else sys.modules["workflows.incident"].__path__
    first = finder.find_spec(name, path)
    searched: list[str] = []
    real = importlib.machinery.PathFinder.find_spec

    def counting(fullname: str, *args: object) -> object:
        searched.append(fullname)
        return real(fullname, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", counting)
    second = finder.find_spec(name, path)
    assert searched == [], "the second look-up asked the file system again"
    assert first is not None and second is not None and first is not second
    assert isinstance(second.loader, codecache.CachedSourceLoader)
    for attribute in ("name", "origin", "parent", "submodule_search_locations", "cached", "has_location"):
        assert getattr(second, attribute) == getattr(first, attribute), attribute
    assert _fresh(name).__spec__.origin == first.origin
