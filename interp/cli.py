"""What the four command-line entry points share: logging set-up and one-line errors.

Owns: ``run_cli``. Imports only ``interp.errors``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from interp.errors import UsageError


def setup_logging(fmt: str = "%(name)s: %(message)s") -> None:
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)


def run_cli(body: Callable[[], None], errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a command's body: 0 on success, 2 with ``error: <message>`` on one line for a
    ``UsageError`` (or one of ``errors``), never a traceback for bad input."""
    try:
        body()
    except (UsageError, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
