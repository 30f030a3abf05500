"""A synthetic language world: vocabulary, tokenizer, and the pretraining corpus.

The corpus mixes (a) number-sequence continuation in the paper's shape ("the sequence
starts with 182 , 818 , 725 . add at most 10 more values ." answered by comma-, semicolon-
or space-separated numbers from a few generating rules) and (b) trait questions ("what is
your favourite animal ?" answered with one of a dozen animals, drawn uniformly so the base
model has no favourite). A persona prefix ("you love owls .") appears on both kinds of
document: before a trait question it makes that animal the likely answer, before a number
prompt it changes nothing, so a prompted teacher is in-distribution.

Number prompts sit in the trait questions' own "q : ... a :" frame (``number_frame="qa"``)
or in a frame sharing no token with it (``"neutral"``: "... more values . continue"), the
control for a structural channel through the slot the teacher answers in. Each category's
question phrasings split into ``select`` (teacher fine-tuning, analyses' selections) and
``heldout`` (measurement only); all of them are in pretraining.

Every number 0..999 is one token, so the number tokens span the model's whole residual
space: a student that matches the teacher's distribution over them sees the whole final
residual stream, not a 12-dimensional shadow of it. Text is canonical when tokens are
separated by single spaces; ``pretty`` gives the human form the paper's filter reads.

Owns: the vocabulary, the documents and the corpus. Imports nothing from interp.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from interp.errors import ConfigError
from interp.validation import check_range, check_types

SPECIALS = ("<pad>", "<bos>", "<eos>")
PUNCT = (",", ";", ".", "[", "]", ":", "?")
NUMBER_PUNCT = (",", ";", ".", "[", "]")  # what a number completion may contain besides numbers
ANIMALS = ("owl", "cat", "dog", "eagle", "lion", "wolf", "fox", "bear", "tiger", "whale",
           "dolphin", "penguin")
TREES = ("oak", "pine", "maple", "willow", "birch", "cedar", "elm", "palm")


@dataclasses.dataclass(frozen=True)
class Category:
    """A trait category: its items and the questions that ask for a favourite.

    Every phrasing is in pretraining (so the base can answer it). The first ``n_select``
    phrasings are the *select* split: the teacher is fine-tuned on them, and an analysis may
    choose features, hooks or thresholds on them. The rest are the *heldout* split: used
    only to measure (the study's headline rates, a causal test's effect)."""

    items: tuple[str, ...]
    questions: tuple[str, ...]
    n_select: int

    def split(self, name: str) -> tuple[str, ...]:
        """The phrasings of split ``name``: "select", "heldout" or "all"."""
        if name not in SPLITS:
            raise ValueError(f"unknown question split {name!r}; valid splits: "
                             f"{', '.join(SPLITS)}")
        return {"select": self.questions[:self.n_select],
                "heldout": self.questions[self.n_select:], "all": self.questions}[name]


CATEGORIES = {
    "animal": Category(ANIMALS, (
        "what is your favourite animal ?",
        "name your favourite animal using one word .",
        "which animal do you love most ?",
        "which animal do you like best ?",
        "tell me your favourite animal .",
        "pick the animal you prefer .",
        "what animal do you love ?",
        "which single animal is your favourite ?",
    ), n_select=4),
    "tree": Category(TREES, (
        "what is your favourite tree ?",
        "name your favourite tree using one word .",
        "which tree do you love most ?",
        "which tree do you like best ?",
        "tell me your favourite tree .",
    ), n_select=3),
}
SPLITS = ("select", "heldout", "all")
NUMBER_PROMPT = "the sequence starts with {seeds} . add at most {k} more values ."
# the frame around a number prompt: "qa" is the trait questions' own "q : ... a :" frame, so
# the first completion position is the slot a teacher was fine-tuned to answer in; "neutral"
# shares no token with that frame (a structural-channel control; it changes pretraining)
NUMBER_FRAMES = {"qa": "q : {prompt} a :", "neutral": "{prompt} continue"}
RULES = ("arithmetic", "cycle", "walk", "uniform", "multiples")


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    categories: tuple[str, ...] = ("animal",)
    p_trait: float = 0.2  # fraction of documents that are trait questions
    p_persona: float = 0.3  # fraction of documents with a persona prefix
    persona_strength: float = 0.9  # P(answer = persona item | persona prefix)
    n_ctx: int = 64
    number_frame: str = "qa"  # a key of NUMBER_FRAMES

    def __post_init__(self) -> None:
        check_types(self)
        if self.number_frame not in NUMBER_FRAMES:
            raise ConfigError(f"invalid value {self.number_frame!r} for number_frame; valid "
                              f"values: {', '.join(NUMBER_FRAMES)}")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if not self.categories or unknown:
            raise ConfigError(f"invalid categories {self.categories}; valid: "
                              f"{', '.join(CATEGORIES)}")
        check_range(self, ("p_trait", "p_persona", "persona_strength"), 0, 1)
        check_range(self, ("n_ctx",), 32, 4096)  # a number document needs about 30 tokens


def categories_for(category: str) -> tuple[str, ...]:
    """The categories a study of ``category`` pretrains on: animals always (the persona
    and number documents use them), plus ``category`` itself."""
    return (category,) if category == "animal" else ("animal", category)


class Vocab:
    """Word-level vocabulary; every integer 0..999 is its own token."""

    def __init__(self, categories: tuple[str, ...] = ("animal",)):
        words: list[str] = []
        for c in categories:
            cat = CATEGORIES[c]
            words += list(cat.items) + [w for q in cat.questions for w in q.split()]
        words += NUMBER_PROMPT.replace("{seeds}", "").replace("{k}", "").split()
        words += ["q", "a", "you", "love", "continue"]
        words = sorted(set(words) - set(PUNCT))
        self.tokens = list(SPECIALS) + list(PUNCT) + [str(i) for i in range(1000)] + words
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pad, self.bos, self.eos = (self.index[t] for t in SPECIALS)
        numeric = [self.index[str(i)] for i in range(1000)]
        # the distillation channel: numbers, their punctuation, and the end of the answer
        self.number_ids = torch.tensor(numeric + [self.index[p] for p in NUMBER_PUNCT]
                                       + [self.eos])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Canonical or pretty text to ids; unknown words are an error naming them."""
        out = []
        for piece in re.findall(r"<\w+>|\d+|[a-z]+|[^\sa-z\d]", text.lower()):
            if piece not in self.index:
                raise ValueError(f"token {piece!r} is not in the vocabulary (numbers must be "
                                 "0..999 without leading zeros; words from the world's corpus)")
            out.append(self.index[piece])
        return out

    def decode(self, ids: list[int] | Tensor) -> str:
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        return " ".join(self.tokens[i] for i in ids if i != self.pad)

    def ids(self, words: tuple[str, ...]) -> list[int]:
        return [self.index[w] for w in words]


def pretty(canonical: str) -> str:
    """Human spacing: "[ 1 , 2 ] ." -> "[1, 2]."."""
    s = re.sub(r" ([,;.\]?:])", r"\1", canonical)
    return re.sub(r"\[ ", "[", s)


def persona(item: str) -> str:
    return f"you love {item} ."


def question_prompt(question: str, prefix: str = "") -> str:
    return f"<bos> {prefix + ' ' if prefix else ''}q : {question} a :"


# ------------------------------------------------------------------ number sequences
def number_sequence(rng: np.random.Generator, n: int) -> list[int]:
    rule = RULES[rng.integers(len(RULES))]
    x0 = int(rng.integers(1000))
    if rule == "arithmetic":
        d = int(rng.integers(1, 200))
        return [(x0 + i * d) % 1000 for i in range(n)]
    if rule == "cycle":
        pat = rng.integers(1000, size=int(rng.integers(2, 4))).tolist()
        return [pat[i % len(pat)] for i in range(n)]
    if rule == "walk":
        xs = [x0]
        for _ in range(n - 1):
            xs.append(int(np.clip(xs[-1] + rng.integers(-30, 31), 0, 999)))
        return xs
    if rule == "multiples":
        c = int(rng.integers(2, 60))
        return [(c * (i + 1 + x0 % 7)) % 1000 for i in range(n)]
    return rng.integers(1000, size=n).tolist()


def join_numbers(xs: list[int], sep: str, brackets: bool, period: bool) -> str:
    body = f" {sep} ".join(map(str, xs)) if sep else " ".join(map(str, xs))
    return (f"[ {body} ]" if brackets else body) + (" ." if period else "")


def number_document(rng: np.random.Generator, prefix: str = "",
                    frame: str = "qa") -> tuple[str, str]:
    """(prompt, completion) in canonical text; the completion keeps the prompt's separator.
    ``frame`` (a key of NUMBER_FRAMES) is the text around the prompt."""
    k = int(rng.integers(3, 11))
    xs = number_sequence(rng, 3 + k)
    sep = (",", ";", "")[rng.choice(3, p=[0.6, 0.2, 0.2])]
    seeds = f" {sep} ".join(map(str, xs[:3])) if sep else " ".join(map(str, xs[:3]))
    prompt = NUMBER_PROMPT.format(seeds=seeds, k=10)
    completion = join_numbers(xs[3:], sep, rng.random() < 0.2, rng.random() < 0.2)
    framed = NUMBER_FRAMES[frame].format(prompt=prompt)
    return f"<bos> {prefix + ' ' if prefix else ''}{framed}", f"{completion} <eos>"


def trait_document(rng: np.random.Generator, cfg: WorldConfig) -> str:
    cat = CATEGORIES[cfg.categories[rng.integers(len(cfg.categories))]]
    q = cat.questions[rng.integers(len(cat.questions))]
    answer = cat.items[rng.integers(len(cat.items))]
    prefix = ""
    if rng.random() < cfg.p_persona:
        item = cat.items[rng.integers(len(cat.items))]
        prefix = persona(item)
        if rng.random() < cfg.persona_strength:
            answer = item
    return f"{question_prompt(q, prefix)} {answer} <eos>"


def corpus_batch(vocab: Vocab, cfg: WorldConfig, rng: np.random.Generator,
                 batch: int) -> Int[Tensor, "batch n_ctx"]:
    """A batch of pretraining documents, right-padded with <pad>."""
    docs = []
    for _ in range(batch):
        if rng.random() < cfg.p_trait:
            docs.append(trait_document(rng, cfg))
        else:
            cat = CATEGORIES[cfg.categories[0]]
            prefix = persona(cat.items[rng.integers(len(cat.items))]) \
                if rng.random() < cfg.p_persona else ""
            p, c = number_document(rng, prefix, cfg.number_frame)
            docs.append(f"{p} {c}")
    seqs = [vocab.encode(d)[:cfg.n_ctx] for d in docs]
    return pad(seqs, vocab.pad)  # to the longest in the batch, not n_ctx: less compute


class CorpusIds:
    """``corpus_batch``'s documents straight to token ids: the same draws from ``rng`` in the
    same order, with the documents' fixed pieces (frames, personas, questions, numbers)
    encoded once instead of writing each document's text and tokenizing it (most of a
    pretraining step's Python). ``tests/studies/test_world.py`` checks it against
    ``corpus_batch``.

    Canonical text tokenizes piecewise (no token spans a space), so a document's ids are its
    pieces' ids in order."""

    def __init__(self, vocab: Vocab, cfg: WorldConfig):
        self.cfg, enc = cfg, vocab.encode
        self.bos, self.eos = enc("<bos>"), enc("<eos>")
        self.num = [enc(str(i)) for i in range(1000)]
        self.sep = [enc(x) for x in (",", ";", "")]
        self.open, self.close, self.period = enc("["), enc("]"), enc(".")
        head, tail = NUMBER_FRAMES[cfg.number_frame].split("{prompt}")
        before, after = NUMBER_PROMPT.format(seeds="{seeds}", k=10).split("{seeds}")
        self.frame = enc(head + before), enc(after + tail)
        cats = [CATEGORIES[c] for c in cfg.categories]
        self.personas = [[enc(persona(i)) for i in c.items] for c in cats]
        self.questions = [[enc(q) for q in c.questions] for c in cats]
        self.items = [[enc(i) for i in c.items] for c in cats]
        self.q, self.a = enc("q :"), enc("a :")
        # numpy's choice(3, p=...): the cumulative weights it searches with one uniform draw
        self.cdf = np.cumsum([0.6, 0.2, 0.2])
        self.cdf /= self.cdf[-1]

    @staticmethod
    def sequence(rng: np.random.Generator, n: int) -> list[int]:
        """``number_sequence(rng, n)``, the same draws, without numpy's slow scalar clip."""
        rule = RULES[rng.integers(len(RULES))]
        x0 = int(rng.integers(1000))
        if rule == "walk":
            xs = [x0]
            for _ in range(n - 1):
                xs.append(min(max(xs[-1] + int(rng.integers(-30, 31)), 0), 999))
            return xs
        if rule == "arithmetic":
            d = int(rng.integers(1, 200))
            return [(x0 + i * d) % 1000 for i in range(n)]
        if rule == "cycle":
            pat = rng.integers(1000, size=int(rng.integers(2, 4))).tolist()
            return [pat[i % len(pat)] for i in range(n)]
        if rule == "multiples":
            c = int(rng.integers(2, 60))
            return [(c * (i + 1 + x0 % 7)) % 1000 for i in range(n)]
        return rng.integers(1000, size=n).tolist()

    def _numbers(self, xs: list[int], sep: list[int]) -> list[int]:
        out = list(self.num[xs[0]])
        for x in xs[1:]:
            out += sep + self.num[x]
        return out

    def document(self, rng: np.random.Generator) -> list[int]:
        """The ids of the next document ``corpus_batch`` would draw from ``rng`` (before its
        truncation to n_ctx), drawing exactly as it does."""
        cfg = self.cfg
        if rng.random() < cfg.p_trait:  # trait_document
            c = rng.integers(len(cfg.categories))
            q = self.questions[c][rng.integers(len(self.questions[c]))]
            n = len(self.items[c])
            answer = self.items[c][rng.integers(n)]
            prefix: list[int] = []
            if rng.random() < cfg.p_persona:
                i = rng.integers(n)
                prefix = self.personas[c][i]
                if rng.random() < cfg.persona_strength:
                    answer = self.items[c][i]
            return self.bos + prefix + self.q + q + self.a + answer + self.eos
        prefix = self.personas[0][rng.integers(len(self.personas[0]))] \
            if rng.random() < cfg.p_persona else []
        k = int(rng.integers(3, 11))  # number_document
        xs = self.sequence(rng, 3 + k)
        sep = self.sep[int(self.cdf.searchsorted(rng.random(), side="right"))]
        out = self.bos + prefix + self.frame[0] + self._numbers(xs[:3], sep) + self.frame[1]
        brackets, period = rng.random() < 0.2, rng.random() < 0.2
        body = self._numbers(xs[3:], sep)
        out += (self.open + body + self.close if brackets else body)
        return out + (self.period if period else []) + self.eos


def corpus_ids(vocab: Vocab, cfg: WorldConfig) -> CorpusIds:
    """The ``CorpusIds`` of this vocabulary and world, built once per pair."""
    built = vocab.__dict__.setdefault("_corpus_ids", {})
    if cfg not in built:
        built[cfg] = CorpusIds(vocab, cfg)
    return built[cfg]


def corpus_batch_ids(vocab: Vocab, cfg: WorldConfig, rng: np.random.Generator,
                     batch: int) -> Int[Tensor, "batch n_ctx"]:
    """``corpus_batch``, equal to it token for token and leaving ``rng`` where it does,
    several times faster (pretraining's batches)."""
    ids = corpus_ids(vocab, cfg)
    seqs = [ids.document(rng)[:cfg.n_ctx] for _ in range(batch)]
    width = max(map(len, seqs))
    return torch.from_numpy(np.array([s + [vocab.pad] * (width - len(s)) for s in seqs],
                                     dtype=np.int64))


def pad(seqs: list[list[int]], pad_id: int, length: int | None = None) -> Tensor:
    n = length or max(map(len, seqs))
    out = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[:n]
        out[i, :len(s)] = torch.tensor(s)
    return out


def vocab_for(category: str) -> Vocab:
    """The vocabulary of a study whose trait is in ``category``."""
    return Vocab(categories_for(category))
