"""``python -m interp.study``: list and run registered studies.

    python -m interp.study list
    python -m interp.study run NAME [--seeds N] [--seed-start S] [--out DIR] [--preset P]
                                    [--set key=value ...]
    python -m interp.study export RUN_DIR DEST [--seed S]

``export`` writes one seed of an owl-numbers run in Hugging Face format
(``interp.loading.export``): ``DEST/<role>`` GPT-2 directories and ``DEST/data.jsonl``, the
inputs of ``python -m interp.align --base ...``.

The work is in ``interp.studies``; this module only parses arguments.
"""

from __future__ import annotations

import argparse
import sys

from interp.cli import run_cli, setup_logging
from interp.studies.registry import studies
from interp.studies.runner import run_study


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.study", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the registered studies")
    r = sub.add_parser("run", help="run a study")
    r.add_argument("name")
    r.add_argument("--seeds", type=int, default=None)
    r.add_argument("--seed-start", type=int, default=0)
    r.add_argument("--out", default=None)
    r.add_argument("--preset", default=None)
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    e = sub.add_parser("export", help="a run's models and data in Hugging Face format")
    e.add_argument("run_dir")
    e.add_argument("dest")
    e.add_argument("--seed", default=None, help="the seed to export (default: the first)")
    args = p.parse_args(argv)
    setup_logging()

    def body() -> None:
        if args.cmd == "list":
            for s in studies().values():
                presets = f"  presets: {', '.join(s.presets)}" if s.presets else ""
                print(f"{s.name:14s} {s.description}{presets}")
            return
        if args.cmd == "export":
            from interp.loading.export import export_run

            dest = export_run(args.run_dir, args.dest, args.seed)
            print(f"wrote {dest} (Hugging Face directories per role, data.jsonl)")
            return
        out, _ = run_study(args.name, args.seeds, args.seed_start, args.out, args.sets,
                           args.preset)
        print(f"wrote {out}/summary.json")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
