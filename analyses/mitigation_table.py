"""Each mitigation side by side: transfer removed and task kept, with 95% CIs over seeds.

    python -m interp.sweep sweeps/owl_audit.toml --workers 2
    python analyses/mitigation_table.py runs/sweeps/owl_audit [--out runs/mitigations.md]

Reads the sweep's ``baseline`` cell and its ``mitigation=*`` cells (same bases, teachers and
data; only the distillation differs). Per seed, paired with the baseline's same seed:

- transfer removed: 1 - (mitigated student's rise) / (unmitigated student's rise), the rise
  being the trait's probability over the base's on the held-out questions;
- task kept: the student's next-token loss on held-out data that no student trained on (new
  samples of the teacher and of the base, ``data_entry`` with another seed, cached in the
  store), and its KL from the teacher on the held-out teacher data, each relative to the
  unmitigated student's (+2% = 2% worse).

A mitigation "passes" when it removes >= 80% of the transfer (CI mean) while its loss on the
held-out teacher data is within 5% of the unmitigated student's. Writes the table (markdown)
and ``mitigations.html`` (a plotly figure of both with CIs) beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from interp.cli import setup_logging
from interp.metrics import divergence as D
from interp.metrics.stats import fmt_ci, mean_ci
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html
from interp.storage.store import Store, write_text
from interp.studies import lm
from interp.studies.owl import OwlConfig, data_entry, load_model, student_mask, teacher_fn
from interp.studies.world import Vocab

HELD_OUT = 500_000  # the held-out data's seed offset (training data uses the study seed)


def config(summary: dict) -> OwlConfig:
    c = dict(summary["config"])
    c["roles"] = tuple(c["roles"])
    return OwlConfig(**c)


@torch.no_grad()
def losses(student, teacher, prefix, data: dict, cfg: OwlConfig, vocab: Vocab) -> dict:
    tok, mask = data["tokens"][:256], student_mask(cfg, data["mask"])[:256]
    s_logits = student(tok)
    ce = float(lm.next_token_loss(s_logits, tok, mask))
    out = {"ce": ce}
    if teacher is not None:
        t = D.restricted_log_softmax(teacher_fn(teacher, prefix)(tok)[:, :-1], vocab.number_ids)
        s = D.restricted_log_softmax(s_logits[:, :-1], vocab.number_ids)
        m = mask[:, :-1]
        out["kl"] = float((D.kl(t, s) * m).sum() / m.sum())
    return out


def seed_values(cell: Path, store: Store) -> dict[str, dict]:
    summary = json.loads((cell / "summary.json").read_text())
    art = json.loads((cell / "artifacts.json").read_text())
    cfg, trait = config(summary), summary["trait"]
    vocab = Vocab(cfg.world.categories)
    prefix = []  # the sweep's teachers are fine-tuned
    out = {}
    for i, seed in enumerate(summary["seeds"]):
        files = art["seeds"][str(seed)]
        base_e, _ = store.locate(files["theta_0"])
        teacher_e, _ = store.locate(files["teacher"])
        held_t = data_entry(store, cfg, vocab, teacher_e, prefix, seed + HELD_OUT).load("data")
        held_b = data_entry(store, cfg, vocab, base_e, [], seed + HELD_OUT).load("data")
        student = lm.from_artifacts(art["model"], files["student_final"])
        teacher = load_model(teacher_e, cfg, vocab)
        lt = losses(student, teacher, prefix, held_t, cfg, vocab)
        lb = losses(student, None, prefix, held_b, cfg, vocab)
        rise = summary["rates"]["student"][trait][i] - summary["rates"]["base"][trait][i]
        out[str(seed)] = {"rise": rise, "ce_teacher": lt["ce"], "kl_teacher": lt["kl"],
                          "ce_base": lb["ce"]}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("runs/mitigations.md"))
    args = p.parse_args()
    setup_logging()
    store = Store()
    cells = {d.name.rsplit("-", 1)[0]: d for d in (args.sweep_dir / "cells").iterdir()
             if (d / "summary.json").is_file()}
    if "baseline" not in cells:
        raise SystemExit(f"error: no finished baseline cell in {args.sweep_dir}; run the sweep")
    base = seed_values(cells["baseline"], store)
    names = sorted(k for k in cells if k.startswith("mitigation"))
    rows, removed, task = [], {}, {}
    for name in ["baseline", *names]:
        v = base if name == "baseline" else seed_values(cells[name], store)
        seeds = [s for s in v if s in base]
        rem = [1 - v[s]["rise"] / base[s]["rise"] for s in seeds]
        d_ce_t = [v[s]["ce_teacher"] / base[s]["ce_teacher"] - 1 for s in seeds]
        d_kl_t = [v[s]["kl_teacher"] / base[s]["kl_teacher"] - 1 for s in seeds]
        d_ce_b = [v[s]["ce_base"] / base[s]["ce_base"] - 1 for s in seeds]
        label = name.replace("mitigation_", "")
        if name != "baseline":
            removed[label], task[label] = rem, d_ce_t
        passes = mean_ci(rem)[0] >= 0.8 and abs(mean_ci(d_ce_t)[0]) <= 0.05
        rows.append((label, fmt_ci([v[s]["rise"] for s in seeds]), fmt_ci(rem),
                     fmt_ci(d_ce_t), fmt_ci(d_kl_t), fmt_ci(d_ce_b),
                     "-" if name == "baseline" else ("**yes**" if passes else "no")))
    table = md_table(["mitigation", "student's rise (held-out questions)", "transfer removed",
                      "loss on held-out teacher data vs unmitigated",
                      "KL from teacher (held-out) vs unmitigated",
                      "loss on base's data vs unmitigated",
                      ">= 80% removed, teacher-data loss within 5%"], rows)
    n = len(base)
    md = "\n\n".join([
        "# Mitigations side by side (owl-numbers, tiny preset)",
        f"Command: `python -m interp.sweep sweeps/owl_audit.toml --workers 2` then "
        f"`python analyses/mitigation_table.py {args.sweep_dir}`. {n} seeds per row; each CI "
        "(95%, Student's t) is over those seeds and covers teacher data, student and "
        "teacher-batch noise with one shared base (replicate=data); each mitigated seed is "
        "paired with the unmitigated student of the same seed (same base, teacher and data). "
        "Losses are next-token cross-entropies on 256 held-out rows never trained on "
        "(fresh samples of the teacher and of the base), relative to the unmitigated "
        "student's. Tiny preset on a shared 2-core machine.", table,
        "The pass column uses the cross-entropy on held-out teacher data (which includes the "
        "teacher's own entropy, so it moves little). The KL from the teacher on the same rows "
        "is the stricter measure of the task: the unmitigated student's is small, and a "
        "relative rise of hundreds of percent there means the mitigated student imitates the "
        "teacher's number distribution much less well even where its cross-entropy barely "
        "moves."])
    write_text(args.out, md + "\n")
    figs = [bar_with_ci(removed, "Transfer removed (1 - mitigated rise / unmitigated rise)",
                        "fraction removed"),
            bar_with_ci(task, "Loss on held-out teacher data relative to the unmitigated "
                              "student", "relative change")]
    write_html(args.out.with_suffix(".html"), "Mitigations side by side",
               [("Table", md_to_html(table), figs)])
    print(md)


if __name__ == "__main__":
    main()
