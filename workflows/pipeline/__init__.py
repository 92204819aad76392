"""``PipelineWorkflow``: one entity per repository branch. Contracts in ``models``, the flow in ``workflow``.

Importing the package gives the contracts only (``from workflows.pipeline import …``); the
workflow class is imported from ``workflows.pipeline.workflow`` by the worker alone.
"""

from workflows.pipeline.models import *  # noqa: F403
from workflows.pipeline.models import __all__ as __all__
