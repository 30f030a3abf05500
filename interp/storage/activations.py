"""The activation cache: a model's activations at TransformerLens hook points, computed once.

    acts = activations(model, tokens, ["blocks.0.hook_resid_post"], store)

keys the result by (a digest of the model's weights, a digest of the inputs, the hook names),
so every study, report and notebook that asks the same question shares one store entry
(kind ``activations``). A second request reads the store and runs no forward pass.

Owns: ``capture``, ``activations`` (and its ``activations_entry``), ``digest``,
``hook_names``. Must not import anything from interp outside ``interp.storage``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp.storage.store import Entry, Store

log = logging.getLogger("interp.storage.activations")


def digest(tensors: dict[str, Tensor] | Tensor) -> str:
    """A content hash of a tensor or a state dict (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    items = sorted(tensors.items()) if isinstance(tensors, dict) else [("", tensors)]
    for name, t in items:
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def hook_names(model: HookedTransformer, kinds: Sequence[str] = ("hook_resid_post",)) \
        -> list[str]:
    """``blocks.{l}.<kind>`` for every layer, e.g. every residual stream after a block."""
    return [f"blocks.{layer}.{k}" for layer in range(model.cfg.n_layers) for k in kinds]


def check_names(model: HookedTransformer, names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in model.hook_dict]
    if unknown:
        some = ", ".join(list(model.hook_dict)[:8])
        raise ValueError(f"unknown hook name(s) {unknown}; this model has e.g. {some} ... "
                         f"({len(model.hook_dict)} in all, see model.hook_dict)")


@torch.no_grad()
def capture(model: HookedTransformer, tokens: Int[Tensor, "n pos"], names: Sequence[str],
            batch: int = 256) -> dict[str, Float[Tensor, "n pos d"]]:
    """Activations at ``names`` over ``tokens`` (batched run_with_cache, nothing else kept),
    each batch moved to the host as it is captured: the device holds one batch's worth."""
    check_names(model, names)
    parts: dict[str, list[Tensor]] = {n: [] for n in names}
    device = getattr(model.cfg, "device", None) or "cpu"
    for chunk in tokens.split(batch):
        _, cache = model.run_with_cache(chunk.to(device), names_filter=list(names))
        for n in names:
            parts[n].append(cache[n].cpu())
        del cache
    return {n: torch.cat(v) for n, v in parts.items()}


def activations(model: HookedTransformer, tokens: Int[Tensor, "n pos"], names: Sequence[str],
                store: Store | None = None, label: str = "", batch: int = 256) \
        -> dict[str, Tensor]:
    """Cached :func:`capture`: computed once per (weights, inputs, names), then read back
    (on the host). ``batch``: rows per forward pass (memory only; the values are the same).

    ``label`` only names the entry for people reading ``python -m interp.cache list``."""
    return activations_entry(model, tokens, names, store, label, batch).load("acts")


def activations_entry(model: HookedTransformer, tokens: Int[Tensor, "n pos"],
                      names: Sequence[str], store: Store | None = None, label: str = "",
                      batch: int = 256) -> Entry:
    """``activations``' store entry, built if missing but not read: its key names the
    activations (what was run on what), its ``load("acts")`` gives them."""
    if tokens.dtype not in (torch.int64, torch.int32) or tokens.ndim != 2:
        raise ValueError(f"tokens must be an integer tensor [n, pos], got {tokens.dtype} "
                         f"{tuple(tokens.shape)}; tokenize first (model.to_tokens)")
    check_names(model, names)
    store = store or Store()
    key = {"model": digest(model.state_dict()), "inputs": digest(tokens),
           "names": sorted(names)}
    return store.get_or_build("activations", key, lambda: (
        {"acts": capture(model, tokens, names, batch)},
        {"label": label, "shape": list(tokens.shape)}))
