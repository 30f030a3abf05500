"""How fast does each student take the trait? The target's rate at every saved checkpoint
of the same-init student, its control and the cross-init student.

    python analyses/checkpoint_rates.py [--column misalignment-steer] [--channel numbers]
                                        [--seeds 3] [--seed-start 0] [--set k=v ...]

1. Runs (or reads from the cache) the paper table's cell (``paper_table.run_cell``: the
   column's settings and the paper profile's, logit mode, roles student, control_other and
   cross_init).
2. Per seed, loads every checkpoint the run saved for each role (``artifacts.json``:
   ``{role}_step_{s}``; ``checkpoint_every`` sets them) and measures the target's rate on
   the held-out questions (``transfer.outcome_rates``, the study's own evaluation).
3. Prints one row per seed and role: the base's rate, then the rate at each checkpoint.
   The theorem speaks of the first steps: a same-init student moves toward its teacher from
   step one, so a trait that needs a shared initialization should lead in the same-init
   student early, not only at the end.
"""

from __future__ import annotations

import json

from paper_table import TRAITS, cell_parser, run_cell  # this script's own directory, analyses/

from interp.studies import lm
from interp.studies import transfer as T

ROLES = {"student": "theta_0", "control": "theta_0", "cross_init": "theta_0_cross"}


def main() -> None:
    p = cell_parser("python analyses/checkpoint_rates.py", "misalignment-steer", 0)
    args = p.parse_args()
    trait = TRAITS[args.column][1]
    cfg, run_dir, _ = run_cell(p, args.channel, args.column, args.sets, args.seeds,
                               args.seed_start)
    art = json.loads((run_dir / "artifacts.json").read_text())
    vocab = T.run_vocab(cfg)

    def rate(path: str, seed: int) -> float:
        model = lm.from_artifacts(art["model"], path)
        return T.outcome_rates(model, vocab, cfg.category, cfg.eval_samples, seed)[0][trait]

    steps = sorted({int(k.rsplit("_", 1)[1]) for paths in art["seeds"].values()
                    for k in paths if k.startswith("student_step_")})
    print(f"## {args.channel} x {args.column}: rate of {trait!r} on held-out questions (%), "
          f"by student step\n")
    print("| seed | role | its base | " + " | ".join(f"step {s}" for s in steps) + " |\n|"
          + "---|" * (3 + len(steps)))
    for seed, paths in art["seeds"].items():
        for role, base in ROLES.items():
            row = [rate(paths[base], int(seed))] + [rate(paths[f"{role}_step_{s}"], int(seed))
                                                    for s in steps]
            print(f"| {seed} | {role} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |",
                  flush=True)
    print()


if __name__ == "__main__":
    main()
