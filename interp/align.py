"""``python -m interp.align [RUN_DIR]``: how each student's movement lines up with the teacher.

With no argument it runs (or reuses from the cache) the default owl-numbers study and
reports on it; given a run directory (digits-aux or owl-numbers) it reports on that run.
Writes ``align.json``, ``align.md`` and a self-contained ``align.html`` beside the run.
The computation is ``interp.analysis.align``, the rendering ``interp.reports.align``.

On your own models: ``python -m interp.align --base B --teacher T --student S
[--student-step-1 S1] [--control C] [--cross-init X] --data FILE [--out DIR]``, each model a
Hugging Face directory, hub id, LoRA adapter directory or toolkit:RUN_DIR#SEED/ROLE
(``interp.analysis.external``, rendered by ``interp.reports.external``).
"""

from __future__ import annotations

import argparse
import sys

from interp.analysis.align import analyse
from interp.cli import add_external_args, external_specs, run_cli, setup_logging
from interp.reports.align import write
from interp.storage.rundir import check_writable_dir, run_lock
from interp.studies.runner import run_dir_or_default


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.align", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", default=None)
    add_external_args(p)
    args = p.parse_args(argv)
    setup_logging()

    def body() -> None:
        specs, out = external_specs(args, "align")
        if specs is not None:
            from interp.analysis.external import analyse_external, load_specs
            from interp.reports.external import write as write_external

            models, data, teacher_data = load_specs(specs)
            check_writable_dir(out, "--out")  # after every input is checked: nothing half-made
            result = analyse_external(models, data, teacher_data=teacher_data)
            write_external(out, result)
            print(f"wrote {out}/align.html, align.md, align.json")
            return
        run_dir = run_dir_or_default(args.run_dir)
        from interp.analysis.external import specs_from_run

        specs = specs_from_run(run_dir, device=args.device, dtype=args.dtype)
        if specs is not None:  # an lm-numbers run: its Hugging Face models and adapters
            from interp.analysis.external import analyse_external, load_specs
            from interp.reports.external import write as write_external

            models, data, teacher_data = load_specs(specs)
            with run_lock(run_dir):
                write_external(run_dir, analyse_external(models, data,
                                                         teacher_data=teacher_data))
            print(f"wrote {run_dir}/align.html, align.md, align.json")
            return
        with run_lock(run_dir):
            write(run_dir, analyse(run_dir))
        print(f"wrote {run_dir}/align.html, align.md, align.json")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
