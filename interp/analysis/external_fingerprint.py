"""The fingerprint analysis on models from outside the toolkit (``interp.loading``).

Given the roles of an external run (``interp.analysis.external.Models``) and its data:
1. SAEs at every ``blocks.{l}.hook_resid_post``: pretrained ones (``--sae``; sae-lens) where
   given, else trained as the toolkit trains them (``interp.analysis.sae``) on the base's and
   the teacher's activations over the data; each measured on the base's activations.
2. Per hook, on the first ``n_probe`` rows (every real position, as the toolkit's number
   probe): the SAE feature shifts teacher - base and student - control (student - base
   without a control), their correlation, the top features by shared shift, and how much of
   the student's mean activation shift the SAE and its top-k features reconstruct.
The trait-prompt parts of the toolkit's fingerprint (answer-position shifts, the linear
direction, patching and the causal ablation and steering tests) need trait questions and
a target answer the data does not carry; they are listed under ``missing``.

Owns: ``analyse_external`` -> ``ExternalFingerprintResult``. Must not import: reports, the
CLIs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from interp.analysis.external import Models
from interp.analysis.fingerprint import FingerprintConfig
from interp.analysis.results import ExternalFingerprintResult
from interp.analysis.sae import cached as cached_sae
from interp.analysis.sae import quality as sae_quality
from interp.analysis.sae import save_dir
from interp.errors import UsageError
from interp.loading.jsonl import Data
from interp.metrics import features as Fe
from interp.storage.activations import activations, hook_names
from interp.storage.store import Store


def analyse_external(models: Models, data: Data, fcfg: FingerprintConfig | None = None,
                     pretrained: dict | None = None, n_probe: int = 256,
                     sae_out: Path | None = None, store: Store | None = None,
                     batch: int = 8) -> ExternalFingerprintResult:
    if models.teacher is None:
        raise UsageError("a prompted teacher has no weights of its own; the fingerprint "
                         "compares models' activations on the same tokens; pass --teacher "
                         "MODEL (python -m interp.align shows a prompted teacher's drift)")
    store = store or Store()
    fcfg = fcfg or FingerprintConfig()
    pretrained = pretrained or {}
    base = models.base.model
    dev = base.cfg.device  # SAEs run here; activations come back on the host
    names = hook_names(base)
    tokens = data.tokens
    real = data.tokens != data.pad
    acts = {"theta_0": activations(base, tokens, names, store, label="external data",
                                   batch=batch)}
    with models.teacher.weights() as m:
        acts["teacher"] = activations(m, tokens, names, store, label="external data",
                                      batch=batch)
    for role in ("student", "control"):
        loaded = getattr(models, role)
        if loaded is not None:
            with loaded.weights() as m:
                acts[role] = activations(m, tokens, names, store, label="external data",
                                         batch=batch)
    saes, quality = {}, {}
    for h in tqdm(names, desc="SAEs"):
        rows = acts["theta_0"][h][real]
        if h in pretrained:
            saes[h] = pretrained[h]
        else:
            train = torch.cat([rows, acts["teacher"][h][real]]) \
                if fcfg.sae_data == "base+teachers" else rows
            saes[h], _ = cached_sae(store, train.float().cpu(), fcfg.sae, h)
        saes[h] = saes[h].to(dev)
        with torch.no_grad():
            quality[h] = sae_quality(saes[h], rows.to(dev, saes[h].W_dec.dtype))
    probe = real.clone()
    probe[n_probe:] = False
    ref = "control" if "control" in acts else "theta_0"
    k_max = max(fcfg.ks)
    hooks = {}
    with torch.no_grad():
        for h in names:
            f = {r: saes[h].encode(acts[r][h][probe].to(dev, saes[h].W_dec.dtype)).float().cpu()
                 for r in acts}
            t_shift = Fe.mean_shift(f["teacher"], f["theta_0"])
            s_shift = Fe.mean_shift(f["student"], f[ref])
            rank = Fe.shared_ranking(t_shift, s_shift)
            W = saes[h].W_dec.detach().float().cpu()
            top = rank[:k_max]
            shift = Fe.mean_shift(acts["student"][h][probe].float().cpu(),
                                  acts[ref][h][probe].float().cpu())
            hooks[h] = {"numbers": {"correlation": Fe.correlation(t_shift, s_shift),
                                    "top": top.tolist(),
                                    "top_shared": (t_shift * s_shift)[top].tolist()},
                        "captured": {"sae": Fe.captured(s_shift @ W, shift),
                                     "top_k": Fe.captured(s_shift[top] @ W[top], shift)}}
    result: dict = {
        "study": "external", "models": {r: m.name for r, m in
                                        {"base": models.base, **models.roles()}.items()},
        "student_reference": ref, "sae": quality,
        "sae_source": {h: "pretrained" if h in pretrained else "trained" for h in names},
        "hooks": hooks,
        "missing": {"trait": "the trait-prompt analyses (answer-position shifts, the linear "
                             "direction, patching, ablation and steering) need trait questions "
                             "and a target answer; run them on a toolkit run "
                             "(python -m interp.fingerprint RUN_DIR)"}}
    if ref == "theta_0":
        result["missing"]["control"] = "no --control: the student's shift is measured from " \
                                       "the base"
    if sae_out is not None:
        result["sae_dirs"] = {h: str(save_dir(saes[h], Path(sae_out) / h)) for h in names}
    return result
