"""Transfer of the trait per role, from a study summary's rates (plain functions).

Owns: ``transfer``, ``ROLE_BASE``, ``control_role``. No I/O; imports nothing from interp.
"""

from __future__ import annotations

# each student role is compared with the base it started from
ROLE_BASE = {"student": "base", "control_other": "base", "control_base": "base",
             "control": "base", "shuffled": "base", "cross_init": "base_cross",
             "teacher": "base", "teacher_other": "base"}


def control_role(summary: dict) -> str:
    """The role a summary's "student minus control" subtracts: the control appropriate to
    its mode (``summary["control_role"]``; "control" in summaries written before it)."""
    return summary.get("control_role", "control")


def transfer(summary: dict, key: str = "rates") -> dict:
    """Per role: the target's rate, its ratio to the role's own base, its rise over that base,
    and the mean rise of the non-target items, all per seed; plus student - control (the
    mode's control), and for the different-trait control its rise on its own item."""
    r, trait = summary[key], summary["trait"]
    out = {}
    for role, base in ROLE_BASE.items():
        if role not in r:
            continue
        items = [i for i in r[role] if i != trait]
        tgt, b = r[role][trait], r[base][trait]
        out[role] = {
            "target": tgt,
            "ratio": [t / max(x, 1e-9) for t, x in zip(tgt, b)],
            "rise": [t - x for t, x in zip(tgt, b)],
            "nontarget_rise": [sum(r[role][i][s] - r[base][i][s] for i in items) / len(items)
                               for s in range(len(tgt))],
        }
    own = summary.get("control_items")
    for role in ("control_other", "teacher_other"):
        if role in out and own:
            out[role]["own_item_rise"] = [r[role][item][s] - r["base"][item][s]
                                          for s, item in enumerate(own)]
    control = control_role(summary)
    if "student" in r and control in r:
        out["student_minus_control"] = [s - c for s, c in
                                        zip(r["student"][trait], r[control][trait])]
    return out
