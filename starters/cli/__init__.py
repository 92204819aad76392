"""The ``tocsin`` command line: one module per group of commands, all on one Typer app.

``common`` holds the app and the shared helpers (one mapping of operation
errors to exit codes); ``system``, ``builds``, ``incidents``,
``deployments``, ``tokens`` and ``metrics`` add their commands to it when imported.
"""

from __future__ import annotations

import os
import sys

from starters.cli import builds, deployments, flaky, incidents, metrics, reports, system, tokens
from starters.cli.common import app

__all__ = ["app", "main"]

_COMMAND_MODULES = (system, builds, incidents, deployments, tokens, metrics, reports, flaky)


def main() -> None:
    """Console-script entry point.

    Exits with ``os._exit`` after flushing: the Temporal client's native runtime
    threads can otherwise crash the interpreter's teardown (a fatal
    ``PyGILState_Release`` after the work is already done).
    """
    code = 0
    try:
        app()  # standalone mode: ends with SystemExit carrying the exit code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
