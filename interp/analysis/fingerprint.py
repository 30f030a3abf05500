"""The fingerprint analysis: where the teacher's trait lives in the student.

On an owl-numbers run:
1. SAEs (sae-lens BatchTopK) on the residual stream at every layer, trained from the
   activation cache on the pretraining mix plus the number data, seen by the base and
   (by default) by every seed's teacher.
2. Per layer, the SAE feature shifts teacher - base and student - control on the number
   data and at the trait prompts' answer position, and how well the two agree.
3. A linear baseline: the difference-of-means trait direction and the student's shift
   along it, with its own causal check.
4. Activation patching per layer and position class (answer vs context).
5. The causal checks at the chosen hook: ablate the top-k shared-shift features in the
   student (vs k random live and k random answer-active features) and steer the base.

Owns: ``analyse`` -> ``FingerprintResult``. Must not import: reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from interp.analysis.results import FingerprintResult
from interp.analysis.sae import SAEConfig
from interp.analysis.sae import cached as cached_sae
from interp.errors import ConfigError, UsageError
from interp.metrics import features as Fe
from interp.storage.activations import activations, hook_names
from interp.storage.rundir import run_id
from interp.storage.store import Store, read_tensors
from interp.studies import lm
from interp.validation import check_range, check_seed, check_types

ROLES = ("theta_0", "teacher", "student_final", "control_final")


@dataclasses.dataclass(frozen=True)
class FingerprintConfig:
    sae: SAEConfig = SAEConfig()
    corpus_docs: int = 3000  # pretraining-mix documents the SAEs train on (plus number data)
    corpus_seed: int = 12345
    k: int = 8  # features ablated / steered with
    random_draws: int = 20  # random k-feature sets per seed for the control ablation
    top_tokens: int = 6  # top activating tokens listed per feature
    # what the SAEs train on: the base's activations on the corpus, or those plus every
    # seed's teacher on the same corpus. The base has no favourite, so it barely varies
    # along the trait direction; a base-only SAE leaves most of the student's shift in its
    # error term (measured: 24% seen at the last layer, vs 76% with the teachers' data)
    sae_data: Literal["base", "base+teachers"] = "base+teachers"

    def __post_init__(self) -> None:
        check_types(self)
        if not isinstance(self.sae, SAEConfig):
            raise ConfigError(f"sae must be an SAEConfig, got {self.sae!r}")
        check_range(self, ("corpus_docs", "k", "random_draws", "top_tokens"), 1)
        check_range(self, ("corpus_docs",), 1, 1_000_000)
        check_seed("corpus_seed", self.corpus_seed)


def _owl_config(summary: dict):
    from interp.studies.owl import OwlConfig

    c = {k: tuple(v) if isinstance(v, list) else v for k, v in summary["config"].items()}
    return OwlConfig(**c)


def sae_corpus(cfg, vocab, fcfg: FingerprintConfig, data_tokens: torch.Tensor) -> torch.Tensor:
    """The mix the models saw: pretraining documents (numbers and trait questions) and the
    teacher's number data, as one token batch."""
    from interp.studies.world import corpus_batch, pad

    rng = np.random.default_rng(fcfg.corpus_seed)
    docs = corpus_batch(vocab, cfg.world, rng, fcfg.corpus_docs)
    rows = [r[r != vocab.pad].tolist() for r in torch.cat([docs, data_tokens[:, :docs.shape[1]]])
            if (r != vocab.pad).any()]
    return pad(rows, vocab.pad)


def trait_rate(model, probe: dict, target: int, hook: str | None = None, edit=None) -> float:
    """P(target) at the answer position, averaged over phrasings, with an optional edit of
    the activation at ``hook``: ``edit(x) -> x'`` on [n, pos, d]."""
    with torch.no_grad():
        hooks = [(hook, lambda x, hook: edit(x))] if edit is not None else []
        logits = model.run_with_hooks(probe["trait"], fwd_hooks=hooks)
    return Fe.answer_rate(logits, probe["trait_last"], target)


def analyse(run_dir: Path, fcfg: FingerprintConfig = FingerprintConfig(),
            store: Store | None = None) -> FingerprintResult:
    """The whole analysis on one owl-numbers run (``interp.reports.fingerprint`` writes it)."""
    from interp.studies.runner import load_run
    from interp.studies.world import vocab_for

    store = store or Store()
    art, summary = load_run(run_dir)
    store.bind(run_dir)  # every entry read or built is recorded for gc as it is used
    if summary.get("study") != "owl-numbers":
        raise UsageError(f"{run_dir} is a {summary.get('study')} run; the fingerprint analysis "
                         "needs an owl-numbers run (python -m interp.study run owl-numbers)")
    missing = [r for r in ROLES if r not in next(iter(art["seeds"].values()))]
    if missing:
        raise UsageError(f"{run_dir} lacks {missing}; rerun the study with the student and "
                         "control roles (--set roles=student,control,...)")
    cfg = _owl_config(summary)
    vocab = vocab_for(cfg.category)
    target = vocab.ids((summary["trait"],))[0]
    seeds = list(art["seeds"])
    roles0 = art["seeds"][seeds[0]]
    base = lm.from_artifacts(art["model"], roles0["theta_0"])
    names = hook_names(base)

    # SAEs on the base's residual stream, from the activation cache
    corpus = sae_corpus(cfg, vocab, fcfg, read_tensors(roles0["data"])["tokens"])
    corpus_acts = activations(base, corpus, names, store, label="sae corpus")
    cmask = corpus != vocab.pad
    sources = [corpus_acts]
    if fcfg.sae_data == "base+teachers":
        sources += [activations(lm.from_artifacts(art["model"], art["seeds"][s]["teacher"]),
                                corpus, names, store, label="sae corpus") for s in seeds]
    saes, quality = {}, {}
    for h in tqdm(names, desc="SAEs"):
        saes[h], quality[h] = cached_sae(store, torch.cat([a[h][cmask] for a in sources]),
                                         fcfg.sae, h)
    enc = {h: (lambda x, h=h: saes[h].encode(x)) for h in names}
    with torch.no_grad():
        alive = {h: ((enc[h](corpus_acts[h][cmask]) != 0).any(0)).nonzero()[:, 0] for h in names}

    per_seed = {}
    for seed in tqdm(seeds, desc="fingerprint seeds"):
        per_seed[seed] = seed_analysis(art, art["seeds"][seed], vocab, cfg, fcfg, names, saes,
                                       enc, alive, target, store, int(seed))
    feats = top_feature_tokens(per_seed, corpus, corpus_acts, cmask, enc, vocab, fcfg)
    result = summarise(per_seed, quality, names, fcfg)
    result["features"] = feats
    result["trait"] = summary["trait"]
    result["run_id"] = run_id(run_dir)  # the align report merges it only into this run
    store.write_refs(run_dir)
    return result
    store.write_refs(run_dir)
    write_json(run_dir / "fingerprint.json", result)
    from interp.reports.fingerprint import write_report

    write_report(run_dir, result)
    if (run_dir / "align.json").is_file():  # the align report gains a fingerprint section
        from interp.analysis.align import render

        render(run_dir, json.loads((run_dir / "align.json").read_text()), summary)
    return result


@torch.no_grad()
def seed_analysis(art, roles, vocab, cfg, fcfg, names, saes, enc, alive, target, store,
                  seed: int) -> dict:
    from interp.studies.owl import probe_tokens

    probe = probe_tokens(vocab, cfg.category, read_tensors(roles["data"])["tokens"])
    models = {r: lm.from_artifacts(art["model"], roles[r]) for r in ROLES}
    acts = {r: {s: activations(m, probe[s], names, store, label=f"probe {s}")
                for s in ("numbers", "trait")} for r, m in models.items()}
    nmask = probe["numbers"] != vocab.pad
    last = probe["trait_last"]
    rows = torch.arange(len(last))
    rate = {r: trait_rate(models[r], probe, target) for r in ROLES}
    out: dict = {"rates": rate, "hooks": {}}
    masks = Fe.position_masks(probe["trait"], last)
    for h in names:
        f_num = {r: enc[h](acts[r]["numbers"][h][nmask]) for r in ROLES}
        f_ans = {r: enc[h](acts[r]["trait"][h][rows, last]) for r in ROLES}
        res: dict = {}
        for label, f in (("numbers", f_num), ("trait", f_ans)):
            t_shift = Fe.mean_shift(f["teacher"], f["theta_0"])
            s_shift = Fe.mean_shift(f["student_final"], f["control_final"])
            rank = Fe.shared_ranking(t_shift, s_shift)
            res[label] = {"correlation": Fe.correlation(t_shift, s_shift),
                          "top": rank[:fcfg.k].tolist(),
                          "top_shared": (t_shift * s_shift)[rank[:fcfg.k]].tolist()}
        # linear baseline at the answer position
        a = {r: acts[r]["trait"][h][rows, last] for r in ROLES}
        direction = Fe.mean_shift(a["teacher"], a["theta_0"])
        shift = Fe.mean_shift(a["student_final"], a["control_final"])
        res["linear"] = Fe.projection(shift, direction)
        # the baseline's causal check: hold the student's projection on the trait direction
        # at the control's level at the answer position
        level = float((a["control_final"] @ (direction / direction.norm())).mean())
        ans = masks["answer"][..., None]
        lin_rate = trait_rate(models["student_final"], probe, target, h,
                              lambda x, ans=ans, d=direction, v=level: torch.where(
                                  ans, Fe.set_projection(x, d, v), x))
        res["linear"]["gain_removed"] = Fe.gain_removed(lin_rate, rate["student_final"],
                                                        rate["control_final"])
        # how much of the student's shift the SAE can see at all, and its top-k features
        W, top = saes[h].W_dec.detach(), torch.tensor(res["trait"]["top"])
        f_shift = Fe.mean_shift(f_ans["student_final"], f_ans["control_final"])
        res["captured"] = {
            "sae": Fe.captured(f_shift @ W, shift),
            "top_k": Fe.captured(f_shift[top] @ W[top], shift)}
        # activation patching: teacher -> base, student -> control, per position class
        res["patching"] = {}
        for src, dst in (("teacher", "theta_0"), ("student_final", "control_final")):
            for cls, m in masks.items():
                cached = acts[src]["trait"][h]

                def patch(x, cached=cached, m=m):
                    return torch.where(m[..., None], cached, x)
                patched = trait_rate(models[dst], probe, target, h, patch)
                gap = rate[src] - rate[dst]
                res["patching"][f"{src}->{dst}:{cls}"] = {
                    "rate": patched, "recovered": (patched - rate[dst]) / gap if gap else 0.0}
        res["causal"] = causal(models, probe, target, h, saes[h], res["trait"]["top"],
                               f_ans, rate, fcfg, alive[h], seed)
        out["hooks"][h] = res
    return out


def causal(models, probe, target, hook, sae, top, f_ans, rate, fcfg, alive, seed=0) -> dict:
    """Ablate the top-k fingerprint features in the student, and k random live ones; steer
    the base by the student's shift along the top-k features (at the answer position)."""
    W = sae.W_dec.detach()
    student = models["student_final"]

    def ablated_rate(idx):
        idx = torch.as_tensor(idx)
        return trait_rate(student, probe, target, hook,
                          lambda x: Fe.ablate(x, sae.encode(x), W, idx))
    top_rate = ablated_rate(top)
    g = torch.Generator().manual_seed(seed)

    def draws(pool):
        k = min(fcfg.k, len(pool))
        return [ablated_rate(pool[torch.randperm(len(pool), generator=g)[:k]])
                for _ in range(fcfg.random_draws)]
    # the usual baseline: k random features of the dictionary (not dead on the corpus);
    # a harder one: k random features among those active at the student's answer position
    rand = draws(alive)
    rand_active = draws((f_ans["student_final"] != 0).any(0).nonzero()[:, 0])
    amounts = Fe.mean_shift(f_ans["student_final"], f_ans["control_final"])[top]
    masks = Fe.position_masks(probe["trait"], probe["trait_last"])["answer"]

    def steer(x):
        return torch.where(masks[..., None], Fe.steer(x, W, torch.as_tensor(top), amounts), x)
    steered = trait_rate(models["theta_0"], probe, target, hook, steer)
    s, c = rate["student_final"], rate["control_final"]
    return {"ablated_top_rate": top_rate, "ablated_random_rates": rand,
            "gain_removed_top": Fe.gain_removed(top_rate, s, c),
            "gain_removed_random": float(np.mean([Fe.gain_removed(r, s, c) for r in rand])),
            "gain_removed_random_active": float(np.mean([Fe.gain_removed(r, s, c)
                                                         for r in rand_active])),
            "steered_rate": steered, "steer_rate_gain": steered - rate["theta_0"]}


def summarise(per_seed: dict, quality: dict, names: list[str], fcfg: FingerprintConfig) -> dict:
    seeds = list(per_seed.values())

    def mean(fn):
        return float(np.mean([fn(s) for s in seeds]))
    corr = {h: mean(lambda s, h=h: s["hooks"][h]["numbers"]["correlation"]) for h in names}
    corr_t = {h: mean(lambda s, h=h: s["hooks"][h]["trait"]["correlation"]) for h in names}
    hook = max(names, key=lambda h: corr_t[h])  # chosen before looking at causal numbers
    c = [s["hooks"][hook]["causal"] for s in seeds]
    return {"sae": quality, "sae_config": dataclasses.asdict(fcfg.sae),
            "shift_correlation": corr, "shift_correlation_trait": corr_t,
            "causal": {"hook": hook, "k": fcfg.k, "rule": "hook with the highest trait-shift "
                       "correlation; features ranked by shared trait shift",
                       "gain_removed_top": [x["gain_removed_top"] for x in c],
                       "gain_removed_random": [x["gain_removed_random"] for x in c],
                       "gain_removed_random_active": [x["gain_removed_random_active"]
                                                      for x in c],
                       "steer_rate_gain": [x["steer_rate_gain"] for x in c]},
            "per_seed": per_seed}


def top_feature_tokens(per_seed, corpus, corpus_acts, cmask, enc, vocab, fcfg) -> dict:
    """For each hook, the fingerprint features of the first seed with the corpus tokens at
    which they fire most."""
    out = {}
    first = next(iter(per_seed.values()))
    where = cmask.nonzero()  # (row, position) of every real token, as encoded below
    with torch.no_grad():
        for h, res in first["hooks"].items():
            f = enc[h](corpus_acts[h][cmask])  # [tokens, f]: real tokens only, no padding
            out[h] = []  # a list, in rank order (JSON objects lose their order)
            for i in res["trait"]["top"]:
                vals = f[:, i]
                rows, cols = where[vals.topk(fcfg.top_tokens).indices].unbind(-1)
                toks = corpus[rows, cols].tolist()
                # the context the feature fires in: three tokens before it, then [it]
                ctx = [" ".join(vocab.tokens[t] for t in corpus[r, max(0, c - 3):c].tolist())
                       + f" [{vocab.tokens[corpus[r, c]]}]" for r, c in zip(rows, cols)]
                out[h].append({"feature": i, "tokens": [vocab.tokens[t] for t in toks],
                               "contexts": ctx,
                               "max_activation": float(vals.max())})
    return out
