"""``IncidentWorkflow``: one per alert group. Contracts in ``models``, the flow in ``workflow``.

Importing the package gives the contracts only (``from workflows.incident import …``); the
workflow class is imported from ``workflows.incident.workflow`` by the worker alone.
"""

from workflows.incident.models import *  # noqa: F403
from workflows.incident.models import __all__ as __all__
