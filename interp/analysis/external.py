"""The align analysis on models from outside the toolkit: Hugging Face checkpoints, LoRA
adapters, or the toolkit's own models exported (``interp.loading``).

Given a base, a teacher (a model, or the base with a system prompt: a *prompted* teacher),
a student, optionally its first-step checkpoint, a control and a cross-init model, and
prompt/completion data:
1. The probe: the first ``n_probe`` rows, the distillation loss the toolkit's students use
   (KL from the teacher's next-token distribution at each completion position, restricted
   to the number channel: the tokens made only of digits and number punctuation, plus
   end-of-sequence; ``channel="full"`` for the whole vocabulary), in chunks of ``chunk``
   rows (every quantity is a sum over rows; memory scales with the chunk).
2. Weights (when the teacher has any): dT = theta_T - theta_0 (an adapter's own B @ A *
   scale), the student's final movement against dT overall and per component, the first
   step's inner product and cosine when a step-1 checkpoint is given, the theorem's sign
   check -grad L(theta_0) . dT with its Gauss-Newton form on the data (and at the cross-init
   model), and the per-token attribution along dT.
3. Activations: each model's drift from the base at every ``blocks.{l}.hook_resid_post`` on
   the data, and its cosine with the teacher's drift (for a prompted teacher: its drift
   read with the system prompt, aligned to the completion positions).
What needs training-time records (the per-step recorder's cosines, cumulative checkpoints)
is listed under ``missing`` with the reason, as is everything a prompted teacher lacks.

Owns: ``ExternalConfig``, ``Models``, ``analyse_external``. Must not import: reports, the
CLIs.
"""

from __future__ import annotations

import dataclasses
import re

import torch
from jaxtyping import Bool
from torch import Tensor

from interp.analysis.align import Probe, token_summary
from interp.analysis.results import ExternalAlignResult
from interp.errors import ConfigError, UsageError
from interp.loading.jsonl import Data
from interp.loading.sources import Loaded
from interp.metrics import alignment as A
from interp.metrics import divergence as D
from interp.storage.activations import activations, hook_names
from interp.storage.store import Store
from interp.validation import check_range, check_types

CHANNELS = ("numbers", "full")
NUMBER_TEXT = re.compile(r"^[\d,;.\[\]() ]*\d*[\d,;.\[\]()]$")
MARKS = "Ġ▁Ċ "  # byte-level / sentencepiece word-start marks


@dataclasses.dataclass(frozen=True)
class ExternalConfig:
    n_probe: int = 64  # rows for the loss, the sign check and the attribution
    n_drift: int = 256  # rows for the activation drift
    channel: str = "numbers"
    chunk: int = 8  # probe rows per forward/backward pass (memory; sums are unchanged)

    def __post_init__(self) -> None:
        check_types(self)
        check_range(self, ("n_probe", "n_drift", "chunk"), 1)
        if self.channel not in CHANNELS:
            raise ConfigError(f"invalid channel {self.channel!r}; valid: {', '.join(CHANNELS)}")


@dataclasses.dataclass
class Models:
    """The roles of an external run; ``teacher`` None with ``teacher_prompt`` set is a
    prompted teacher (the base reading a system prompt)."""

    base: Loaded
    student: Loaded
    teacher: Loaded | None = None
    teacher_prompt: str = ""
    student_step_1: Loaded | None = None
    control: Loaded | None = None
    cross_init: Loaded | None = None

    def __post_init__(self) -> None:
        if (self.teacher is None) == (not self.teacher_prompt):
            raise UsageError("pass exactly one teacher: --teacher MODEL or --teacher-prompt "
                             "TEXT (a prompted teacher)")
        shapes = {k: tuple(v.shape) for k, v in self.base.model.named_parameters()}
        for role, m in self.roles().items():
            if m.delta is None and m is not self.base and role != "cross_init":
                other = {k: tuple(v.shape) for k, v in m.model.named_parameters()}
                if other != shapes:
                    raise UsageError(f"--{role.replace('_', '-')} {m.name} has another "
                                     f"architecture than the base {self.base.name}; pass "
                                     "checkpoints of one model family and size")

    def roles(self) -> dict[str, Loaded]:
        names = ("teacher", "student", "student_step_1", "control", "cross_init")
        return {r: getattr(self, r) for r in names if getattr(self, r) is not None}


def channel_ids(tokenizer, d_vocab: int, channel: str) -> Tensor:
    """The token ids a restricted distillation loss covers: ``numbers`` - every token whose
    text is digits and number punctuation only, and end-of-sequence; ``full`` - all."""
    if channel == "full":
        return torch.arange(d_vocab)
    if tokenizer is None:
        raise UsageError("the number channel needs the model's tokenizer; pass --channel full "
                         "or save a tokenizer beside the model")
    texts = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), d_vocab))))
    ids = [i for i, t in enumerate(texts) if t and NUMBER_TEXT.match(t.strip(MARKS) or "x")]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if len(ids) < 2:
        raise UsageError("the tokenizer has no number tokens; pass --channel full")
    return torch.tensor(sorted(ids))


def deltas(m: Loaded, base: Loaded) -> A.State:
    """theta_m - theta_base over the base's parameters (an adapter: its own delta)."""
    if m.delta is not None:
        return m.delta  # lazy: each parameter's delta is built when read
    own = dict(m.model.named_parameters())
    return A.delta({k: v.detach() for k, v in own.items()},
                   {k: v.detach() for k, v in base.model.named_parameters()})


def teacher_logits(models: Models, data: Data, teacher_data: Data | None, rows: slice) \
        -> Tensor:
    """The teacher's logits at the student's positions ([n, pos, vocab]); a prompted
    teacher reads ``teacher_data`` (the rows with its system prompt), each row shifted so
    that position t predicts the same completion token as the student's position t."""
    tokens = data.tokens[rows].to(models.base.model.cfg.device)
    with torch.no_grad():
        if models.teacher is not None:
            with models.teacher.weights() as m:
                return m(tokens)
        t_tok = teacher_data.tokens[rows].to(tokens.device)
        logits = models.base.model(t_tok)
    return align_prompted(logits, data.mask[rows], teacher_data.mask[rows], tokens.shape[1])


def align_prompted(logits: Tensor, mask: Bool[Tensor, "n p"], t_mask: Bool[Tensor, "n q"],
                   width: int) -> Tensor:
    """Row r of the result at position t is ``logits[r, t + shift_r]``, with shift_r the
    offset between the first completion position of the two masks."""
    shift = t_mask.float().argmax(1) - mask.float().argmax(1)
    pos = (torch.arange(width)[None] + shift[:, None]).clamp(0, logits.shape[1] - 1)
    return logits.gather(1, pos.to(logits.device)[..., None].expand(-1, -1, logits.shape[-1]))


def make_probe(models: Models, data: Data, teacher_data: Data | None, ids: Tensor,
               rows: slice) -> Probe:
    """The probe over ``rows`` of the data (the teacher's logits computed here, once)."""
    module = models.base.model
    dev = module.cfg.device
    tokens = data.tokens[rows].to(dev)
    mask = data.mask[rows].to(dev)
    t = D.restricted_log_softmax(teacher_logits(models, data, teacher_data, rows), ids)
    fn = A.model_fn(module)
    m = mask.float()

    def loss(p):
        return D.kl(t, D.restricted_log_softmax(fn(p, tokens), ids)) * m

    return Probe(module, loss, lambda p: fn(p, tokens)[..., ids][mask], tokens)


def _params(m: Loaded) -> A.State:
    return {k: v.detach() for k, v in m.model.named_parameters()}


def probes(models: Models, data: Data, teacher_data: Data | None, ids: Tensor,
           cfg: ExternalConfig):
    """The probe rows in chunks of ``cfg.chunk``, one at a time (memory scales with the
    chunk; every quantity below is a sum over rows, so chunking changes no number)."""
    n = min(cfg.n_probe, len(data.tokens))
    for i in range(0, n, cfg.chunk):
        yield make_probe(models, data, teacher_data, ids, slice(i, min(i + cfg.chunk, n)))


def chunked_sign_check(chunks, full: A.State, dT: A.State) -> dict:
    """``interp.analysis.align.sign_check`` summed over probe chunks: the gradient of the
    summed loss and the Gauss-Newton form, each a sum over rows."""
    theta = {k: full[k] for k in dT}
    g, gn = None, 0.0
    for probe in chunks:
        gi = A.gradient(lambda p, probe=probe: probe.loss({**full, **p}).sum(), theta)
        if g is None:
            g = gi
        else:
            for k in g:
                g[k].add_(gi[k])
        del gi
        gn += float(A.gauss_newton_form(
            lambda p, _x, probe=probe: probe.select({**full, **p}), theta, dT, torch.empty(0)))
    ip, cos = A.dot_cos({k: -v for k, v in g.items()}, dT)
    return {"inner_product": ip, "cosine": cos, "gauss_newton": gn}


def weight_report(models: Models, make_chunks, tokenizer) -> tuple[dict, dict]:
    """Everything measured along dT (see the module doc, step 2); (results, missing)."""
    res: dict = {}
    missing: dict[str, str] = {}
    base = _params(models.base)
    dT = deltas(models.teacher, models.base)
    if not any(bool(dT[k].any()) for k in dT):
        raise UsageError(f"the teacher {models.teacher.name} has the base's weights (dT = 0); "
                         "for a teacher that differs only by a prompt pass --teacher-prompt")
    dS = deltas(models.student, models.base)
    ip, cos = A.dot_cos(dS, dT, [k for k in dT if k in dS])
    res["final"] = {"inner_product": ip, "cosine": cos,
                    "components": {c: v["cosine"] for c, v in A.by_component(dS, dT).items()}}
    if models.student_step_1 is not None:
        d1 = deltas(models.student_step_1, models.base)
        ip1, cos1 = A.dot_cos(d1, dT, [k for k in dT if k in d1])
        res["first_step"] = {"inner_product": ip1, "cosine": cos1}
        res["coverage"] = cos1
        res["components"] = A.by_component(d1, dT)
    else:
        missing["first_step"] = ("no step-1 checkpoint given: pass --student-step-1 (the "
                                 "student after one optimizer step) for the theorem's "
                                 "first-step check")
    dense = {k: dT[k].to(base[k].dtype) for k in dT}  # the one dense copy: JVP tangents
    res["gradient_step"] = chunked_sign_check(make_chunks(), base, dense)
    if models.cross_init is not None:
        cross = _params(models.cross_init)
        if {k: v.shape for k, v in cross.items()} != {k: v.shape for k, v in base.items()}:
            missing["cross_init"] = "the cross-init model has another shape than the base"
        else:
            res["cross_init"] = chunked_sign_check(make_chunks(), cross, dense)
    else:
        missing["cross_init"] = "no cross-init model given (--cross-init)"
    theta = {k: base[k] for k in dT}
    attr, toks, base_arg, teach_arg = [], [], [], []
    for probe in make_chunks():
        attr.append(-A.token_attribution(lambda p, probe=probe: probe.loss({**base, **p}),
                                         theta, dense).detach().cpu())
        toks.append(probe.tokens.cpu())
        with torch.no_grad():
            base_arg.append(models.base.model(probe.tokens).argmax(-1).cpu())
            with models.teacher.weights() as m:
                teach_arg.append(m(probe.tokens).argmax(-1).cpu())
    d_vocab = models.base.model.cfg.d_vocab
    names = tokenizer.convert_ids_to_tokens(list(range(d_vocab))) \
        if tokenizer is not None else [str(i) for i in range(d_vocab)]
    res["tokens"] = token_summary(torch.cat(attr), torch.cat(toks), torch.cat(base_arg),
                                  torch.cat(teach_arg),
                                  [n if n is not None else "?" for n in names])
    return res, missing


def drift_report(models: Models, data: Data, teacher_data: Data | None, n: int,
                 store: Store, batch: int = 256) -> dict:
    """Per hook: each model's activation drift from the base on the data, and its cosine
    with the teacher's drift (see the module doc, step 3)."""
    base = models.base.model
    names = hook_names(base)
    tokens = data.tokens[:n]
    mask = data.mask[:n] | (tokens != data.pad)
    acts = {"theta_0": activations(base, tokens, names, store, label="external data",
                                   batch=batch)}
    if models.teacher is not None:
        with models.teacher.weights() as m:
            acts["teacher"] = activations(m, tokens, names, store, label="external data",
                                          batch=batch)
    else:
        t_tok = teacher_data.tokens[:n]
        a = activations(base, t_tok, names, store, label="external data + teacher prompt",
                        batch=batch)
        acts["teacher"] = {h: align_prompted(v, data.mask[:n], teacher_data.mask[:n],
                                             tokens.shape[1]) for h, v in a.items()}
        mask = data.mask[:n]  # only the completion positions line up with the prompted rows
    for role in ("student", "control"):
        m = getattr(models, role)
        if m is not None:
            with m.weights() as model:
                acts[role] = activations(model, tokens, names, store, label="external data",
                                         batch=batch)
    out: dict = {}
    for role in [r for r in ("student", "control") if r in acts]:
        for h in names:
            out.setdefault(role, {}).setdefault("data", {})[h] = A.activation_drift(
                acts["theta_0"][h].float().cpu(), acts[role][h].float().cpu(),
                acts["teacher"][h].float().cpu(), mask.cpu())
    return out


def analyse_external(models: Models, data: Data, cfg: ExternalConfig = ExternalConfig(),
                     teacher_data: Data | None = None,
                     store: Store | None = None) -> ExternalAlignResult:
    """The external align report (``interp.reports.external`` writes it)."""
    store = store or Store()
    tok = models.base.tokenizer
    if len(data.tokens) < 1 or not data.mask.any():
        raise UsageError(f"{data.source} has no completion positions")
    if int(data.tokens.max()) >= models.base.model.cfg.d_vocab:
        raise UsageError(f"{data.source} holds token ids beyond the model's vocabulary "
                         f"({models.base.model.cfg.d_vocab}); pass data tokenized for this model")
    ids = channel_ids(tok, models.base.model.cfg.d_vocab, cfg.channel).to(
        models.base.model.cfg.device)
    base = _params(models.base)

    def make_chunks():
        return probes(models, data, teacher_data, ids, cfg)
    with torch.no_grad():
        loss = sum(float(p.loss(base).sum()) for p in make_chunks())
    seed: dict = {"teacher_kind": "prompted" if models.teacher is None else "finetuned",
                  "weight_direction": models.teacher is not None,
                  "teacher_prefix": models.teacher_prompt, "probe_loss": loss}
    missing = {"per_step": "the per-step recorder's cosines exist only for students the "
                           "toolkit trained (python -m interp.study)",
               "cumulative": "intermediate checkpoints are not given; the final student's "
                             "movement is under 'final'"}
    if models.teacher is not None:
        weights, more = weight_report(models, make_chunks, tok)
        seed.update(weights)
        missing.update(more)
    else:
        missing["weights"] = ("a prompted teacher has no weights of its own: there is no dT, "
                              "so the first step, the cosines, the sign check and the token "
                              "attribution do not exist; the activation drift shows what "
                              "activations can")
    seed["drift"] = drift_report(models, data, teacher_data, cfg.n_drift, store, cfg.chunk)
    return {"study": "external",
            "models": {"base": models.base.name,
                       "teacher": models.teacher.name if models.teacher else
                       f"prompted: {models.teacher_prompt}",
                       **{r: m.name for r, m in models.roles().items() if r != "teacher"}},
            "data": {"source": data.source, "rows": int(len(data.tokens)),
                     "probe_rows": min(cfg.n_probe, len(data.tokens)), "channel": cfg.channel,
                     "channel_tokens": int(len(ids))},
            "seeds": {"0": seed}, "missing": missing}


@dataclasses.dataclass(frozen=True)
class ExternalSpecs:
    """The command line's external run: model specs (``interp.loading.sources``), the data
    file, and where and how to run."""

    base: str
    student: str
    data: str
    teacher: str | None = None
    teacher_prompt: str = ""
    student_step_1: str | None = None
    control: str | None = None
    cross_init: str | None = None
    device: str = "auto"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if (self.teacher is None) == (not self.teacher_prompt):
            raise UsageError("pass exactly one teacher: --teacher MODEL or --teacher-prompt "
                             "TEXT (a prompted teacher)")

    def key(self) -> str:
        import hashlib
        import json

        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()) \
            .hexdigest()[:12]


def load_specs(specs: ExternalSpecs, n_ctx: int | None = None) \
        -> tuple[Models, Data, Data | None]:
    """Load every model (adapters over the base, never merged) and the data; every bad
    input is a one-line ``UsageError`` before anything is written."""
    from interp.loading.jsonl import read_data
    from interp.loading.sources import load_model, pick_device

    device = pick_device(specs.device)
    base = load_model(specs.base, device, specs.dtype)

    def one(spec: str | None) -> Loaded | None:
        if spec is None:
            return None
        return load_model(spec, device, specs.dtype, base=base)

    models = Models(base=base, student=one(specs.student), teacher=one(specs.teacher),
                    teacher_prompt=specs.teacher_prompt,
                    student_step_1=one(specs.student_step_1), control=one(specs.control),
                    cross_init=one(specs.cross_init))
    n_ctx = n_ctx or base.model.cfg.n_ctx
    data = read_data(specs.data, base.tokenizer, n_ctx)
    teacher_data = read_data(specs.data, base.tokenizer, n_ctx, system=specs.teacher_prompt) \
        if specs.teacher_prompt else None
    return models, data, teacher_data


def specs_from_run(run_dir, seed: str | None = None, device: str = "auto",
                   dtype: str = "float32") -> ExternalSpecs | None:
    """An lm-numbers run directory's models as an external run (its base directory or hub
    id, its peft adapters, its number data as JSONL; a prompted teacher as its system
    prompt); None for the toolkit's own runs (owl-numbers, digits-aux)."""
    from interp.studies.runner import load_run

    art, _ = load_run(run_dir)
    if art["study"] != "lm-numbers":
        return None
    seed = seed if seed is not None else next(iter(art["seeds"]))
    files = art["seeds"].get(seed)
    if files is None:
        raise UsageError(f"{run_dir} has no seed {seed}; valid: {', '.join(art['seeds'])}")
    if "student_final" not in files:
        raise UsageError(f"{run_dir} keeps no student adapter (student_kind=full or no student "
                         "role); rerun lm-numbers with student_kind=lora")
    prompt = art.get("teacher", {}).get("system_prompt", "")
    return ExternalSpecs(base=files["theta_0"], student=files["student_final"],
                         data=files["data"], teacher=files.get("teacher"),
                         teacher_prompt="" if "teacher" in files else prompt,
                         control=files.get("control_final"), device=device, dtype=dtype)
