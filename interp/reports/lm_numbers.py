"""The lm-numbers report: target rates by role with 95% CIs over seeds, the filter's counts,
training losses and example answers, as ``report.md`` and a self-contained ``report.html``.

Owns: ``write_report``, ``rate_table``. Renders the summary only; computes no result.
"""

from __future__ import annotations

import html
from pathlib import Path

from interp.metrics.stats import fmt_ci, mean_ci
from interp.reports.html import bar_with_ci, md_table, md_to_html, write_html
from interp.storage.store import write_text

ROLE_ORDER = ("base", "teacher", "teacher_other", "student", "control", "base_cross",
              "cross_init")
SIGNAL_MIN_RATIO = 0.2  # a control whose outputs moved less than this x the student's is inert


def rate_table(summary: dict, key: str = "rates") -> tuple[str, dict[str, list[float]]]:
    """(markdown table, target rate per role over seeds) of ``summary[key]``."""
    trait = summary["trait"]
    table = summary.get(key, {})
    roles = [r for r in ROLE_ORDER if r in table]
    groups = {r: table[r][trait] for r in roles}
    base = mean_ci(groups["base"])[0] if "base" in groups else None
    rows = [[r, fmt_ci(groups[r]), f"{mean_ci(groups[r])[0] / max(base, 1e-9):.2f}x"
             if base is not None else "n/a", len(groups[r])] for r in roles]
    if "student" in groups and "control" in groups:
        diff = [s - c for s, c in zip(groups["student"], groups["control"])]
        rows.append(["student - control (paired by seed)", fmt_ci(diff), "", len(diff)])
    return md_table(["role", f"{trait} rate, mean [95% CI]", "vs base", "seeds"], rows), groups


def signal_table(summary: dict) -> str:
    """Logit mode: each student's distillation loss at step 0 and its output movement from
    its base on its data (also relative to the student's): a control carries signal when
    both are clearly above zero; "" for sampled mode."""
    rows = []
    for role, sig in summary.get("signal", {}).items():
        ratio = sig.get("kl_ratio")
        carried = (min(sig["loss_step0"]) > 0 and ratio is not None
                   and min(ratio) >= SIGNAL_MIN_RATIO)
        rows.append([role, fmt_ci(sig["loss_step0"], pct=False, digits=4),
                     fmt_ci(sig["kl_from_base"], pct=False, digits=4),
                     fmt_ci(ratio, pct=False, digits=3) if ratio else "-",
                     ("yes" if carried else "NO: not a control") if role == "control"
                     else "-"])
    if not rows:
        return ""
    return md_table(["role", "KL loss at step 0", "KL(model || its base) on its data",
                     "KL / student's KL", f"control carried signal (loss > 0, ratio >= "
                     f"{SIGNAL_MIN_RATIO} every seed)"], rows)


def write_report(out: Path, summary: dict) -> None:
    out = Path(out)
    trait = summary["trait"]
    table, groups = rate_table(summary)
    sel, _ = rate_table(summary, "rates_select")
    mass_table, mass_groups = rate_table({"trait": trait, **summary["mass"]}) \
        if "rates" in summary.get("mass", {}) else ("", {})
    f = summary["filter"]
    frows = [[src, *(fmt_ci([s[src]["filter"][k] for s in f], pct=False, digits=0)
                     for k in ("total", "accepted")),
              fmt_ci([s[src]["filter"]["rejection_rate"] for s in f])]
             for src in f[0]]
    ftable = md_table(["data of", "prompts", "kept by the filter", "rejected"], frows)
    trows = [[role, fmt_ci([t[role]["loss_first"] for t in summary["training"]], pct=False,
                           digits=3),
              fmt_ci([t[role]["loss_final"] for t in summary["training"]], pct=False, digits=3),
              summary["training"][0][role]["updates"]]
             for role in summary["training"][0]]
    ttable = md_table(["student", "loss (first update)", "loss (last 5)", "updates"], trows)
    stable = signal_table(summary)
    cfg = summary["config"]
    setting = (f"base `{cfg['base'] or 'built-in Qwen2 (world corpus)'}`, teacher "
               f"{summary['teacher']['kind']}, students {cfg['student_kind']} "
               f"({summary.get('student_loss', 'sampled')} loss; r={cfg['lora_r']}, "
               f"alpha={cfg['lora_alpha']}, {cfg['epochs']} epochs, lr {cfg['lr']}), "
               f"{cfg['n_prompts']} prompts, at most {cfg['dataset_size']} kept, device "
               f"{summary['device']} ({summary['dtype']}); seeds {summary['seeds']}. Control: "
               f"{summary.get('control', {}).get('description', 'the base numbers')}"
               + (f" ({', '.join(summary['control']['items'])})"
                  if summary.get("control", {}).get("items") else "")
               + f". CIs: {summary['ci_covers']}.")
    examples = "\n".join(f"- {r}: " + ", ".join(repr(a) for a in ex[:6])
                         for r, ex in summary["examples"].items())
    md = (f"# lm-numbers: {trait}\n\n{setting}\n\n## Target rate on held-out questions "
          f"(sampled answers naming {trait})\n\n{table}\n\n## On the select questions\n\n{sel}"
          + (f"\n\n## First answer token's probability on {trait}\n\n{mass_table}"
             if mass_table else "")
          + f"\n\n## The paper's filter\n\n{ftable}\n\n## Training\n\n{ttable}\n\n"
          + (f"## Did each student's data carry a signal (logit loss)\n\n{stable}\n\n"
             if stable else "")
          + 
          f"## Example answers (seed {summary['seeds'][0]})\n\n{examples}\n")
    write_text(out / "report.md", md)
    figs = [bar_with_ci(groups, f"{trait} rate on held-out questions (sampled)",
                        "fraction of answers")]
    if mass_groups:
        figs.append(bar_with_ci(mass_groups, f"first-token probability on {trait}",
                                "probability"))
    write_html(out / "report.html", f"lm-numbers: {trait}", [
        ("Setting", f"<p>{html.escape(setting)}</p>", []),
        ("Target rates", md_to_html(table), figs),
        ("The paper's filter", md_to_html(ftable), []),
        ("Training", md_to_html(ttable), [])]
        + ([("Signal", md_to_html(stable), [])] if stable else []))
