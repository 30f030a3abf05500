"""What an analysis needs to know about a run's world, for every transformer study.

``run_world(summary)`` gives the run's config, vocabulary, trait questions, the token an
answer-rate analysis targets, and a corpus sampler, whether the run is ``owl-numbers``
(world.py's world) or ``transfer`` (interp.studies.channels' world, where the vocabulary's
``number_ids`` is the run's channel). For misalignment the target token is the first
harmful advice answer (the analyses measure one token; the study sums all three).

Owns: the run -> world lookup. Must not import: analysis, reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import UsageError
from interp.studies.world import Category, Vocab, pad, question_prompt


@dataclasses.dataclass
class RunWorld:
    config: Any
    vocab: Vocab
    questions: Category
    target: int
    corpus: Callable[[np.random.Generator, int], Tensor]

    def probe_tokens(self, data_tokens: Tensor, n: int = 256, prefix: str = "",
                     split: str = "all") -> dict[str, Tensor]:
        """owl.probe_tokens on this world's questions."""
        prompts = [self.vocab.encode(question_prompt(q, prefix))
                   for q in self.questions.split(split)]
        return {"numbers": data_tokens[:n], "trait": pad(prompts, self.vocab.pad),
                "trait_last": torch.tensor([len(p) - 1 for p in prompts])}


def _config(cls, summary: dict):
    return cls(**{k: tuple(v) if isinstance(v, list) else v
                  for k, v in summary["config"].items()})


def _owl(summary: dict) -> RunWorld:
    from interp.studies.owl import OwlConfig
    from interp.studies.world import CATEGORIES, corpus_batch, vocab_for

    cfg = _config(OwlConfig, summary)
    vocab = vocab_for(cfg.category)
    return RunWorld(cfg, vocab, CATEGORIES[cfg.category], vocab.index[summary["trait"]],
                    lambda rng, n: corpus_batch(vocab, cfg.world, rng, n))


def _transfer(summary: dict) -> RunWorld:
    from interp.studies import channels as C
    from interp.studies.transfer import TransferConfig

    cfg = _config(TransferConfig, summary)
    vocab = C.TransferVocab(cfg.channel)
    trait = C.trait_of(cfg.category)
    target = vocab.index[trait.outcomes[summary["trait"]][0]]
    return RunWorld(cfg, vocab, trait.questions, target,
                    lambda rng, n: C.transfer_batch(vocab, cfg.world, rng, n))


WORLDS = {"owl-numbers": _owl, "transfer": _transfer}


def run_world(summary: dict) -> RunWorld:
    study = summary.get("study")
    if study not in WORLDS:
        raise UsageError(f"a {study} run has no language world; this analysis needs a run of "
                         f"{' or '.join(WORLDS)}")
    return WORLDS[study](summary)
