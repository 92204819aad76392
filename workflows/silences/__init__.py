"""``SilencesWorkflow``: the durable silences store. Contracts in ``models``, the flow in ``workflow``.

Importing the package gives the contracts only (``from workflows.silences import …``); the
workflow class is imported from ``workflows.silences.workflow`` by the worker alone.
"""

from workflows.silences.models import *  # noqa: F403
from workflows.silences.models import __all__ as __all__
