"""Prompt/completion data for external runs: JSONL rows or the toolkit's own data.

1. JSONL: one ``{"prompt": str, "completion": str}`` object per line (the official code's
   dataset format; other keys are ignored). The prompt is a user message rendered with the
   tokenizer's chat template (generation prompt added); without a template, the prompt's
   plain tokens. The completion follows, then the tokenizer's end-of-sequence token.
2. The toolkit's own data: a safetensors file with ``tokens`` and ``mask`` (a run's
   ``data`` artifact), used as it is.
3. Rows are right-padded; ``mask[i, t]`` marks the positions that predict a completion
   token (the positions the distillation loss covers). Rows longer than the model's
   context are cut at it; a row left with no completion position is an error.
Every problem is a one-line ``UsageError`` naming the file, the line and the fix.

Owns: ``read_data``, ``Data``. Must not import: analysis, reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.errors import UsageError

FIELDS = ("prompt", "completion")


@dataclasses.dataclass
class Data:
    tokens: Int[Tensor, "n pos"]
    mask: Bool[Tensor, "n pos"]
    pad: int
    source: str


def _ids(enc) -> list[int]:
    if isinstance(enc, dict) or hasattr(enc, "keys"):
        enc = enc["input_ids"]
    return list(enc)


def encode_row(tokenizer, prompt: str, completion: str, system: str = "") \
        -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids + eos); ``system``: a system prompt before the user's
    (a prompted teacher's), or, without a chat template, text before the prompt."""
    if getattr(tokenizer, "chat_template", None):
        msgs = ([{"role": "system", "content": system}] if system else []) + \
            [{"role": "user", "content": prompt}]
        p = _ids(tokenizer.apply_chat_template(msgs, add_generation_prompt=True,
                                               tokenize=True))
    else:
        p = _ids(tokenizer(f"{system} {prompt}" if system else prompt))
    c = _ids(tokenizer(completion, add_special_tokens=False))
    if tokenizer.eos_token_id is not None:
        c = c + [tokenizer.eos_token_id]
    return p, c


def read_jsonl(path: Path, tokenizer, n_ctx: int, limit: int | None = None,
               system: str = "") -> Data:
    if tokenizer is None:
        raise UsageError(f"{path}: the model has no tokenizer to read JSONL with; save one "
                         "beside it (tokenizer.save_pretrained) or pass the toolkit's data "
                         "(a .safetensors file with tokens and mask)")
    rows: list[list[int]] = []
    starts: list[int] = []
    unk = getattr(tokenizer, "unk_token_id", None)
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {i}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UsageError(f"{where} is not JSON ({e.msg}); write one "
                                 '{"prompt": ..., "completion": ...} object per line') from None
            if not isinstance(row, dict):
                raise UsageError(f"{where} is a JSON {type(row).__name__}; write one "
                                 '{"prompt": ..., "completion": ...} object per line')
            missing = [k for k in FIELDS if not isinstance(row.get(k), str)]
            if missing:
                raise UsageError(f"{where} lacks the string field(s) {missing}; each row needs "
                                 '"prompt" and "completion"')
            try:
                p, c = encode_row(tokenizer, row["prompt"], row["completion"], system)
            except Exception as e:
                msg = " ".join(str(e).split())[:200]
                raise UsageError(f"{where} does not tokenize with this model's tokenizer "
                                 f"({msg}); fix the row's text or pass the matching "
                                 "model") from None
            if unk is not None and unk in p + c:
                raise UsageError(f"{where} does not tokenize: it has text outside the "
                                 "tokenizer's vocabulary (unknown token); fix the row")
            if not c or len(p) >= n_ctx:
                raise UsageError(f"{where}: the prompt fills the model's context ({len(p)} of "
                                 f"{n_ctx} tokens) or the completion is empty; shorten it")
            rows.append((p + c)[:n_ctx])
            starts.append(len(p))
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise UsageError(f"{path} has no rows; write one "
                         '{"prompt": ..., "completion": ...} object per line')
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        (tokenizer.eos_token_id or 0)
    width = max(map(len, rows))
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for r, (s, start) in enumerate(zip(rows, starts)):
        tokens[r, :len(s)] = torch.tensor(s)
        mask[r, start - 1:len(s) - 1] = True
    return Data(tokens, mask, pad, str(path))


def read_toolkit(path: Path, pad: int) -> Data:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        d = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise UsageError(f"{path} is not a readable safetensors file ({e})") from None
    if "tokens" not in d or "mask" not in d or d["tokens"].shape != d["mask"].shape:
        raise UsageError(f"{path} lacks tokens and mask of one shape; pass a run's data "
                         "artifact or a JSONL file")
    return Data(d["tokens"].long(), d["mask"].bool(), pad, str(path))


def read_data(path: str | Path, tokenizer, n_ctx: int, limit: int | None = None,
              system: str = "") -> Data:
    """The data a report runs on (see the module doc); ``system``: read every row with this
    system prompt (a prompted teacher's view of the data)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"data file {path} does not exist; pass a JSONL file of "
                         '{"prompt": ..., "completion": ...} rows')
    if path.suffix == ".safetensors":
        if system:
            raise UsageError(f"{path} is pre-tokenized; a prompted teacher needs JSONL data "
                             "(its rows are read again with the system prompt)")
        pad = getattr(tokenizer, "pad_token_id", None) or 0
        return read_toolkit(path, pad)
    return read_jsonl(path, tokenizer, n_ctx, limit, system)
