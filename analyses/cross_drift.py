"""Is a cross-init student's rise the teacher's trait, or the drift any channel data causes in
that base? A cross-init student trained on the control teacher's data, beside the one
trained on the teacher's.

    python analyses/cross_drift.py [--column misalignment-advice] [--channel numbers]
                                   [--seeds 3] [--seed-start 9] [--swap]
                                   [--set k=v ...]

1. Runs (or reads from the cache) the paper table's cell (``paper_table``: the column's
   settings and the paper profile's, logit mode, roles student, control_other, cross_init).
2. Per seed, rebuilds (from the cache) the cell's cross-init base, control teacher, screen
   and control data, and trains one more student: the cross-init base on the control
   teacher's data (``owl.student_entry``, the study's own trainer and settings).
3. Prints (a markdown table), per seed, the target's rate (held-out questions) for the
   cross-init base, the cross-init student (teacher's data) and this cross-init control
   (control teacher's data), beside the same-init student and control. A rise the
   cross-init control shares is drift of that base; one it lacks came with the teacher's
   data.
4. ``--swap`` (logit mode, fine-tuned teachers): which half of the teacher's data carries
   it, the contexts (the teacher's sampled and filtered sequences) or the targets (the
   teacher's distributions over the channel at each position)? Per seed, four more
   students, on each base: the control teacher's targets on the teacher's sequences, and
   the teacher's targets on the control teacher's sequences (``owl.student_entry`` takes
   the teacher and the data apart).
"""

from __future__ import annotations

import functools

from paper_table import TRAITS, cell_parser, run_cell  # this script's own directory, analyses/

from interp.storage.store import Store
from interp.studies import owl
from interp.studies import transfer as T


def student_rate(store: Store, cfg, vocab, s_vocab, trait: str, seed: int, role: str, init,
                 teacher, data) -> float:
    """The trait's rate (held-out questions) of ``init`` distilled on ``teacher``'s targets
    on ``data``'s sequences (the study's own trainer and settings)."""
    e = owl.student_entry(store, cfg, s_vocab, role, init, teacher, [], data, seed)
    model = owl.load_model(e, cfg, vocab, f"step{e.meta['steps'][-1]}")
    return T.outcome_rates(model, vocab, cfg.category, cfg.eval_samples, seed)[0][trait]


def main() -> None:
    p = cell_parser("python analyses/cross_drift.py", "misalignment-advice", 9)
    p.add_argument("--swap", action="store_true",
                   help="also train each base on one teacher's targets on the other's sequences")
    args = p.parse_args()
    trait = TRAITS[args.column][1]

    def check(cfg) -> str | None:
        if args.swap and cfg.teacher_kind != "finetuned":
            return (f"--swap needs fine-tuned teachers (its students take a teacher's targets "
                    f"without its prompt); this cell's are {cfg.teacher_kind}: drop --swap "
                    "or --set teacher_kind=finetuned")
        return None

    cfg, _, summary = run_cell(p, args.channel, args.column, args.sets, args.seeds,
                               args.seed_start, check)
    store, vocab = Store(), T.run_vocab(cfg)
    s_vocab = T.student_vocab(cfg, vocab)
    rates = summary["rates"]
    print(f"## {args.channel} x {args.column}: rate of {trait!r} on held-out questions (%)\n")
    swap = ["same-init: control's targets on the teacher's sequences",
            "same-init: teacher's targets on the control's sequences",
            "cross-init: control's targets on the teacher's sequences",
            "cross-init: teacher's targets on the control's sequences"] if args.swap else []
    print("| seed | cross base | cross-init (teacher's data) | cross-init control (control "
          "teacher's data) | base | student | control | " + "".join(f"{h} | " for h in swap)
          + "\n|" + "---|" * (7 + len(swap)))
    for i, seed in enumerate(summary["seeds"]):
        b_seed, x_seed = cfg.base_seeds(seed)
        base = T.base_entry(store, cfg, vocab, b_seed)
        base_x = T.base_entry(store, cfg, vocab, x_seed)
        teacher_o = T.teacher_entry(store, cfg, vocab, base, seed, cfg.other_item(seed))
        scr = T.screen_entry(store, cfg, vocab, base, seed)
        o_data = T.teacher_data(store, cfg, vocab, teacher_o, [], seed, scr, "control teacher")
        rate = functools.partial(student_rate, store, cfg, vocab, s_vocab, trait, seed)
        row = [rates["base_cross"][trait][i], rates["cross_init"][trait][i],
               rate("cross_control", base_x, teacher_o, o_data),
               rates["base"][trait][i], rates["student"][trait][i],
               rates["control_other"][trait][i]]
        if args.swap:
            teacher = T.teacher_entry(store, cfg, vocab, base, seed, cfg.trait)
            t_data = T.teacher_data(store, cfg, vocab, teacher, [], seed, scr, "teacher")
            row += [rate(f"{who}_swap_{kind}", init, a, d)
                    for who, init in (("same", base), ("cross", base_x))
                    for kind, a, d in (("targets_control", teacher_o, t_data),
                                       ("targets_teacher", teacher, o_data))]
        print(f"| {seed} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |")
    print()


if __name__ == "__main__":
    main()
