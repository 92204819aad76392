"""``FailurePatternsWorkflow``: one failure signature across pipelines. Contracts in ``models``, the flow in ``workflow``.

Importing the package gives the contracts only (``from workflows.patterns import FailureSeen``); the
workflow class is imported from ``workflows.patterns.workflow`` by the worker alone.
"""

from workflows.patterns.models import *  # noqa: F403
from workflows.patterns.models import __all__ as __all__
