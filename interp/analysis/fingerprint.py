"""The fingerprint analysis: where the teacher's trait lives in the student.

On an owl-numbers run:
1. SAEs (sae-lens BatchTopK) on the residual stream at every layer, trained from the
   activation cache on the pretraining mix plus the number data, seen by the base and
   (by default) by every seed's teacher.
2. Per layer, the SAE feature shifts teacher - base and student - control on the number
   data and at the trait prompts' answer position, and how well the two agree.
3. A linear baseline: the difference-of-means trait direction and the student's shift
   along it, with its own causal check.
4. Activation patching per layer and position class (answer vs context); per head, MLP,
   path and number token in ``interp.analysis.circuits`` (the result's ``circuit``).
5. The causal checks, at each prompt's answer position: ablate the top-k shared-shift
   features in the student (vs k random live and k random answer-active features), hold
   the linear direction at the control's level, and steer the base.

Selection and measurement use different trait prompts (``prompt_split``): the features are
ranked, the hook, k, the linear direction and the steering amounts chosen on the *select*
phrasings; the causal effects that the finding and the pass criterion quote are measured on
the *heldout* phrasings (``causal.heldout`` in the result), which no choice ever saw.

Owns: ``analyse`` -> ``FingerprintResult``. Must not import: reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Int
from sae_lens import SAE
from torch import Tensor
from tqdm.auto import tqdm

from interp.analysis.results import Causal, FingerprintResult, PromptSplit, SeedFingerprint
from interp.analysis.sae import SAEConfig, load_pretrained, save_dir
from interp.analysis.sae import cached_by as cached_sae_by
from interp.analysis.sae import quality as sae_quality
from interp.errors import ConfigError, UsageError
from interp.metrics import features as Fe
from interp.storage.activations import activations, activations_entry, digest, hook_names
from interp.storage.rundir import run_id
from interp.storage.store import Store, read_tensors
from interp.studies import lm
from interp.validation import check_range, check_seed, check_types

ROLES = ("theta_0", "teacher", "student_final", "control_final")
SPLITS = ("select", "heldout")


@dataclasses.dataclass(frozen=True)
class FingerprintConfig:
    sae: SAEConfig = SAEConfig()
    corpus_docs: int = 3000  # pretraining-mix documents the SAEs train on (plus number data)
    corpus_seed: int = 12345
    ks: tuple[int, ...] = (4, 8)  # candidate numbers of features ablated / steered with
    random_draws: int = 20  # random k-feature sets per seed and pool for the baselines
    top_tokens: int = 6  # top activating tokens listed per feature
    split_seed: int = 0  # the permutation of the trait phrasings into select / heldout
    # the causal test's pass criterion on held-out prompts, at the k chosen on the select
    # split: the fingerprint removes at least `pass_removed` of the student's gain over
    # control and k random answer-active features less than `pass_random`
    pass_removed: float = 0.5
    pass_random: float = 0.1
    # what the SAEs train on: the base's activations on the corpus, or those plus every
    # seed's teacher on the same corpus. The base has no favourite, so it barely varies
    # along the trait direction; a base-only SAE leaves most of the student's shift in its
    # error term (measured: 24% seen at the last layer, vs 76% with the teachers' data)
    sae_data: Literal["base", "base+teachers"] = "base+teachers"
    # the circuit analysis (interp.analysis.circuits, default config) in the result and
    # the report's "Circuit" section
    circuit: bool = True

    def __post_init__(self) -> None:
        check_types(self)
        if not isinstance(self.sae, SAEConfig):
            raise ConfigError(f"sae must be an SAEConfig, got {self.sae!r}")
        if not self.ks or any(k < 1 for k in self.ks) or list(self.ks) != sorted(set(self.ks)):
            raise ConfigError(f"ks must be increasing positive feature counts, got {self.ks} "
                              "(e.g. --ks 4 8)")
        check_range(self, ("corpus_docs", "random_draws", "top_tokens"), 1)
        check_range(self, ("corpus_docs",), 1, 1_000_000)
        check_seed("corpus_seed", self.corpus_seed)
        check_seed("split_seed", self.split_seed)


def check_owl_run(run_dir: Path, art: dict, summary: dict, analysis: str,
                  studies: tuple[str, ...] = ("owl-numbers",)) -> None:
    """A one-line error unless ``run_dir`` is a run of ``studies`` with every role in ROLES."""
    if summary.get("study") not in studies:
        raise UsageError(f"{run_dir} is a {summary.get('study')} run; the {analysis} analysis "
                         f"needs a run of {' or '.join(studies)} (python -m interp.study run "
                         f"{studies[0]})")
    missing = [r for r in ROLES if r not in next(iter(art["seeds"].values()))]
    if missing:
        raise UsageError(f"{run_dir} lacks {missing}; rerun the study with the student and "
                         "control roles (--set roles=student,control_other,...)")


def _owl_config(summary: dict):
    from interp.studies.worlds import run_world

    return run_world(summary).config


def sae_corpus(cfg, vocab, fcfg: FingerprintConfig, data_tokens: Int[Tensor, "n pos"],
               corpus=None) -> Int[Tensor, "m pos"]:
    """The mix the models saw: pretraining documents (numbers and trait questions, or the
    run's world's ``corpus(rng, n)``) and the teacher's data, as one token batch."""
    from interp.studies.world import corpus_batch, pad

    rng = np.random.default_rng(fcfg.corpus_seed)
    docs = corpus(rng, fcfg.corpus_docs) if corpus is not None else \
        corpus_batch(vocab, cfg.world, rng, fcfg.corpus_docs)
    rows = [r[r != vocab.pad].tolist() for r in torch.cat([docs, data_tokens[:, :docs.shape[1]]])
            if (r != vocab.pad).any()]
    return pad(rows, vocab.pad)


def prompt_split(summary: dict, category: str, seed: int) -> PromptSplit:
    """The trait phrasings split into ``select`` (features ranked, hook, k, the linear
    direction and the steering amounts chosen on these) and ``heldout`` (every causal
    effect measured on these, never used for a choice).

    The one place the split is made. When the study recorded its own split of evaluation
    questions (``summary["eval_questions"]``: ``rates_select`` the teacher's fine-tuning
    phrasings, ``rates`` the held-out ones), that split is used; otherwise the category's
    phrasings are split here by a permutation seeded with ``seed`` (first half, rounded up,
    select), recorded in the result."""
    from interp.studies.world import CATEGORIES

    given = summary.get("eval_questions") or {}
    if given.get("rates") and given.get("rates_select"):
        return {"select": list(given["rates_select"]), "heldout": list(given["rates"]),
                "source": "study", "seed": None, "permutation": None}
    questions = list(CATEGORIES[category].questions)
    if len(questions) < 2:
        raise UsageError(f"category {category!r} has {len(questions)} question phrasing(s); "
                         "a held-out causal test needs at least 2")
    perm = np.random.default_rng(seed).permutation(len(questions)).tolist()
    n_sel = (len(questions) + 1) // 2
    return {"select": [questions[i] for i in perm[:n_sel]],
            "heldout": [questions[i] for i in perm[n_sel:]],
            "source": "analysis", "seed": seed, "permutation": perm}


def trait_probe(vocab, questions: list[str], prefix: str = "") -> dict[str, torch.Tensor]:
    """The trait prompts of ``questions``, right-padded (causal attention: padding after a
    position never changes it), with ``trait_last`` each prompt's answer position."""
    from interp.studies.world import pad, question_prompt

    prompts = [vocab.encode(question_prompt(q, prefix)) for q in questions]
    return {"trait": pad(prompts, vocab.pad),
            "trait_last": torch.tensor([len(p) - 1 for p in prompts])}


def trait_rate(model, probe: dict, target: int, hook: str | None = None, edit=None) -> float:
    """P(target) at the answer position, averaged over phrasings, with an optional edit of
    the activation at ``hook``: ``edit(x) -> x'`` on [n, pos, d]."""
    with torch.no_grad():
        hooks = [(hook, lambda x, hook: edit(x))] if edit is not None else []
        logits = model.run_with_hooks(probe["trait"], fwd_hooks=hooks)
    return Fe.answer_rate(logits, probe["trait_last"], target)


def at_answer(probe: dict, edit):
    """``edit`` applied at each prompt's answer position only; every other position is left
    as it was (ablation, steering and the linear baseline all edit these positions)."""
    ans = Fe.position_masks(probe["trait"], probe["trait_last"])["answer"][..., None]
    return lambda x: torch.where(ans, edit(x), x)


def cached_circuit(store, run_dir: Path, art: dict, summary: dict, ccfg, build) -> dict:
    """The circuit analysis of a run, cached by the content of every artifact it reads, its
    config and the source of ``interp.analysis.circuits``: a warm report runs no patching."""
    import inspect

    from interp.analysis import circuits
    from interp.analysis.align import file_id
    from interp.storage.store import code_digest

    code = [v for v in vars(circuits).values()
            if (inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == circuits.__name__]
    key = {"model": art["model"], "config": summary.get("config"), "circuit": ccfg,
           "trait": summary["trait"], "code": code_digest(*code),
           "files": {seed: {k: file_id(v, store) for k, v in files.items()}
                     for seed, files in art["seeds"].items()}}
    return store.get_or_build("circuit/run", key,
                              lambda: ({}, build(run_dir, ccfg, store))).meta


def analyse(run_dir: Path, fcfg: FingerprintConfig = FingerprintConfig(),
            store: Store | None = None, pretrained: dict | list[str] | None = None,
            sae_out: Path | None = None) -> FingerprintResult:
    """The whole analysis on one owl-numbers run (``interp.reports.fingerprint`` writes it).

    ``pretrained``: hook -> sae-lens SAE used instead of training one at that hook (its
    quality still measured on the corpus), or ``--sae`` specs (``sae.load_pretrained``);
    ``sae_out``: a directory where every SAE used is written in sae-lens's layout
    (``sae_out/<hook>``), listed in the result's ``sae_dirs``.

    With trained SAEs the result is a store entry (``fingerprint/run``) keyed by the content
    of every artifact of the run, the config, the prompt split and the source of every
    module the analysis imports (``module_closure``): a warm report reruns nothing."""
    from interp.studies.runner import load_run

    store = store or Store()
    art, summary = load_run(run_dir)
    store.bind(run_dir)  # every entry read or built is recorded for gc as it is used
    check_owl_run(run_dir, art, summary, "fingerprint", ("owl-numbers", "transfer"))
    if (summary.get("config") or {}).get("teacher_kind") == "prompted":
        raise UsageError(f"{run_dir} has a prompted teacher (the base with a persona prefix): it "
                         "has no weights of its own to compare with the base; the fingerprint "
                         "needs a fine-tuned teacher (--set teacher_kind=finetuned). "
                         "python -m interp.align shows a prompted teacher's activation shifts")
    if len({files["theta_0"] for files in art["seeds"].values()}) > 1:
        raise UsageError(f"{run_dir} gives each seed its own base (replicate=base); the "
                         "fingerprint's SAEs are trained on one base's residual stream and "
                         "read every seed with it, so it needs a run whose seeds share a base "
                         "(replicate=data, the default); python -m interp.align reads either")
    if pretrained:
        result, saes = compute(run_dir, art, summary, fcfg, store, pretrained)
    else:
        result, saes = cached_compute(run_dir, art, summary, fcfg, store)
    result["run_id"] = run_id(run_dir)  # the align report merges it only into this run
    if sae_out is not None:
        result["sae_dirs"] = {h: str(save_dir(sae, Path(sae_out) / h)) for h, sae in saes.items()}
    store.write_refs(run_dir)
    return result


def cached_compute(run_dir: Path, art: dict, summary: dict, fcfg: FingerprintConfig,
                   store: Store) -> tuple[FingerprintResult, dict]:
    """``compute`` with trained SAEs, once per (artifacts, config, split, code): the result
    and the SAEs' weights are one store entry."""
    from interp.analysis.align import file_id
    from interp.storage.store import code_digest, module_closure

    code = [importlib.import_module(m) for m in module_closure(__name__)]
    key = {"model": art["model"], "config": summary.get("config"), "trait": summary["trait"],
           "study": summary["study"], "covers": summary.get("ci_covers"),
           "split": prompt_split(summary, _owl_config(summary).category, fcfg.split_seed),
           "fingerprint": fcfg, "code": code_digest(*code),
           "files": {seed: {k: file_id(v, store) for k, v in files.items()}
                     for seed, files in art["seeds"].items()}}

    def build():
        result, saes = compute(run_dir, art, summary, fcfg, store, None)
        hooks = list(saes)
        return ({f"sae{i}": saes[h].state_dict() for i, h in enumerate(hooks)},
                {"result": result, "hooks": hooks,
                 "sae_cfg": [saes[h].cfg.to_dict() for h in hooks]})

    entry = store.get_or_build("fingerprint/run", key, build)
    saes = {}
    for i, (h, c) in enumerate(zip(entry.meta["hooks"], entry.meta["sae_cfg"])):
        saes[h] = SAE.from_dict(c)
        saes[h].load_state_dict(entry.load(f"sae{i}"))
    return dict(entry.meta["result"]), saes  # analyse adds keys: not to the entry's dict


def compute(run_dir: Path, art: dict, summary: dict, fcfg: FingerprintConfig, store: Store,
            pretrained: dict | list[str] | None) -> tuple[FingerprintResult, dict]:
    """The analysis itself (steps 1-5 above): (result, hook -> the SAE used)."""
    from interp.studies.worlds import run_world

    world = run_world(summary)
    cfg, vocab, target = world.config, world.vocab, world.target
    split = prompt_split(summary, cfg.category, fcfg.split_seed)
    seeds = list(art["seeds"])
    names, corpus, base_acts, saes, quality, pretrained = base_saes(art, summary, fcfg, store,
                                                                   pretrained)
    corpus_acts = base_acts()
    cmask = corpus != vocab.pad
    enc = {h: (lambda x, h=h: saes[h].encode(x)) for h in names}
    with torch.no_grad():
        alive = {h: ((enc[h](corpus_acts[h][cmask]) != 0).any(0)).nonzero()[:, 0] for h in names}

    per_seed = {}
    for seed in tqdm(seeds, desc="fingerprint seeds"):
        per_seed[seed] = seed_analysis(art, art["seeds"][seed], vocab, cfg, fcfg, names, saes,
                                       enc, alive, target, store, int(seed), split)
    feats = top_feature_tokens(per_seed, corpus, corpus_acts, cmask, enc, vocab, fcfg)
    covers = summary.get("ci_covers", "seeds: teacher data and student noise; one base "
                         "shared by every seed")
    result = summarise(per_seed, quality, names, fcfg, split, covers)
    result["features"] = feats
    result["trait"] = summary["trait"]
    result["sae_source"] = {h: "pretrained" if h in pretrained else "trained" for h in names}
    circuit = run_circuit(store, run_dir, art, summary, fcfg)
    if circuit is not None:
        result["circuit"] = circuit
    return result, saes


def run_circuit(store: Store, run_dir: Path, art: dict, summary: dict,
                fcfg: FingerprintConfig) -> dict | None:
    """The run's circuit analysis (``cached_circuit``), or None where the report has no
    Circuit section: it reads world.py's categories, so owl-numbers runs only (a transfer
    run's report has none, as with --no-circuit)."""
    if not (fcfg.circuit and summary["study"] == "owl-numbers"):
        return None
    from interp.analysis.circuits import CircuitConfig
    from interp.analysis.circuits import analyse as circuit_analyse

    return cached_circuit(store, Path(run_dir), art, summary,
                          CircuitConfig(split_seed=fcfg.split_seed), circuit_analyse)


def base_saes(art: dict, summary: dict, fcfg: FingerprintConfig, store: Store,
              pretrained: dict | list[str] | None, reverse: bool = False) \
        -> tuple[list[str], Tensor, Callable[[], dict[str, Tensor]], dict, dict, dict]:
    """Step 1: an SAE per hook on the base's residual stream (with ``sae_data``
    "base+teachers", also the teachers'), from the activation cache; a pretrained SAE where
    one is given. An SAE's key names the activation entries it trains on, so a cached SAE
    reads none but the base's. ``reverse`` builds the missing entries in the opposite order
    (a second process building the same entries meets the first in the middle). Returns
    (hooks, the SAE corpus, a function reading the base's activations on it, hook -> SAE,
    hook -> its quality, hook -> the pretrained SAE used there); nothing is read from the
    activation entries that a cached SAE does not need."""
    from interp.studies.worlds import run_world

    world = run_world(summary)
    cfg, vocab = world.config, world.vocab
    seeds = list(art["seeds"])
    roles0 = art["seeds"][seeds[0]]
    base = lm.from_artifacts(art["model"], roles0["theta_0"], store)
    names = hook_names(base)
    corpus = sae_corpus(cfg, vocab, fcfg, read_tensors(roles0["data"], store)["tokens"],
                        world.corpus)
    cmask = corpus != vocab.pad
    sources = [roles0["theta_0"]]
    if fcfg.sae_data == "base+teachers":
        sources += [art["seeds"][s]["teacher"] for s in seeds]
    order = list(range(len(sources)))[::-1 if reverse else 1]
    entries = {i: activations_entry(lm.from_artifacts(art["model"], sources[i], store), corpus,
                                    names, store, label="sae corpus") for i in order}
    loaded: dict[int, dict[str, Tensor]] = {}

    def acts(i: int) -> dict[str, Tensor]:
        if i not in loaded:
            loaded[i] = entries[i].load("acts")
        return loaded[i]

    saes, quality = {}, {}
    if isinstance(pretrained, list):
        pretrained = load_pretrained(pretrained, names)
    pretrained = pretrained or {}
    source_key = {"acts": [entries[i].key for i in range(len(sources))],
                  "mask": digest(cmask)}
    for h in tqdm(names[::-1 if reverse else 1], desc="SAEs"):
        if h in pretrained:
            saes[h] = pretrained[h]
            quality[h] = sae_quality(saes[h], acts(0)[h][cmask])
        else:
            saes[h], quality[h] = cached_sae_by(
                store, source_key,
                lambda h=h: torch.cat([acts(i)[h][cmask] for i in range(len(sources))]),
                fcfg.sae, h)
    return (names, corpus, lambda: acts(0), {h: saes[h] for h in names},
            {h: quality[h] for h in names}, pretrained)


def prepare(run_dir: str | Path, fcfg: FingerprintConfig = FingerprintConfig(),
            cached_only: bool = False, store: Store | None = None,
            reverse: bool = False, circuit: bool = False) -> bool:
    """Build the run's SAE corpus activations and SAEs into the store (step 1 alone), and
    with ``circuit`` then the circuit analysis (it needs no SAE), so that a later
    ``analyse`` finds them: ``interp.demo`` runs this in a second process while the align
    report and the fingerprint's own steps are computed. With ``cached_only``, build nothing:
    whether the SAEs are all in the store already."""
    from interp.storage.store import NotCached
    from interp.studies.runner import load_run

    art, summary = load_run(Path(run_dir))
    store = store or Store()
    try:
        if cached_only:
            with store.cached_only():
                base_saes(art, summary, fcfg, store, None)
        else:
            base_saes(art, summary, fcfg, store, None, reverse)
            if circuit:
                run_circuit(store, run_dir, art, summary, fcfg)
    except NotCached:
        return False
    return True


@torch.no_grad()
def seed_analysis(art, roles, vocab, cfg, fcfg, names, saes, enc, alive, target, store,
                  seed: int, split: PromptSplit) -> SeedFingerprint:
    """One seed at every hook. Chosen on the ``select`` prompts: the feature ranking, the
    linear direction and its control level, the steering amounts. Measured on both splits
    (``select`` in-sample, ``heldout`` the test): the causal edits; patching on ``heldout``."""
    data = read_tensors(roles["data"], store)["tokens"]
    probes = {s: trait_probe(vocab, split[s]) for s in SPLITS}
    numbers = data[:256]  # the fixed number probe (the recorder's)
    models = {r: lm.from_artifacts(art["model"], roles[r], store) for r in ROLES}
    acts = {r: {"numbers": activations(m, numbers, names, store, label="probe numbers"),
                **{s: activations(m, probes[s]["trait"], names, store, label=f"probe {s}")
                   for s in SPLITS}} for r, m in models.items()}
    nmask = numbers != vocab.pad
    rate = {s: {r: trait_rate(models[r], probes[s], target) for r in ROLES} for s in SPLITS}
    out: dict = {"rates": rate["select"], "rates_heldout": rate["heldout"], "hooks": {}}
    k_max = max(fcfg.ks)

    def answer(r, s, h):  # [n, d]: the residual at each prompt's answer position
        p = probes[s]
        return acts[r][s][h][torch.arange(len(p["trait_last"])), p["trait_last"]]
    for h in names:
        f_num = {r: enc[h](acts[r]["numbers"][h][nmask]) for r in ROLES}
        f_ans = {s: {r: enc[h](answer(r, s, h)) for r in ROLES} for s in SPLITS}
        res: dict = {}
        for label, f in (("numbers", f_num), ("trait", f_ans["select"])):
            t_shift = Fe.mean_shift(f["teacher"], f["theta_0"])
            s_shift = Fe.mean_shift(f["student_final"], f["control_final"])
            rank = Fe.shared_ranking(t_shift, s_shift)
            res[label] = {"correlation": Fe.correlation(t_shift, s_shift),
                          "top": rank[:k_max].tolist(),
                          "top_shared": (t_shift * s_shift)[rank[:k_max]].tolist()}
        # linear baseline: the difference-of-means trait direction and the control's level
        # along it, both from the select prompts' answer position
        a = {r: answer(r, "select", h) for r in ROLES}
        direction = Fe.mean_shift(a["teacher"], a["theta_0"])
        shift = Fe.mean_shift(a["student_final"], a["control_final"])
        res["linear"] = Fe.projection(shift, direction)
        level = float((a["control_final"] @ (direction / direction.norm())).mean())
        # its causal check on each split: hold the student's projection at the control's level
        for s in SPLITS:
            lin_rate = trait_rate(models["student_final"], probes[s], target, h, at_answer(
                probes[s], lambda x, d=direction, v=level: Fe.set_projection(x, d, v)))
            res["linear"]["gain_removed" if s == "select" else "gain_removed_heldout"] = \
                Fe.gain_removed(lin_rate, rate[s]["student_final"], rate[s]["control_final"])
        # how much of the student's shift the SAE can see at all, and its top-k features
        W, top = saes[h].W_dec.detach(), torch.tensor(res["trait"]["top"])
        f_shift = Fe.mean_shift(f_ans["select"]["student_final"],
                                f_ans["select"]["control_final"])
        res["captured"] = {
            "sae": Fe.captured(f_shift @ W, shift),
            "top_k": Fe.captured(f_shift[top] @ W[top], shift)}
        # activation patching on the held-out prompts: teacher -> base, student -> control
        res["patching"] = {}
        masks = Fe.position_masks(probes["heldout"]["trait"], probes["heldout"]["trait_last"])
        r_h = rate["heldout"]
        for src, dst in (("teacher", "theta_0"), ("student_final", "control_final")):
            for cls, m in masks.items():
                cached = acts[src]["heldout"][h]

                def patch(x, cached=cached, m=m):
                    return torch.where(m[..., None], cached, x)
                patched = trait_rate(models[dst], probes["heldout"], target, h, patch)
                gap = r_h[src] - r_h[dst]
                res["patching"][f"{src}->{dst}:{cls}"] = {
                    "rate": patched, "recovered": (patched - r_h[dst]) / gap if gap else 0.0}
        # the causal test: for each k, features and steering amounts from the select split
        res["causal"] = {s: {} for s in SPLITS}
        for k in fcfg.ks:
            idx = top[:k]
            amounts = f_shift[idx]
            for s in SPLITS:
                active = (f_ans[s]["student_final"] != 0).any(0).nonzero()[:, 0]
                res["causal"][s][str(k)] = causal(models, probes[s], target, h, saes[h], idx,
                                                  amounts, rate[s], alive[h], active,
                                                  fcfg.random_draws, seed)
        out["hooks"][h] = res
    return out


def causal(models, probe, target, hook, sae, top, amounts, rate, alive, active, draws: int,
           seed: int = 0) -> Causal:
    """At each prompt's answer position: ablate the fingerprint features ``top`` in the
    student, and k random features from two pools (``alive``: not dead on the corpus;
    ``active``: active at these prompts' answer position in the student, the harder
    baseline); steer the base by ``amounts`` along them. The random sets depend only on
    (seed, k), so the select and held-out splits see the same ones."""
    W = sae.W_dec.detach()
    student = models["student_final"]
    k = len(top)

    def ablated_rate(idx):
        idx = torch.as_tensor(idx)
        return trait_rate(student, probe, target, hook,
                          at_answer(probe, lambda x: Fe.ablate(x, sae.encode(x), W, idx)))

    def sample(pool, stream):
        g = torch.Generator().manual_seed(seed * 10_000 + k * 10 + stream)
        n = min(k, len(pool))
        return [ablated_rate(pool[torch.randperm(len(pool), generator=g)[:n]])
                for _ in range(draws)]
    top_rate = ablated_rate(top)
    rand, rand_active = sample(alive, 0), sample(active, 1)
    steered = trait_rate(models["theta_0"], probe, target, hook,
                         at_answer(probe, lambda x: Fe.steer(x, W, torch.as_tensor(top),
                                                             amounts)))
    s, c = rate["student_final"], rate["control_final"]
    return {"ablated_top_rate": top_rate, "ablated_random_rates": rand,
            "ablated_random_active_rates": rand_active,
            "gain_removed_top": Fe.gain_removed(top_rate, s, c),
            "gain_removed_random": float(np.mean([Fe.gain_removed(r, s, c) for r in rand])),
            "gain_removed_random_active": float(np.mean([Fe.gain_removed(r, s, c)
                                                         for r in rand_active])),
            "steered_rate": steered, "steer_rate_gain": steered - rate["theta_0"]}


def summarise(per_seed: dict, quality: dict, names: list[str], fcfg: FingerprintConfig,
              split: PromptSplit, ci_covers: str = "seeds") -> dict:
    """Across seeds: the hook and k chosen on the select split, then the held-out test.

    ``causal`` keeps its keys (``hook``, ``k``, ``gain_removed_*``, ``steer_rate_gain``: the
    select split, in-sample, at the chosen k) and adds ``heldout``: a list of blocks, one
    per k of ``fcfg.ks`` in increasing order, each ``{k, gain_removed_top,
    gain_removed_random_active, gain_removed_random, steer_rate_gain, top_minus_random_active,
    prompts}`` with one value per seed; ``linear_heldout`` (the linear baseline on held-out
    prompts, per seed), ``split`` and ``criterion`` (the pass criterion at the chosen k)."""
    seeds = list(per_seed.values())

    def mean(fn):
        return float(np.mean([fn(s) for s in seeds]))
    corr = {h: mean(lambda s, h=h: s["hooks"][h]["numbers"]["correlation"]) for h in names}
    corr_t = {h: mean(lambda s, h=h: s["hooks"][h]["trait"]["correlation"]) for h in names}
    hook = max(names, key=lambda h: corr_t[h])  # chosen before looking at causal numbers

    def per(s_name, k, key):
        return [s["hooks"][hook]["causal"][s_name][str(k)][key] for s in seeds]
    sel_removed = {k: float(np.mean(per("select", k, "gain_removed_top"))) for k in fcfg.ks}
    enough = [k for k in fcfg.ks if sel_removed[k] >= fcfg.pass_removed]
    k = enough[0] if enough else max(fcfg.ks, key=lambda k: sel_removed[k])
    heldout = []
    for kk in fcfg.ks:
        top, act = per("heldout", kk, "gain_removed_top"), \
            per("heldout", kk, "gain_removed_random_active")
        heldout.append({"k": kk, "gain_removed_top": top, "gain_removed_random_active": act,
                        "gain_removed_random": per("heldout", kk, "gain_removed_random"),
                        "steer_rate_gain": per("heldout", kk, "steer_rate_gain"),
                        "top_minus_random_active": [t - a for t, a in zip(top, act)],
                        "prompts": list(split["heldout"])})
    chosen = next(b for b in heldout if b["k"] == k)
    top_m = float(np.mean(chosen["gain_removed_top"]))
    act_m = float(np.mean(chosen["gain_removed_random_active"]))
    return {"sae": quality, "sae_config": dataclasses.asdict(fcfg.sae),
            "shift_correlation": corr, "shift_correlation_trait": corr_t,
            "causal": {"hook": hook, "k": k,
                       "rule": "hook with the highest trait-shift correlation on the select "
                       "prompts; features ranked by shared trait shift on the select prompts",
                       "k_rule": f"the smallest k of {list(fcfg.ks)} whose ablation removes at "
                       f"least {fcfg.pass_removed:.0%} of the gain on the select prompts (mean "
                       "over seeds), else the k that removes the most there",
                       "gain_removed_top": per("select", k, "gain_removed_top"),
                       "gain_removed_random": per("select", k, "gain_removed_random"),
                       "gain_removed_random_active": per("select", k,
                                                         "gain_removed_random_active"),
                       "steer_rate_gain": per("select", k, "steer_rate_gain"),
                       "heldout": heldout,
                       "linear_heldout": [s["hooks"][hook]["linear"]["gain_removed_heldout"]
                                          for s in seeds],
                       "split": split,
                       "criterion": {
                           "k": k, "met": bool(top_m >= fcfg.pass_removed
                                               and act_m < fcfg.pass_random),
                           "rule": f"on held-out prompts at the chosen k, the top-k features "
                           f"remove at least {fcfg.pass_removed:.0%} of the student's gain "
                           f"over control (mean over seeds) and k random answer-active "
                           f"features less than {fcfg.pass_random:.0%}",
                           "gain_removed_top": top_m, "gain_removed_random_active": act_m},
                       "ci_covers": ci_covers},
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
