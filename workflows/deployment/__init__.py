"""``DeploymentWorkflow`` and its lock ``DeployLockWorkflow``. Contracts in ``models``.

Importing the package gives the contracts only (``from workflows.deployment import …``):
names, ids and models. The workflow classes are imported from
``workflows.deployment.workflow`` and ``workflows.deployment.lock`` by the worker alone,
so code outside Temporal never imports workflow (or activity) modules.
"""

from workflows.deployment.models import *  # noqa: F403
from workflows.deployment.models import __all__ as __all__
