"""``NotifyWorkflow``: one durable notification. Contracts in ``models``, the flow in ``workflow``.

Importing the package gives the contracts only (``from workflows.notify import …``); the
workflow class is imported from ``workflows.notify.workflow`` by the worker alone.
"""

from workflows.notify.models import *  # noqa: F403
from workflows.notify.models import __all__ as __all__
