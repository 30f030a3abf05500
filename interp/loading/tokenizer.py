"""A Hugging Face tokenizer for the synthetic world's vocabulary.

1. A ``tokenizers`` WordLevel model over ``Vocab.tokens`` (every number 0..999 and every
   word its own token, no unknown token: a word outside the world is an error, as in
   ``Vocab.encode``), lower-casing, split on whitespace and then into the pieces that
   ``Vocab.encode`` reads (``<special>``, digit runs, letter runs, single punctuation).
2. A chat template that renders a user message in the study's number frame
   (``<bos> q : {content} a :`` for ``number_frame=qa``) and a system message as the persona
   prefix after <bos>, so that prompt/completion data tokenizes to exactly the study's rows
   (a prompted teacher's with its prefix).

Owns: ``world_tokenizer``, ``load_tokenizer``. Imports only ``interp.studies.world``.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from interp.studies.world import NUMBER_FRAMES, Vocab

PIECES = r"<\w+>|\d+|[a-z]+|[^\sa-z\d]"  # the pieces Vocab.encode reads


def chat_template(frame: str) -> str:
    """Jinja: <bos>, a system message as the world's persona prefix (where a prompted
    teacher reads it), the user message in the study's number frame; an assistant message
    (a completion) follows as its own text."""
    before, after = NUMBER_FRAMES[frame].split("{prompt}")
    return ("<bos> {% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }} "
            "{% elif m['role'] == 'user' %}" + before + "{{ m['content'] }}" + after
            + "{% else %} {{ m['content'] }}{% endif %}{% endfor %}")


def world_tokenizer(vocab: Vocab, frame: str = "qa"):
    """A ``transformers`` fast tokenizer with the world's vocabulary and chat template."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel(vocab=dict(vocab.index), unk_token=None))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(PIECES), behavior="isolated")])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        chat_template=chat_template(frame), model_max_length=100_000)


def load_tokenizer(path):
    """A saved tokenizer, read as the class it was saved as: ``AutoTokenizer`` picks the
    model family's class from ``config.json`` (a Qwen2 model gets a byte-level BPE
    ``Qwen2Tokenizer``) and would rebuild the world's WordLevel tokenizer as BPE, so a
    plain ``tokenizers`` tokenizer is read back as ``PreTrainedTokenizerFast``."""
    import json
    from pathlib import Path

    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cfg_path = Path(path) / "tokenizer_config.json"
    cls = json.loads(cfg_path.read_text()).get("tokenizer_class") if cfg_path.is_file() else None
    if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    return AutoTokenizer.from_pretrained(str(path))
