"""``ReportWorkflow``: scheduled reports and digests. Contracts in ``models``, the flow in ``workflow``.

Importing the package gives the contracts only (``from workflows.report import …``); the
workflow class is imported from ``workflows.report.workflow`` by the worker alone.
"""

from workflows.report.models import *  # noqa: F403
from workflows.report.models import __all__ as __all__
