"""What the command-line entry points share: logging set-up and one-line errors.

Owns: ``run_cli``, ``check_threads``. Imports only ``interp.errors`` (and ``interp``'s
process-start thread settings).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable

from interp import requested_threads
from interp.errors import UsageError

# a full or read-only disk met mid-run: what was finished stays in the cache
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def setup_logging(fmt: str = "%(name)s: %(message)s") -> None:
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)


def _disk_error(e: BaseException) -> OSError | None:
    """The OSError for a full or read-only disk behind ``e`` (also when a library wrapped
    it, as safetensors does), else None."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            return e
        if "No space left on device" in str(e) or "Read-only file system" in str(e):
            return OSError(errno.ENOSPC if "space" in str(e) else errno.EROFS,
                           str(e).splitlines()[0] if str(e) else "disk error")
        e = e.__cause__ or e.__context__
    return None


def check_threads() -> None:
    """A set but invalid ``INTERP_THREADS`` is a one-line error (process start ignored it)."""
    raw = os.environ.get("INTERP_THREADS")
    if raw is not None and raw.strip() and requested_threads() is None:
        raise UsageError(f"INTERP_THREADS must be a positive integer (torch threads per "
                         f"process), got {raw!r}; unset it to use the cores available")


def run_cli(body: Callable[[], None], errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a command's body: 0 on success, 2 with ``error: <message>`` on one line for a
    ``UsageError`` (or one of ``errors``) or a full/read-only disk, never a traceback for
    bad input."""
    try:
        check_threads()
        body()
    except (UsageError, *errors) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    except Exception as e:
        disk = _disk_error(e)
        if disk is None:
            raise
        where = f" writing {disk.filename}" if disk.filename else ""
        print(f"error: {disk.strerror or disk}{where}; free space or choose another location "
              "(--out, INTERP_CACHE); finished stages are kept in the cache and a rerun "
              "resumes from them", file=sys.stderr)
        return 2
    return 0
