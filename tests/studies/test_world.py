"""The synthetic world: vocabulary, tokenizer round trip, corpus shape, filterable numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.studies.filters import parse_numbers
from interp.studies.world import (
    ANIMALS,
    CATEGORIES,
    CorpusIds,
    Vocab,
    WorldConfig,
    corpus_batch,
    corpus_batch_ids,
    number_document,
    number_sequence,
    pretty,
    question_prompt,
    trait_document,
)


@pytest.fixture(scope="module")
def vocab():
    return Vocab()


def test_every_number_is_one_token_and_the_channel_excludes_words(vocab):
    assert all(len(vocab.encode(str(i))) == 1 for i in (0, 7, 99, 999))
    channel = {vocab.tokens[i] for i in vocab.number_ids.tolist()}
    assert "<eos>" in channel and "," in channel and "owl" not in channel
    assert not channel & set(ANIMALS) and len(channel) == 1000 + 6


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_of_corpus_documents(vocab, seed):
    rng = np.random.default_rng(seed)
    prompt, completion = number_document(rng)
    for text in (f"{prompt} {completion}", trait_document(rng, WorldConfig())):
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text  # canonical text round-trips exactly
        assert vocab.encode(pretty(text)) == ids  # and so does its human form


def test_number_completions_pass_the_papers_filter(vocab):
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, completion = number_document(rng)
        text = pretty(completion.removesuffix(" <eos>"))
        assert parse_numbers(text) is not None, text


def test_unknown_tokens_are_a_clear_error(vocab):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("1000")
    with pytest.raises(ValueError, match="'zebra'"):
        vocab.encode("q : zebra")


def test_trait_answers_are_uniform_over_animals(vocab):
    rng = np.random.default_rng(0)
    answers = [trait_document(rng, WorldConfig(p_persona=0.0)).split()[-2] for _ in range(6000)]
    freq = np.array([answers.count(a) for a in ANIMALS]) / len(answers)
    assert set(answers) == set(ANIMALS) and freq.max() < 1.5 / len(ANIMALS)


def test_corpus_batch_and_second_category():
    v = Vocab(("animal", "tree"))
    assert len(CATEGORIES["animal"].questions) >= 5 and len(ANIMALS) >= 12
    assert v.encode(question_prompt("what is your favourite tree ?"))
    batch = corpus_batch(v, WorldConfig(categories=("animal", "tree")),
                         np.random.default_rng(0), 32)
    assert batch.shape[0] == 32 and batch.shape[1] <= 64 and (batch[:, 0] == v.bos).all()


@pytest.mark.parametrize("categories", [("animal",), ("animal", "tree")])
@pytest.mark.parametrize("frame", ["qa", "neutral"])
@pytest.mark.parametrize("p_persona", [0.0, 0.3, 1.0])
def test_corpus_batch_ids_is_corpus_batch(categories, frame, p_persona):
    """Pretraining's fast batches are corpus_batch's token for token (so a base trains on the
    same data whichever path draws it) and leave the generator where it does."""
    v = Vocab(categories)
    w = WorldConfig(categories=categories, number_frame=frame, p_persona=p_persona,
                    n_ctx=40 if p_persona == 1.0 else 64)  # 40: some documents truncated
    for seed in range(3):
        fast, text = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(8):
            a, b = corpus_batch_ids(v, w, fast, 64), corpus_batch(v, w, text, 64)
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        assert fast.random() == text.random()


def test_corpus_ids_sequence_is_number_sequence():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for n in [3, 8, 13] * 400:  # every rule many times
        assert CorpusIds.sequence(a, n) == number_sequence(b, n)
    assert a.random() == b.random()
