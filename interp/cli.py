"""What the command-line entry points share: logging set-up and one-line errors.

Owns: ``run_cli``, ``check_threads``, the external-model flags (``add_external_args``,
``external_specs``). Imports only ``interp.errors`` and ``interp``'s process-start thread
settings (and, lazily, ``interp.analysis.external`` and ``interp.storage.rundir`` for an
external run).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

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
    raw = os.environ.get("INTERP_WORKERS", "").strip()
    if raw and raw != "auto" and not (raw.isdigit() and int(raw) > 0):
        raise UsageError(f"INTERP_WORKERS must be a positive integer or auto (processes a "
                         f"study may use), got {raw!r}; unset it for one process")


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


EXTERNAL = ("base", "teacher", "teacher_prompt", "student", "student_step_1", "control",
            "cross_init", "data")


def add_external_args(p: argparse.ArgumentParser) -> None:
    """The flags of a report on your own models (see README "Your own models")."""
    g = p.add_argument_group("your own models (instead of RUN_DIR); each MODEL is a Hugging "
                             "Face directory, a hub id in the local cache, a LoRA adapter "
                             "directory, or toolkit:RUN_DIR#SEED/ROLE")
    g.add_argument("--base", metavar="MODEL", help="theta_0: the shared initialization")
    g.add_argument("--teacher", metavar="MODEL")
    g.add_argument("--teacher-prompt", metavar="TEXT", default="",
                   help="a prompted teacher: the base reading this system prompt")
    g.add_argument("--student", metavar="MODEL", help="the student after training")
    g.add_argument("--student-step-1", metavar="MODEL",
                   help="the student after one optimizer step (the theorem's check)")
    g.add_argument("--control", metavar="MODEL")
    g.add_argument("--cross-init", metavar="MODEL",
                   help="a model of the same architecture from another initialization")
    g.add_argument("--data", metavar="FILE",
                   help='JSONL of {"prompt": ..., "completion": ...} rows, or the toolkit\'s '
                   "data (.safetensors with tokens and mask)")
    g.add_argument("--out", metavar="DIR", help="report directory (default runs/external-HASH)")
    g.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, "
                   "cuda, cuda:N, mps")
    g.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))


def external_specs(args: argparse.Namespace, what: str):
    """(ExternalSpecs, output dir) when the external flags are given, else (None, None);
    a half-given set is a one-line error naming the missing flags."""
    given = {k: getattr(args, k) for k in EXTERNAL if getattr(args, k, None)}
    if not given:
        if getattr(args, "out", None):
            raise UsageError("--out is for reports on your own models (with --base ...); a "
                             "run directory's report is written beside it")
        return None, None
    if getattr(args, "run_dir", None):
        raise UsageError(f"pass either a run directory or --base/--teacher/--student/--data, "
                         f"not both (got {args.run_dir})")
    need = [k for k in ("base", "student", "data") if k not in given]
    if "teacher" not in given and "teacher_prompt" not in given:
        need.append("teacher (or teacher-prompt)")
    if need:
        raise UsageError(f"{what} on your own models needs "
                         + ", ".join("--" + n.replace("_", "-") for n in need))
    from interp.analysis.external import ExternalSpecs

    specs = ExternalSpecs(base=args.base, student=args.student, data=args.data,
                          teacher=args.teacher, teacher_prompt=args.teacher_prompt or "",
                          student_step_1=args.student_step_1, control=args.control,
                          cross_init=args.cross_init, device=args.device, dtype=args.dtype)
    return specs, Path(args.out or f"runs/external-{specs.key()}")
