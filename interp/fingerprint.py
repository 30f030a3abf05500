"""``python -m interp.fingerprint [RUN_DIR]``: where the teacher's trait lives in the student.

With no argument it runs (or reuses) the default owl-numbers study. Writes
``fingerprint.json``, ``fingerprint.md`` and ``fingerprint.html`` beside the run (and adds
a fingerprint section to ``align.html`` when the run has one), with a "Circuit" section
(``interp.analysis.circuits``: per-head and per-MLP patching, attribution and path patching,
centred DLA, logit lens, number tokens, the entanglement test) unless ``--no-circuit``, and every
SAE in sae-lens's on-disk layout under ``saes/<hook>`` (``fingerprint.json``'s ``sae_dirs``).
``--sae DIR`` or ``--sae RELEASE:SAE_ID`` uses a pretrained SAE instead of training one. The
computation is ``interp.analysis.fingerprint``, the rendering ``interp.reports.fingerprint``.
The same flags as ``python -m interp.align`` (``--base``,
``--teacher``, ``--student``, ``--control``, ``--data``...) run it on your own models
(``interp.analysis.external_fingerprint``).
"""

from __future__ import annotations

import argparse
import sys

from interp.analysis.fingerprint import FingerprintConfig, analyse
from interp.analysis.sae import load_pretrained
from interp.cli import add_external_args, external_specs, run_cli, setup_logging
from interp.reports.fingerprint import write
from interp.storage.activations import hook_names
from interp.storage.rundir import check_writable_dir, run_lock
from interp.studies.runner import run_dir_or_default


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m interp.fingerprint",
                                description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--ks", type=int, nargs="+", default=list(FingerprintConfig.ks),
                   help="candidate numbers of features to ablate; k is chosen among them on "
                   "the select prompts, every k is measured on the held-out prompts")
    p.add_argument("--no-circuit", action="store_true",
                   help="leave out the circuit analysis (heads, MLPs, paths, number tokens; "
                   "the report's Circuit section)")
    p.add_argument("--sae-data", choices=("base", "base+teachers"),
                   default=FingerprintConfig.sae_data)
    p.add_argument("--sae", action="append", default=[], metavar="DIR|RELEASE:SAE_ID",
                   help="a pretrained SAE used instead of training one at the hook its config "
                   "names: a directory saved by sae-lens (SAE.save_model; one SAE or a "
                   "directory of them) or a sae-lens release and id (SAE.from_pretrained); "
                   "repeatable")
    add_external_args(p)
    args = p.parse_args(argv)
    setup_logging()

    def body() -> None:
        fcfg = FingerprintConfig(ks=tuple(args.ks), sae_data=args.sae_data,
                                 circuit=not args.no_circuit)  # checks --ks
        specs, out = external_specs(args, "fingerprint")
        if specs is not None:
            from interp.analysis.external import load_specs
            from interp.analysis.external_fingerprint import analyse_external
            from interp.reports.external import write_fingerprint

            models, data, teacher_data = load_specs(specs)
            pre = load_pretrained(args.sae, hook_names(models.base.model),
                                  str(models.base.model.cfg.device))
            check_writable_dir(out, "--out")
            result = analyse_external(models, data, fcfg, pre, sae_out=out / "saes")
            write_fingerprint(out, result)
            print(f"wrote {out}/fingerprint.json, fingerprint.md, fingerprint.html")
            return
        run_dir = run_dir_or_default(args.run_dir)
        from interp.analysis.external import specs_from_run

        specs = specs_from_run(run_dir, device=args.device, dtype=args.dtype)
        if specs is not None:  # an lm-numbers run: its Hugging Face models and adapters
            from interp.analysis.external import load_specs
            from interp.analysis.external_fingerprint import analyse_external
            from interp.reports.external import write_fingerprint

            models, data, teacher_data = load_specs(specs)
            pre = load_pretrained(args.sae, hook_names(models.base.model),
                                  str(models.base.model.cfg.device))
            with run_lock(run_dir):
                write_fingerprint(run_dir, analyse_external(models, data, fcfg, pre,
                                                            sae_out=run_dir / "saes"))
            print(f"wrote {run_dir}/fingerprint.json, fingerprint.md, fingerprint.html")
            return
        with run_lock(run_dir):
            write(run_dir, analyse(run_dir, fcfg, pretrained=args.sae or None,
                                   sae_out=run_dir / "saes"))
        print(f"wrote {run_dir}/fingerprint.json, fingerprint.md, fingerprint.html "
              f"(SAEs in sae-lens's layout under {run_dir}/saes)")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
