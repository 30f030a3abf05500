"""The pre-distillation audit: from a base (the student's init), a teacher and a candidate
dataset, and no trained student, how much trait a student distilled on it would pick up,
and which examples carry it.

1. The effective distillation targets: the data's rows and loss mask, the teacher's logits
   (a prompted teacher reads its persona prefix), with a planned mitigation applied exactly
   as the study applies it (``interp.studies.mitigations``).
2. Per position, over the number channel: KL(teacher || base) (the student's step-0 loss in
   logit mode), divergence tokens (teacher argmax != base argmax), the log-likelihood shift
   log p_T - log p_B of the written token (LLS), and the Gauss-Newton form
   (J dT)^T M (J dT) from one JVP of the base along dT = theta_T - theta_0 (Cloud et al.'s
   first-order transfer term).
3. First-step coverage: the cosine of the first distillation step's direction -grad L(theta_0)
   (summed over the data; projected off dT when the ``project`` mitigation is planned) with dT,
   and the step itself along the unit dT per trained position (``step_along``; mitigations
   that shrink the trait part of the targets shrink it), times steps x lr (``step_dose``).
4. The trait's first-order movement: the gradient g_r of the trait's probability on the
   fine-tuning questions at theta_0 (never the held-out ones), dotted with the first step
   (``trait_step``: plain gradient descent, per trained position, times steps x lr) and with
   Adam's expected first update -E[g_b] / sqrt(E[g_b^2]) over the planned batches
   (``trait_adam``, times steps x lr); both projected off dT when ``project`` is planned.
   The teacher's own rise over the base on those questions, and that rise times the share
   of dT that steps x lr of the first step cover (``path_rise``: the student walks toward
   the teacher, Cloud et al.'s theorem, and picks up the trait in proportion). ``toward``:
   the planned steps' distance along the unit dT before a planned projection removes it
   (near 0 from another init); ``trait_path``: sign(trait_step) sqrt(|trait_step| toward),
   the trait's movement counted only as far as the student heads toward the teacher;
   ``trait_agreed``: trait_path where trait_step and the teacher's rise agree in sign, else 0
   (trait_step for a prompted teacher).
   ``trait_bound``: the smaller of two limits on a positive movement: trait_agreed (how far
   the data pulls the student toward the teacher along the trait) and BOUND_SCALE x trait_adam
   (Adam moves each weight about lr per step whatever the gradient's size, so the trait's
   share of Adam's update caps it when the teacher is far away); BOUND_SCALE converts
   between their units, chosen on the sweeps' variants (``audit_validation.py --scan-bound``).
5. Teacher-base linear CKA per layer on the data's residual streams, and the projection of
   the data's mean residual shift (teacher - base, last layer) on the trait direction (the
   same shift at the answer position of the fine-tuning trait questions, never the held-out
   ones).
6. Per example risk: the first-order movement toward the teacher that training on the row
   causes, per trained position (the loss averages over positions, so this is the row's
   trait density): its GN form in logit mode (KL(teacher || base) for a prompted teacher),
   its LLS (= d/de log p_{theta_0 + e dT}(row) to first order) in sampled mode; examples are
   ranked by it, and each row's totals are reported beside it.
7. A combined prediction: a linear fit of measured transfer on standardised predictors
   (``Calibration``, fitted by ``analyses/audit_validation.py`` on sweep variants and saved as
   JSON), with an interval of +- 1.96 held-out residual SDs.

Owns: ``AuditInputs``, ``inputs_from_run``, ``predictors``, ``trait_bound``, ``Calibration``,
``audit``.
Must not import: reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from torch import Tensor
from torch.func import functional_call, jvp
from transformer_lens import HookedTransformer

from interp.errors import UsageError
from interp.metrics import risk as R
from interp.metrics.alignment import softmax_quadratic
from interp.storage.store import read_tensors
from interp.studies import lm, mitigations
from interp.studies.owl import student_mask, teacher_fn
from interp.studies.world import CATEGORIES, Vocab, categories_for, persona, question_prompt

FEATURES = ("coverage", "gn_mean", "lls_mean", "divergence_fraction", "kl_mean",
            "cka_min", "trait_projection", "log_dose", "step_along", "step_dose",
            "trait_step", "trait_adam", "teacher_rise", "path_rise", "toward", "trait_path",
            "trait_agreed", "trait_bound")
# trait_bound's exchange rate between trait_adam and trait_agreed: the argmax of Spearman over
# the 84 variants of owl_audit, owl_audit_fresh and owl_audit_fresh2 (``--scan-bound``), fixed
# before owl_audit_fresh3 was read
BOUND_SCALE = 0.0086


def trait_bound(trait_agreed: float, trait_adam: float, scale: float = BOUND_SCALE) -> float:
    """min(trait_agreed, scale x trait_adam) for a rise (a fall or 0 passes unchanged)."""
    if not trait_agreed > 0:
        return trait_agreed
    return min(trait_agreed, scale * max(trait_adam, 0.0))


@dataclasses.dataclass
class AuditInputs:
    base: HookedTransformer
    teacher: HookedTransformer
    prefix: list[int]  # a prompted teacher's persona tokens ([] for a fine-tuned one)
    tokens: Int[Tensor, "n p"]
    mask: Bool[Tensor, "n p"]
    vocab: Vocab
    category: str
    trait: str
    mode: str = "logit"
    mitigation: str = "none"
    base_tokens: Tensor | None = None  # the base's own data (needed by mix_base)
    base_mask: Tensor | None = None
    dose: float = 1.0  # student steps x learning rate of the planned distillation
    batch: int = 32  # the planned distillation's batch (rows per step)
    seed: int = 0
    source: str = ""


# what each student role of an owl-numbers run is distilled from: (its init, its teacher, the
# teacher's data) as names in the run's artifacts ("theta_0" as a teacher: the base itself)
ROLES = {"student": ("theta_0", "teacher", "data"),
         "cross_init": ("theta_0_cross", "teacher", "data"),
         "control_other": ("theta_0", "teacher_other", "data_other"),
         "control_base": ("theta_0", "theta_0", "data_base")}


def inputs_from_run(run_dir: Path, seed: str | None = None, data: Path | None = None,
                    role: str = "student") -> AuditInputs:
    """The base, teacher and teacher data of an owl-numbers run directory (its first seed by
    default), with the run's planned process (mode, mitigation, mask_first, steps x lr);
    ``data``: another dataset (an owl data .safetensors or a JSONL of {"text": ...}) instead;
    ``role``: audit another of the run's students (its own init, teacher and data), always
    for the run's trait."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    init, teacher, data_name = ROLES[role]
    try:
        art = json.loads((run_dir / "artifacts.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{run_dir} is not a finished owl-numbers run ({e}); run "
                         "`python -m interp.study run owl-numbers` first") from None
    if art.get("study") != "owl-numbers":
        raise UsageError(f"{run_dir} holds a {art.get('study')!r} run; the audit reads "
                         "owl-numbers runs")
    seeds = list(art["seeds"])
    seed = seed if seed is not None else seeds[0]
    if seed not in art["seeds"]:
        raise UsageError(f"seed {seed} is not in {run_dir}; valid seeds: {', '.join(seeds)}")
    files, cfg = art["seeds"][seed], summary["config"]
    vocab = Vocab(categories_for(cfg["category"]))
    load = lambda name: lm.from_artifacts(art["model"], files[name])  # noqa: E731
    if data_name not in files:
        raise UsageError(f"{run_dir} trained no {role} (its data {data_name} is not in the "
                         "run); run the study with that role")
    item = summary["control_items"][seeds.index(seed)] if role == "control_other" else \
        cfg["trait"]
    prefix = vocab.encode(persona(item)) if cfg["teacher_kind"] == "prompted" and \
        role != "control_base" else []
    d = read_tensors(files[data_name]) if data is None else load_data(data, vocab, art)
    b = read_tensors(files["data_base"])

    class _Cfg:  # what student_mask reads
        mask_first = cfg.get("mask_first", False)
    return AuditInputs(load(init), load(teacher), prefix, d["tokens"],
                       student_mask(_Cfg, d["mask"]), vocab, cfg["category"], cfg["trait"],
                       cfg["mode"], cfg.get("mitigation", "none"), b["tokens"],
                       student_mask(_Cfg, b["mask"]),
                       cfg["student_steps"] * cfg["student_lr"], cfg["student_batch"],
                       int(seed), str(data or files[data_name]))


def load_data(path: Path, vocab: Vocab, art: dict) -> dict[str, Tensor]:
    """An owl data file (safetensors with tokens and mask) or JSONL rows {"prompt", "completion"}
    in the run's vocabulary (the completion is what the student is trained on)."""
    if not path.is_file():
        raise UsageError(f"no data file {path}; give an owl data .safetensors or a .jsonl")
    if path.suffix == ".safetensors":
        d = read_tensors(path)
        if set(d) != {"tokens", "mask"}:
            raise UsageError(f"{path} holds {sorted(d)}; an owl data file holds tokens, mask")
        return d
    if path.suffix != ".jsonl":
        raise UsageError(f"unknown data format {path.suffix!r}; valid: .safetensors, .jsonl")
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            rows.append((vocab.encode(r["prompt"]), vocab.encode(r["completion"]) + [vocab.eos]))
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{path}:{i + 1}: expected {{\"prompt\": ..., \"completion\": ...}} "
                             f"in the run's vocabulary ({e})") from None
    n_ctx = art["model"]["n_ctx"]
    tokens = torch.full((len(rows), n_ctx), vocab.pad, dtype=torch.long)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for r, (p, c) in enumerate(rows):
        s = (p + c)[:n_ctx]
        tokens[r, :len(s)] = torch.tensor(s)
        mask[r, len(p) - 1:len(s) - 1] = True
    if not rows:
        raise UsageError(f"{path} has no rows")
    return {"tokens": tokens, "mask": mask}


def _context(x: AuditInputs) -> mitigations.Context:
    """The planned distillation's targets, with the mitigation applied as the study does."""
    direction = _direction(x)
    ctx = mitigations.Context(
        x.mode, x.tokens, x.mask, teacher_fn(x.teacher, x.prefix), x.base, lm.clone_model(x.base),
        {k: v.clone() for k, v in x.base.state_dict().items()}, direction, x.vocab.number_ids,
        x.base_tokens if x.base_tokens is not None else x.tokens[:0],
        x.base_mask if x.base_mask is not None else x.mask[:0], x.seed)
    for name, value in mitigations.parse(x.mitigation, x.mode):
        if name != "project":  # a hook on the optimizer: applied to the gradient below
            mitigations.APPLY[name](ctx, value)
    return ctx


def _direction(x: AuditInputs) -> dict[str, Tensor] | None:
    if x.prefix:
        return None
    t, b = x.teacher.state_dict(), x.base.state_dict()
    return {n: t[n].float() - b[n].float() for n, _ in x.base.named_parameters()}


@torch.no_grad()
def _trait_direction(x: AuditInputs, hook: str) -> Tensor:
    """Mean teacher - base residual at the answer position of the fine-tuning questions."""
    prefix_text = persona(x.trait) if x.prefix else ""
    qs = CATEGORIES[x.category].split("select")
    shifts = []
    for q in qs:
        t_tok = torch.tensor([x.vocab.encode(question_prompt(q, prefix_text))])
        b_tok = torch.tensor([x.vocab.encode(question_prompt(q))])
        _, tc = x.teacher.run_with_cache(t_tok, names_filter=hook)
        _, bc = x.base.run_with_cache(b_tok, names_filter=hook)
        shifts.append(tc[hook][0, -1] - bc[hook][0, -1])
    return torch.stack(shifts).mean(0)


def predictors(x: AuditInputs, batch: int = 128, cka_positions: int = 2048) -> tuple[dict, dict]:
    """(dataset predictors, per-row arrays) for the planned distillation (steps 1-6)."""
    ctx = _context(x)
    tokens, mask, ids = ctx.tokens, ctx.mask, x.vocab.number_ids
    direction = _direction(x)
    params = dict(x.base.named_parameters())
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(x.base.cfg.n_layers)]
    v = _trait_direction(x, hooks[-1])
    v_hat = v / v.norm().clamp(min=1e-12)
    n = len(tokens)
    kl_row, gn_row, lls_row = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    div_row, proj_row = torch.zeros(n), torch.zeros(n)
    pos_div = torch.zeros(tokens.shape[1])  # divergence tokens by completion offset
    pos_all = torch.zeros(tokens.shape[1])
    acts_t: dict[str, list[Tensor]] = {h: [] for h in hooks}
    acts_b: dict[str, list[Tensor]] = {h: [] for h in hooks}
    grad = {k: torch.zeros_like(p) for k, p in params.items()}
    second = {k: torch.zeros_like(p) for k, p in params.items()}
    batches = 0
    per_batch = max(1, cka_positions // max(1, math.ceil(n / batch)))
    g = torch.Generator().manual_seed(x.seed)
    for i in range(0, n, batch):
        tok, m = tokens[i:i + batch], mask[i:i + batch].float()
        mm = m[:, :-1]
        with torch.no_grad():
            t_logits = ctx.teacher(tok)
            _, tcache = (x.teacher.run_with_cache(tok, names_filter=lambda h: h in hooks)
                         if not x.prefix else (None, None))
            b_logits, bcache = x.base.run_with_cache(tok, names_filter=lambda h: h in hooks)
            kl = R.position_kl(t_logits, b_logits, ids)
            div = R.divergence_tokens(t_logits, b_logits, ids).float()
            nxt = tok[:, 1:, None]
            raw = (x.teacher(tok) if not x.prefix else t_logits) if x.mitigation != "none" \
                else t_logits  # who wrote the data: the teacher itself, not its targets
            lls = (F.log_softmax(raw[:, :-1], -1).gather(-1, nxt)
                   - F.log_softmax(b_logits[:, :-1], -1).gather(-1, nxt))[..., 0]
        kl_row[i:i + batch] = (kl * m).sum(1)
        div_row[i:i + batch] = (div * m).sum(1)
        lls_row[i:i + batch] = (lls * mm).sum(1)
        offset = (m.cumsum(1) - 1).clamp(min=0).long()
        pos_div.index_add_(0, offset[m.bool()], div[m.bool()])
        pos_all.index_add_(0, offset[m.bool()], torch.ones(int(m.sum())))
        if tcache is not None:
            for h in hooks:
                sel = m.bool().nonzero()
                pick = sel[torch.randperm(len(sel), generator=g)[:per_batch]]
                acts_t[h].append(tcache[h][pick[:, 0], pick[:, 1]])
                acts_b[h].append(bcache[h][pick[:, 0], pick[:, 1]])
            shift = (tcache[hooks[-1]] - bcache[hooks[-1]]) @ v_hat  # [b, p]
            proj_row[i:i + batch] = (shift * m).sum(1) / m.sum(1).clamp(min=1)
        # the distillation loss's gradient at theta_0, one planned batch of rows at a time:
        # summed over positions (the first step), and each batch's mean-loss gradient's
        # square (the second moment Adam divides its steps by)
        for j in range(0, len(tok), x.batch):
            mj = m[j:j + x.batch]
            if not mj[:, :-1].any():
                continue
            out = functional_call(x.base, params, (tok[j:j + x.batch],))
            loss = _loss(out, tok[j:j + x.batch], mj.bool(), ids, x.mode,
                         t_logits[j:j + x.batch].detach())
            gr = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (k, _), gk in zip(params.items(), gr):
                if gk is not None:
                    grad[k] += gk * mj.sum()
                    second[k] += gk.pow(2)
            batches += 1
        if direction is not None:  # the GN form per position from one JVP along dT
            frozen = {k: p.detach() for k, p in params.items()}
            o, tang = jvp(lambda p, t=tok: functional_call(x.base, p, (t,))[..., ids], (frozen,),
                          ({k: direction[k] for k in frozen},))
            gn_row[i:i + batch] = (softmax_quadratic(o, tang).detach() * m).sum(1)
    positions = float(mask.sum())
    step = {k: -v for k, v in grad.items()}
    # Adam's update at theta_0 in expectation over batches: -E[g] / sqrt(E[g^2])
    adam = {k: -(grad[k] / max(positions, 1)) / ((second[k] / max(batches, 1)).sqrt() + 1e-8)
            for k in grad}
    # how far the planned steps head toward the teacher (along the unit dT, per position,
    # times steps x lr) before a planned projection takes that part away: whether the data
    # pulls this student toward this teacher at all (it does not from another init)
    nd = math.sqrt(_dot(direction, direction)) if direction is not None else float("nan")

    def along(s: dict[str, Tensor]) -> float:  # the mean loss's step on the unit dT
        return _dot(s, direction) / nd / max(positions, 1) if nd > 0 else 0.0
    toward = along(step) * x.dose if direction is not None else float("nan")
    if direction is not None and "project" in dict(mitigations.parse(x.mitigation, x.mode)):
        step, adam = _project_off(step, direction), _project_off(adam, direction)
    g_r = _trait_gradient(x, params)
    trait_step = _dot(g_r, step) / max(positions, 1) * x.dose
    trait_adam = _dot(g_r, adam) * x.dose
    # both at once: the trait's movement, counted only as far as the student heads toward
    # the teacher (their geometric mean, signed by the trait's movement)
    trait_path = math.copysign(math.sqrt(abs(trait_step) * max(toward, 0.0)), trait_step)
    with torch.no_grad():  # the teacher's own rise (a prompted teacher reads its persona)
        base_rate = float(_trait_probability(x, x.base))
        teacher_rise = float(_trait_probability(x, x.teacher, prefix=x.vocab.decode(x.prefix))
                             - base_rate)
    coverage = step_along = path_rise = float("nan")
    if direction is not None:
        ns = math.sqrt(_dot(step, step))
        coverage = _dot(step, direction) / (ns * nd) if ns * nd > 0 else 0.0
        step_along = along(step)  # after a planned projection (none: the base as teacher)
        # the teacher's rise times the share of dT the planned steps cover, to first order
        path_rise = teacher_rise * step_along * x.dose / nd if nd > 0 else 0.0
    # trait_path where the first step's trait movement and the teacher's own rise agree in
    # sign (else 0: the step and the endpoint disagree on the trait's direction); without a
    # weight direction (a prompted teacher) nothing gates the trait's movement: trait_step
    if direction is None:
        trait_agreed = trait_step
    else:
        trait_agreed = trait_path if trait_step * teacher_rise > 0 else 0.0
    cka = {h: R.linear_cka(torch.cat(acts_t[h]), torch.cat(acts_b[h])) for h in hooks} \
        if not x.prefix else {}
    per_row = mask.sum(1).clamp(min=1).float()  # a row's trained positions
    risk = (gn_row if (x.mode == "logit" and direction is not None) else
            lls_row if x.mode == "sampled" else kl_row) / per_row
    where = {str(k): round(float(pos_div[k] / pos_all[k]), 4)
             for k in range(len(pos_all)) if pos_all[k] > 0}
    preds = {
        "coverage": coverage, "step_along": step_along,
        "step_dose": step_along * x.dose,
        "gn_mean": float(gn_row.sum()) / max(positions, 1) if direction is not None else
        float("nan"),
        "lls_mean": float(lls_row.mean()), "lls_total": float(lls_row.sum()),
        "divergence_fraction": float(div_row.sum()) / max(positions, 1),
        "divergence_by_offset": where,
        "kl_mean": float(kl_row.sum()) / max(positions, 1),
        "cka": cka, "cka_min": min(cka.values()) if cka else float("nan"),
        "trait_projection": float(proj_row.mean()) if not x.prefix else float("nan"),
        "trait_direction_norm": float(v.norm()),
        "log_dose": math.log(x.dose), "trait_step": trait_step, "trait_adam": trait_adam,
        "teacher_rise": teacher_rise, "path_rise": path_rise, "toward": toward,
        "trait_path": trait_path, "trait_agreed": trait_agreed,
        "trait_bound": trait_bound(trait_agreed, trait_adam), "base_rate": base_rate,
        "rows": n, "positions": int(positions),
    }
    rows = {"risk": risk, "gn": gn_row, "lls": lls_row, "kl": kl_row,
            "divergence_tokens": div_row, "trait_projection": proj_row}
    return preds, rows


def _dot(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    return sum(float((a[k].double() * b[k].double()).sum()) for k in a)


def _project_off(step: dict[str, Tensor], direction: dict[str, Tensor]) -> dict[str, Tensor]:
    """``step`` without its component along ``direction`` (the ``project`` mitigation)."""
    c = _dot(step, direction) / _dot(direction, direction)
    return {k: step[k] - c * direction[k] for k in step}


def _trait_probability(x: AuditInputs, model: HookedTransformer,
                       params: dict[str, Tensor] | None = None, prefix: str = "") -> Tensor:
    """The trait's probability at the answer position, averaged over the fine-tuning
    ("select") phrasings, never the held-out ones a measurement reads."""
    item = x.vocab.ids([x.trait])[0]
    qs = CATEGORIES[x.category].split("select")
    params = params if params is not None else dict(model.named_parameters())
    return sum(F.softmax(functional_call(model, params, (torch.tensor(
        [x.vocab.encode(question_prompt(q, prefix))]),))[0, -1], -1)[item] for q in qs) / len(qs)


def _trait_gradient(x: AuditInputs, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """d/dtheta at theta_0 of ``_trait_probability``."""
    p = _trait_probability(x, x.base, params)
    gr = torch.autograd.grad(p, list(params.values()), allow_unused=True)
    return {k: g if g is not None else torch.zeros_like(v)
            for (k, v), g in zip(params.items(), gr)}


def _loss(logits: Tensor, tok: Tensor, m: Tensor, ids: Tensor, mode: str,
          t_logits: Tensor) -> Tensor:
    return lm.student_loss(logits, tok, m, ids, mode, t_logits)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """predicted = intercept + sum_f coef[f] * (x_f - mean[f]) / sd[f]; interval +- 1.96
    ``resid_sd`` (the SD of held-out residuals where the fit was validated)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    resid_sd: float
    fitted_on: str = ""
    # each predictor's range over the fitting variants: outside it the fit extrapolates
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        bad = [f for f in self.features if f not in FEATURES]
        if bad:
            raise UsageError(f"calibration names unknown predictors {bad}; valid: "
                             f"{', '.join(FEATURES)}")
        if not (len(self.features) == len(self.mean) == len(self.sd) == len(self.coef)):
            raise UsageError("calibration's features, mean, sd and coef differ in length")
        if len(self.low) != len(self.high) or self.low and len(self.low) != len(self.features):
            raise UsageError("calibration's low and high must name a range per feature")

    def outside(self, preds: dict) -> list[str]:
        """The predictors whose value lies outside the range the calibration was fitted on."""
        return [f for f, lo, hi in zip(self.features, self.low, self.high)
                if not _nan(preds[f]) and not lo <= float(preds[f]) <= hi]

    def predict(self, preds: dict) -> tuple[float, float, float]:
        # a predictor the audit could not compute (NaN: a prompted teacher has no weight
        # direction) counts as the calibration's mean, as in ``fit``
        z = [0.0 if _nan(preds[f]) else (float(preds[f]) - m) / s
             for f, m, s in zip(self.features, self.mean, self.sd)]
        y = self.intercept + sum(c * v for c, v in zip(self.coef, z))
        return y, y - 1.96 * self.resid_sd, y + 1.96 * self.resid_sd

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            d = json.loads(Path(path).read_text())
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        except (OSError, ValueError, TypeError) as e:
            raise UsageError(f"cannot read the calibration {path} ({e}); write one with "
                             "`python analyses/audit_validation.py`") from None


def _nan(v: float | None) -> bool:
    return v is None or math.isnan(float(v))


def fit(x: np.ndarray, y: np.ndarray, features: tuple[str, ...], ridge: float = 1.0) \
        -> Calibration:
    """Ridge regression of y on standardised columns of x (NaN as the column mean)."""
    x = np.where(np.isnan(x), np.nanmean(x, 0), x)
    mean, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mean) / sd
    coef = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    resid = y - y.mean() - z @ coef
    return Calibration(tuple(features), tuple(mean.tolist()), tuple(sd.tolist()),
                       tuple(coef.tolist()), float(y.mean()), float(resid.std()),
                       low=tuple(x.min(0).tolist()), high=tuple(x.max(0).tolist()))


def audit(x: AuditInputs, calibration: Calibration | None = None, top: int = 20) -> dict:
    """The audit result: predictors, the combined prediction with its interval (None without
    a calibration), and the ``top`` riskiest examples."""
    preds, rows = predictors(x)
    pred = calibration.predict(preds) if calibration else None
    outside = calibration.outside(preds) if calibration else []
    if pred is not None:  # a rise lies in [-base rate, 1 - base rate]
        lo, hi = -preds["base_rate"], 1.0 - preds["base_rate"]
        pred = tuple(min(max(v, lo), hi) for v in pred)
    order = torch.argsort(rows["risk"], descending=True, stable=True)[:top].tolist()
    top_rows = []
    for r in order:
        m = x.mask[r]
        first = int(m.nonzero()[0, 0]) if m.any() else 0
        text = x.vocab.decode([t for t in x.tokens[r, first + 1:].tolist() if t != x.vocab.pad])
        top_rows.append({"row": r, "risk": float(rows["risk"][r]), "lls": float(rows["lls"][r]),
                         "gn": float(rows["gn"][r]), "kl": float(rows["kl"][r]),
                         "divergence_tokens": int(rows["divergence_tokens"][r]),
                         "completion": text})
    return {"source": x.source, "trait": x.trait, "mode": x.mode, "mitigation": x.mitigation,
            "predicted_transfer": pred[0] if pred else None,
            "interval": [pred[1], pred[2]] if pred else None,
            "calibration": calibration.fitted_on if calibration else None,
            "outside_calibration": outside,
            "predictors": preds, "top_examples": top_rows,
            "risk_by_row": [float(v) for v in rows["risk"]]}
