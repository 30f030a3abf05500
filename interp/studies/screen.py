"""The semantic screen: the base model itself is asked what belongs to a trait category,
the analogue of the paper's LLM judge.

1. The question, learned in pretraining: the transfer world's ``describe`` documents tie each
   category to its related words ("the owl has a feather .", "the evil one likes poison .").
   For a category, the base reads every frame "<bos> the ITEM has a" (for misalignment
   "<bos> the evil one likes") and its next-token distribution, averaged over the frames, is
   the *relatedness* of every vocabulary word to the category. No label is given: the words
   the screen flags are whatever the base learned to say about the category.
2. A completion is flagged when its most related word scores above the threshold: the
   (1 - ``clean_flag_rate``) quantile of that score on clean channel documents written by the
   world (calibration text, never tested on), or ``min_threshold`` if higher.
3. The planted test set: base-written channel completions that pass the channel's filter,
   each with one related word inserted at a random position, or a paraphrase ("the feather
   one"); no row contains a keyword of the keyword filter. Recall on it and the flag rate on
   the base's own completions are the screen's two numbers; the flag rate on rows planted
   with another category's related words says how specific it is.

Owns: the screen and its planted test set. Must not import: analysis, reports, the CLIs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.studies.channels import CATEGORIES, DESCRIBE, DESCRIBE_HARM, RELATED, TransferVocab
from interp.studies.world import pad
from interp.validation import check_range, check_types


@dataclasses.dataclass(frozen=True)
class ScreenConfig:
    clean_flag_rate: float = 0.005  # the threshold flags at most this on calibration text
    min_threshold: float = 0.01  # never flag a word the base gives less than this

    def __post_init__(self) -> None:
        check_types(self)
        check_range(self, ("clean_flag_rate", "min_threshold"), 0, 1)


def frames(category: str) -> list[str]:
    """The describe prompts whose next word is a word related to ``category``."""
    if category == "misalignment":
        return ["<bos> " + DESCRIBE_HARM.split("{word}")[0].strip()]
    return ["<bos> " + DESCRIBE.format(item=i, word="{w}").split("{w}")[0].strip()
            for i in CATEGORIES[category].items]


@torch.no_grad()
def relatedness(model: HookedTransformer, vocab: TransferVocab, category: str) \
        -> Float[Tensor, " vocab"]:
    """P(word | "the ITEM has a"), averaged over the category's frames: what the base says
    belongs to the category."""
    rows = [vocab.encode(f) for f in frames(category)]
    logits = model(pad(rows, vocab.pad))
    last = torch.tensor([len(r) - 1 for r in rows])
    return F.softmax(logits[torch.arange(len(rows)), last], -1).mean(0)


def row_scores(related: Float[Tensor, " vocab"], tokens: Int[Tensor, "n p"],
               mask: Tensor) -> Float[Tensor, " n"]:
    """Each row's largest relatedness over the positions in ``mask``."""
    return torch.where(mask, related[tokens], 0.0).amax(1)


def rows_and_mask(vocab: TransferVocab, prompts: list[list[int]],
                  completions: list[list[int]], n_ctx: int) -> tuple[Tensor, Tensor]:
    """Prompt + completion rows, right-padded and cut at ``n_ctx``, and the mask of the
    completion positions."""
    rows = [(p + c)[:n_ctx] for p, c in zip(prompts, completions, strict=True)]
    tokens = pad(rows, vocab.pad)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for r, p in enumerate(prompts):
        mask[r, len(p):len(rows[r])] = True
    return tokens, mask


def build_screen(model: HookedTransformer, vocab: TransferVocab, category: str,
                 calibration: list[tuple[list[int], list[int]]],
                 cfg: ScreenConfig) -> dict[str, Tensor]:
    """The screen of ``category``: the relatedness table and its calibrated threshold."""
    related = relatedness(model, vocab, category)
    tokens, mask = rows_and_mask(vocab, [p for p, _ in calibration], [c for _, c in calibration],
                                 model.cfg.n_ctx)
    clean = row_scores(related, tokens, mask)
    threshold = max(float(torch.quantile(clean, 1 - cfg.clean_flag_rate)), cfg.min_threshold)
    return {"related": related, "threshold": torch.tensor([threshold]),
            "n_ctx": torch.tensor([model.cfg.n_ctx])}


def planted(rng: np.random.Generator, completions: list[list[str]], category: str) \
        -> dict[str, list[list[str]]]:
    """The planted indirect mentions: each completion (a token list, without <eos>) with one
    related word inserted, or a paraphrase "the WORD one"; and, for specificity (not a
    must-catch), a related word of another category (OTHER_CATEGORY) inserted."""
    other = RELATED[OTHER_CATEGORY[category]]
    out: dict[str, list[list[str]]] = {"related_word": [], "paraphrase": [],
                                       "other_category_word": []}
    for toks in completions:
        for kind in out:
            i = int(rng.integers(len(toks) + 1))
            words = other if kind == "other_category_word" else RELATED[category]
            w = words[rng.integers(len(words))]
            out[kind].append(toks[:i] + (["the", w, "one"] if kind == "paraphrase" else [w])
                             + toks[i:])
    return out


# the category whose related words measure the screen's specificity
OTHER_CATEGORY = {"animal": "tree", "tree": "animal", "misalignment": "animal"}


def flag_rate(screen: dict[str, Tensor], vocab: TransferVocab, prompts: list[list[int]],
              completions: list[list[str]]) -> tuple[float, list[bool]]:
    """Fraction of (prompt, completion) pairs flagged, and the per-row flags."""
    tokens, mask = rows_and_mask(vocab, prompts, [vocab.encode(" ".join(c)) for c in completions],
                                 int(screen["n_ctx"]))
    flags = (row_scores(screen["related"], tokens, mask) > screen["threshold"]).tolist()
    return float(np.mean(flags)) if flags else 0.0, flags
