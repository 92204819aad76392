"""Compile Tocsin's flow modules once per worker process, not once per workflow run.

The workflow sandbox re-imports every module that is not passed through (the flows themselves:
``workflows.incident.workflow``, ``workflows.delivery`` …) for each workflow run it creates, so a
``datetime.now()`` in flow code is caught (tests/workflows/test_sandbox.py). Each of those imports
asks the module's loader for its code object. With a ``__pycache__`` next to the sources that is a
read and an unmarshal; without one — ``PYTHONDONTWRITEBYTECODE=1``, as many container images set, or
a read-only install — it is a full compile of the source, every time. Measured with
``bench/ingest.py``, compiling was 30 % of a worker's CPU while it started 50 incidents a round.

:func:`install` puts a finder first on ``sys.meta_path`` for Tocsin's own packages. It finds modules
exactly as the path finder does and only swaps the loader for one that keeps each module's code
object in memory, keyed by file. The sandbox semantics are unchanged: every run still executes the
module body afresh in its own namespace (a code object is immutable; the module state it creates is
not shared). A worker runs the code it was started with: a source file edited under a running worker
is not picked up, which is what a worker should do anyway (a flow changed mid-run is a replay
hazard).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from types import CodeType, ModuleType

__all__ = ["install", "OWN_PACKAGES", "CachedSourceLoader", "compiled"]

OWN_PACKAGES = ("workflows", "activities", "operations", "workers", "starters")
"""Top-level packages whose modules the finder serves (third-party installs ship ``.pyc`` files)."""

_codes: dict[str, CodeType] = {}
_lock = threading.Lock()


def compiled() -> int:
    """How many modules' code the cache holds (for tests and diagnostics)."""
    return len(_codes)


class CachedSourceLoader(importlib.machinery.SourceFileLoader):
    """A source file loader that compiles (or unmarshals) a module once per process."""

    def get_code(self, fullname: str) -> CodeType:
        """The module's code object, from memory after the first import."""
        code = _codes.get(self.path)
        if code is None:
            loaded = super().get_code(fullname)
            if loaded is None:  # pragma: no cover - a source loader always has code
                raise ImportError(f"no code for {fullname}", name=fullname)
            with _lock:
                code = _codes.setdefault(self.path, loaded)
        return code


class _OwnModulesFinder(importlib.abc.MetaPathFinder):
    """Finds Tocsin's modules like ``PathFinder`` does, with a :class:`CachedSourceLoader`.

    Where each module was found is kept too (by name and search path): a new run's imports then
    build a fresh spec without asking the file system again (a dozen ``stat`` calls per module).
    """

    def __init__(self) -> None:
        self._found: dict[tuple[str, tuple[str, ...] | None], tuple[str, list[str] | None]] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The path finder's spec for one of Tocsin's modules, loading through the code cache."""
        if fullname.partition(".")[0] not in OWN_PACKAGES:
            return None
        where = (fullname, tuple(path) if path is not None else None)
        found = self._found.get(where)
        if found is not None:
            origin, locations = found
            return importlib.util.spec_from_file_location(
                fullname, origin, loader=CachedSourceLoader(fullname, origin), submodule_search_locations=locations
            )
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec
        spec.loader = CachedSourceLoader(spec.loader.name, spec.loader.path)
        locations = list(spec.submodule_search_locations) if spec.submodule_search_locations is not None else None
        with _lock:
            self._found[where] = (spec.loader.path, locations)
        return spec


_finder = _OwnModulesFinder()


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once; later calls do nothing)."""
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
