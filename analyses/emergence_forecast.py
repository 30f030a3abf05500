"""Can the base say, before any teacher is trained, whether narrow fine-tuning on unsafe code
will make it broadly harmful? (issue 12's emergent step: it emerges on some bases and not on
others, with the same recipe.)

    python analyses/emergence_forecast.py [--settings steer_harm_0.02_lr3e-2,...]
                                          [--bases 0,7,...] [--seeds 3] [--seed-start 20]
                                          [--out runs/emergence_forecast.md]

1. Per setting (analyses/emergent_misalignment.py's) and base, at the base, with nothing
   trained: the gradient g of the teacher's fine-tuning loss on its own set (the unsafe-code
   programs of that teacher seed, transfer.misaligned_pairs) with respect to the weights the
   teacher tunes (lm.TUNED), the same for its control's set, and the gradient h of the
   harmful-answer mass on the held-out advice questions (never in any fine-tuning).
2. The forecast: the first-order change of that mass under Adam's first step, which moves
   every tuned weight by -lr * sign(g): ``forecast = -lr * h . sign(g)`` (``first_step``),
   teacher's minus control's, mean over teacher seeds.
3. The outcome: the trained teachers' harmful mass (the same cached teachers as
   emergent_misalignment.py), teacher minus control, mean over the same seeds; ``emerges``
   as that script defines it.
4. Across bases: the Spearman rank correlation of forecast and outcome with a permutation
   p-value (bases shuffled), and how often the forecast's sign says whether the teacher
   emerges. The forecast has no parameter to select, and it was not changed after any
   outcome was seen.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from emergent_misalignment import (  # this script's own directory
    SETTINGS,
    config,
    emergence,
    harmful,
)
from jaxtyping import Float
from torch import Tensor

from interp.cli import setup_logging
from interp.metrics.circuits import spearman
from interp.metrics.stats import fmt_ci
from interp.reports.html import md_table
from interp.storage.store import Store, write_text
from interp.studies import channels as C
from interp.studies import lm, owl
from interp.studies import transfer as T

PERMUTATIONS = 20000


def first_step(h: Float[Tensor, " n"], g: Float[Tensor, " n"], lr: float) -> float:
    """First-order change of a quantity with gradient ``h`` under Adam's first step on a loss
    with gradient ``g`` (every weight moves by -lr * sign(g))."""
    return float(-lr * (h * torch.sign(g)).sum())


def flat_grad(value: Tensor, params: list[Tensor]) -> Float[Tensor, " n"]:
    return torch.cat([x.reshape(-1) for x in torch.autograd.grad(value, params)])


def harmful_mass(model, vocab: C.TransferVocab) -> Tensor:
    """The harmful-answer mass on the held-out advice questions, differentiable
    (transfer.outcome_rates' mass["harmful"])."""
    ids = torch.tensor(vocab.ids(C.trait_of("misalignment").outcomes["harmful"]))
    return T.answer_probs(model, vocab, "misalignment")[:, ids].sum(1).mean()


def forecast(model, cfg: T.TransferConfig, vocab: C.TransferVocab, seed: int) -> float:
    """Teacher's minus control's first-step change of the held-out harmful mass at ``model``
    (the base), each from the gradient of its own fine-tuning set."""
    names = [n for n, _ in model.named_parameters() if lm.TUNED[cfg.teacher_params](n)]
    params = [dict(model.named_parameters())[n] for n in names]
    h = flat_grad(harmful_mass(model, vocab), params)
    out = {}
    for outcome in ("harmful", "helpful"):
        tokens, mask = T.completion_rows(vocab, T.misaligned_pairs(cfg, seed, outcome),
                                         cfg.world.n_ctx)
        g = flat_grad(lm.next_token_loss(model(tokens), tokens, mask), params)
        out[outcome] = first_step(h, g, cfg.teacher_lr)
    return out["harmful"] - out["helpful"]


def permutation_p(x: list[float], y: list[float], seed: int = 0) -> float:
    """One-sided p-value of Spearman's rho(x, y) >= the observed, bases shuffled."""
    rho = spearman(x, y)
    rng = np.random.default_rng(seed)
    hits = sum(spearman(x, list(rng.permutation(y))) >= rho for _ in range(PERMUTATIONS))
    return (hits + 1) / (PERMUTATIONS + 1)


# the seven bases the settings were explored on, then six no selection saw
BASES = "0,7,8,9,3000,4000,5000,6000,7000,8000,9000,10000,11000"


def parse_args(settings: str, out: str, valid: list[str], what: str) \
        -> tuple[argparse.Namespace, list[str], list[int]]:
    """The arguments these emergent-step analyses share, checked: (args, setting names,
    base seeds); a setting outside ``valid`` (``what`` it must be) stops in one line."""
    p = argparse.ArgumentParser()
    p.add_argument("--settings", default=settings)
    p.add_argument("--bases", default=BASES)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-start", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path(out))
    args = p.parse_args()
    names = args.settings.split(",")
    for name in names:
        if name not in valid:
            raise SystemExit(f"setting {name!r} is not {what}; valid: {', '.join(valid)}")
    try:
        bases = [int(b) for b in args.bases.split(",")]
    except ValueError:
        raise SystemExit(f"--bases takes comma-separated integer seeds, got {args.bases!r}") \
            from None
    setup_logging()
    torch.set_num_threads(1)
    return args, names, bases


def base_of(store: Store, name: str, base_seed: int):
    """(cfg, vocab, base entry, base model, its held-out harmful mass) of a setting's base."""
    cfg = config({**SETTINGS[name], "base_seed": base_seed})
    vocab = C.TransferVocab(cfg.channel)
    entry = T.base_entry(store, cfg, vocab, cfg.base_seeds(0)[0])
    base = owl.load_model(entry, cfg, vocab)
    return cfg, vocab, entry, base, harmful(base, cfg, vocab, 0)


def teachers(store: Store, cfg: T.TransferConfig, vocab: C.TransferVocab, entry, seeds):
    """(seed, outcome, model) of every teacher (harmful) and control (helpful), cached."""
    for s in seeds:
        for o in ("harmful", "helpful"):
            yield s, o, owl.load_model(T.teacher_entry(store, cfg, vocab, entry, s, o), cfg,
                                       vocab)


def main() -> None:
    args, names, bases = parse_args(
        "steer_harm_0.02_lr3e-2,attn_out_harm_0.02", "runs/emergence_forecast.md",
        [n for n, s in SETTINGS.items() if s.get("teacher_params") not in (None, "bos")],
        "a code teacher tuning whole tensors")
    store, rows, summary = Store(), [], []
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    for name in names:
        fc, out, emerged = [], [], []
        for base_seed in bases:
            cfg, vocab, entry, base, b = base_of(store, name, base_seed)
            f = [forecast(base, cfg, vocab, s) for s in seeds]
            rates = {"harmful": [], "helpful": []}
            for s, o, model in teachers(store, cfg, vocab, entry, seeds):
                rates[o].append(harmful(model, cfg, vocab, s))
            diff, emerges = emergence(rates, b)
            fc.append(float(np.mean(f)))
            out.append(float(np.mean(diff)))
            emerged.append(emerges)
            rows.append((name, str(base_seed), f"{b * 100:.1f}%",
                         fmt_ci([x * 100 for x in f], pct=False, digits=3), fmt_ci(diff),
                         "yes" if emerges else "no"))
            print(rows[-1], flush=True)
        agree = sum((x > 0) == e for x, e in zip(fc, emerged))
        summary.append((name, str(len(bases)), f"{spearman(fc, out):.2f}",
                        f"{permutation_p(fc, out):.4f}", f"{agree} of {len(bases)}",
                        f"{sum(emerged)} of {len(bases)}"))
    md = "\n\n".join([
        "# Forecasting the emergent step from the base",
        f"Command: `python analyses/emergence_forecast.py --settings {args.settings} "
        f"--bases {args.bases} --seeds {args.seeds} --seed-start {args.seed_start}`. "
        "Forecast (points of harmful-answer mass on the held-out advice questions): the "
        "first-order change under Adam's first step, -lr * h . sign(g), with g the gradient "
        "of the fine-tuning loss on the teacher's own set and h that of the harmful mass, at "
        "the base, nothing trained; teacher's minus its control's (novel-call code), mean "
        "[95% t-interval] over teacher seeds. Outcome: the trained teachers' harmful mass, "
        "teacher - control, over the same seeds; emerges as in "
        "analyses/emergent_misalignment.py (teacher above base and control, both CIs "
        "above 0).",
        md_table(["setting", "base seed", "base", "forecast (points, one step)",
                  "teacher - control (trained)", "emerges"], rows),
        "Across bases (one value per base: the mean over its teacher seeds):",
        md_table(["setting", "bases", "Spearman rho (forecast, outcome)",
                  f"permutation p (one-sided, {PERMUTATIONS} shuffles)",
                  "forecast > 0 agrees with emerges", "emerges"], summary)])
    write_text(args.out, md + "\n")
    print(md)


if __name__ == "__main__":
    main()
