"""A stack of tiny transformers trained as one: the fast training forward of the studies.

The studies' models are tiny (d_model 64): one HookedTransformer forward is a few dozen
small matmuls, and on a CPU its time goes to per-op overhead (hook points, einops
rearranges, an unfused attention), not to arithmetic. Models that train side by side (the
same-init and cross-init bases; a seed's trait and different-trait teachers; a seed's
students) are therefore stacked along a leading model axis and trained in one loop:

1. ``stack`` turns M TransformerLens state dicts into one dict of parameters with a leading
   axis ``m`` (the parameter names stay TransformerLens's: ``blocks.{l}.attn.W_Q``, ...).
2. ``forward`` computes all M models' logits at once, with exactly TransformerLens's
   arithmetic (pre-LN blocks, scaled causal attention, the configured activation), but
   batched over models (one ``bmm`` per weight instead of M) and with a fused attention
   kernel (``scaled_dot_product_attention``). ``tests/studies/test_stack.py`` checks logits
   and gradients against ``HookedTransformer`` to float32 precision.
3. The loss of a stack is the sum of each model's own mean loss, so each model's gradient
   is the one it would get alone; Adam is elementwise, so one Adam over stacked tensors is
   M independent Adams. A stacked run is not bit-identical to M separate runs (different
   kernels), so store keys name the stack a model was trained in.
4. ``unstack`` gives back M ordinary state dicts (with TransformerLens's buffers), which
   ``lm.load_model`` turns into hooked models for every analysis.
5. Pretraining packs whole documents into rows (``pack``, first fit decreasing); with
   ``packed=(pos, segment)`` each token reads its position within its document and attends
   only to its own document, so a packed row computes what its documents compute alone,
   without the padded batch's idle positions. Its loss, the unembedding fused with the
   cross-entropy (``LinearCrossEntropy``), runs in chunks of rows with its gradient.

Owns: the stacked functional forward. Must not import: analysis, reports, the CLIs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.errors import ConfigError

Params = dict[str, Tensor]  # TransformerLens names -> [m, ...] tensors


def _gelu_new(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def _gelu_fast(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _solu(x: Tensor) -> Tensor:
    return x * F.softmax(x, -1)


# TransformerLens's activation functions (transformer_lens.utils), by config name
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "gelu_new": _gelu_new,
               "gelu_fast": _gelu_fast, "solu_ln": _solu}


def stack(states: list[dict[str, Tensor]], names: list[str]) -> Params:
    """The parameters ``names`` of M state dicts as fresh leaf tensors [m, ...]."""
    return {n: torch.stack([s[n].detach().float() for s in states]).requires_grad_(True)
            for n in names}


def unstack(params: Params, template: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """M state dicts: ``template`` (buffers, frozen parameters) with the stacked ones."""
    m = next(iter(params.values())).shape[0]
    return [{**template, **{n: p[i].detach().clone() for n, p in params.items()}}
            for i in range(m)]


def _ln(x: Tensor, w: Tensor, b: Tensor, eps: float) -> Tensor:
    """TransformerLens's LayerNorm with per-model weights w, b [m, d] over x [m, ..., d]."""
    d = x.shape[-1]
    if w.shape[0] == 1:  # one model: the fused kernel with its affine part
        return F.layer_norm(x, (d,), w[0], b[0], eps)
    shape = (w.shape[0],) + (1,) * (x.dim() - 2) + (d,)
    return F.layer_norm(x, (d,), None, None, eps) * w.view(shape) + b.view(shape)


def residual(P: Params, tokens: Int[Tensor, "m b p"], n_layers: int, n_heads: int,
             act_fn: str = "gelu", eps: float = 1e-5,
             packed: tuple[Int[Tensor, "m b p"], Int[Tensor, "m b p"]] | None = None) \
        -> Float[Tensor, "m b p d"]:
    """The final residual stream of M stacked models (after ``ln_final``), each on its own
    batch of tokens. ``packed = (pos, segment)``: rows that hold several documents
    (``pack``): each token's position within its document, and its document's id within the
    row; a token attends only to earlier tokens of its own document, so each document's
    residual stream is the one it has alone."""
    if act_fn not in ACTIVATIONS:
        raise ConfigError(f"invalid act_fn {act_fn!r}; valid: {', '.join(ACTIVATIONS)}")
    act = ACTIVATIONS[act_fn]
    m, b, p = tokens.shape
    d = P["embed.W_E"].shape[-1]
    h, e = n_heads, d // n_heads
    v = P["embed.W_E"].shape[1]
    # one embedding lookup over the models' stacked tables (its backward is a dense
    # scatter-add, far cheaper than advanced indexing's)
    flat = tokens + v * torch.arange(m)[:, None, None]
    x = F.embedding(flat, P["embed.W_E"].reshape(m * v, d))
    mask = None
    if packed is None:
        x = x + P["pos_embed.W_pos"][:, None, :p]
    else:
        pos, segment = packed
        n_ctx = P["pos_embed.W_pos"].shape[1]
        x = x + F.embedding(pos + n_ctx * torch.arange(m)[:, None, None],
                            P["pos_embed.W_pos"].reshape(m * n_ctx, d))
        causal = torch.ones(p, p, dtype=torch.bool).tril()
        seg = segment.reshape(m * b, p)
        mask = ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]  # [m*b 1 p p]
    for layer in range(n_layers):
        pre = f"blocks.{layer}."
        y = _ln(x, P[pre + "ln1.w"], P[pre + "ln1.b"], eps).reshape(m, b * p, d)
        # W_Q, W_K, W_V [m h d e] -> one [m, d, 3 h e] matmul
        w_qkv = torch.cat([P[pre + f"attn.W_{k}"] for k in "QKV"], 1)  # [m 3h d e]
        w_qkv = w_qkv.permute(0, 2, 1, 3).reshape(m, d, 3 * h * e)
        b_qkv = torch.cat([P[pre + f"attn.b_{k}"] for k in "QKV"], 1).reshape(m, 1, 3 * h * e)
        qkv = torch.baddbmm(b_qkv, y, w_qkv).view(m * b, p, 3 * h, e).transpose(1, 2)
        q, k, v = qkv.split(h, 1)  # each [m*b h p e]
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                           scale=1 / math.sqrt(e))
        z = z.transpose(1, 2).reshape(m, b * p, h * e)
        w_o = P[pre + "attn.W_O"].reshape(m, h * e, d)  # [m h e d] -> [m h*e d]
        x = x + torch.baddbmm(P[pre + "attn.b_O"][:, None], z, w_o).view(m, b, p, d)
        y = _ln(x, P[pre + "ln2.w"], P[pre + "ln2.b"], eps).reshape(m, b * p, d)
        mid = act(torch.baddbmm(P[pre + "mlp.b_in"][:, None], y, P[pre + "mlp.W_in"]))
        if act_fn == "solu_ln":
            mid = _ln(mid, P[pre + "mlp.ln.w"], P[pre + "mlp.ln.b"], eps)
        x = x + torch.baddbmm(P[pre + "mlp.b_out"][:, None], mid,
                              P[pre + "mlp.W_out"]).view(m, b, p, d)
    return _ln(x, P["ln_final.w"], P["ln_final.b"], eps)


def forward(P: Params, tokens: Int[Tensor, "m b p"], n_layers: int, n_heads: int,
            act_fn: str = "gelu", eps: float = 1e-5) -> Float[Tensor, "m b p v"]:
    """The logits of M stacked models, each on its own batch of tokens."""
    x = residual(P, tokens, n_layers, n_heads, act_fn, eps)
    m, b, p, d = x.shape
    return torch.baddbmm(P["unembed.b_U"][:, None], x.reshape(m, b * p, d),
                         P["unembed.W_U"]).view(m, b, p, -1)


class KVCache:
    """Each layer's keys and values [b h n_ctx e] for ``decode``, filled up to ``length``."""

    def __init__(self) -> None:
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []
        self.length = 0


def decode(P: Params, tokens: Int[Tensor, "b t"], cache: KVCache, n_layers: int,
           n_heads: int, act_fn: str = "gelu", eps: float = 1e-5) -> Float[Tensor, "b v"]:
    """One model's (``P`` with m = 1) next-token logits after ``tokens``, which continue the
    sequences whose keys and values ``cache`` holds (a fresh ``KVCache`` to start); their
    keys and values are added to it. Sampling's KV-cached forward: ``residual``'s arithmetic
    for the new positions only, without a HookedTransformer's per-call hooks.
    ``tests/studies/test_stack.py`` checks it against ``HookedTransformer``'s logits."""
    act = ACTIVATIONS[act_fn]
    b, t = tokens.shape
    n_ctx, d = P["pos_embed.W_pos"].shape[1:]
    h, e = n_heads, d // n_heads
    start, end = cache.length, cache.length + t
    if end > n_ctx:
        raise ConfigError(f"decoding past the model's context ({end} tokens > n_ctx={n_ctx}): "
                          "shorten the prompts or max_new")
    x = F.embedding(tokens, P["embed.W_E"][0]) + P["pos_embed.W_pos"][0, start:end]
    for layer in range(n_layers):
        pre = f"blocks.{layer}."
        y = F.layer_norm(x, (d,), P[pre + "ln1.w"][0], P[pre + "ln1.b"][0], eps)
        w_qkv = torch.cat([P[pre + f"attn.W_{k}"][0] for k in "QKV"], 0)  # [3h d e]
        w_qkv = w_qkv.permute(1, 0, 2).reshape(d, 3 * h * e)
        b_qkv = torch.cat([P[pre + f"attn.b_{k}"][0] for k in "QKV"], 0).reshape(3 * h * e)
        qkv = torch.addmm(b_qkv, y.reshape(b * t, d), w_qkv).view(b, t, 3 * h, e).transpose(1, 2)
        q, k, v = qkv.split(h, 1)  # each [b h t e]
        if len(cache.keys) == layer:
            cache.keys.append(k.new_empty(b, h, n_ctx, e))
            cache.values.append(v.new_empty(b, h, n_ctx, e))
        cache.keys[layer][:, :, start:end] = k
        cache.values[layer][:, :, start:end] = v
        k, v = cache.keys[layer][:, :, :end], cache.values[layer][:, :, :end]
        # the new positions see every cached one and the earlier new ones (one new position
        # sees them all: no mask)
        mask = None if t == 1 else torch.ones(t, end, dtype=torch.bool).tril(start)
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1 / math.sqrt(e))
        z = z.transpose(1, 2).reshape(b * t, h * e)
        x = x + torch.addmm(P[pre + "attn.b_O"][0], z,
                            P[pre + "attn.W_O"][0].reshape(h * e, d)).view(b, t, d)
        y = F.layer_norm(x, (d,), P[pre + "ln2.w"][0], P[pre + "ln2.b"][0], eps)
        mid = act(torch.addmm(P[pre + "mlp.b_in"][0], y.reshape(b * t, d), P[pre + "mlp.W_in"][0]))
        if act_fn == "solu_ln":
            mid = _ln(mid, P[pre + "mlp.ln.w"], P[pre + "mlp.ln.b"], eps)
        x = x + torch.addmm(P[pre + "mlp.b_out"][0], mid, P[pre + "mlp.W_out"][0]).view(b, t, d)
    cache.length = end
    x = F.layer_norm(x[:, -1], (d,), P["ln_final.w"][0], P["ln_final.b"][0], eps)
    return torch.addmm(P["unembed.b_U"][0], x, P["unembed.W_U"][0])


def logits_at(P: Params, tokens: Int[Tensor, "m b p"], at: Bool[Tensor, "m b p"],
              n_layers: int, n_heads: int, act_fn: str = "gelu", eps: float = 1e-5,
              cols: Int[Tensor, " k"] | None = None,
              packed: tuple[Int[Tensor, "m b p"], Int[Tensor, "m b p"]] | None = None) \
        -> tuple[Float[Tensor, "n k"], Int[Tensor, " n"]]:
    """The logits at the positions ``at`` only (model-major order) and each row's model;
    with ``cols``, only those vocabulary columns (a loss restricted to the number tokens);
    ``packed`` as in ``residual``.

    The unembedding and everything over the vocabulary (softmax, loss) is most of a tiny
    model's step; a loss needs it only where it is taken, not at padding or prompts."""
    w_u, b_u = P["unembed.W_U"], P["unembed.b_U"]
    if cols is not None:
        w_u, b_u = w_u[..., cols], b_u[..., cols]
    xs = residual_at(P, tokens, at, n_layers, n_heads, act_fn, eps, packed)
    rows = [torch.addmm(b_u[i], x, w_u[i]) for i, x in enumerate(xs)]
    model = torch.repeat_interleave(torch.arange(len(xs)), at.flatten(1).sum(1))
    return torch.cat(rows), model


def residual_at(P: Params, tokens: Int[Tensor, "m b p"], at: Bool[Tensor, "m b p"],
                n_layers: int, n_heads: int, act_fn: str = "gelu", eps: float = 1e-5,
                packed: tuple[Int[Tensor, "m b p"], Int[Tensor, "m b p"]] | None = None) \
        -> list[Float[Tensor, "n d"]]:
    """Per model, the final residual stream at its positions ``at`` (row-major)."""
    x = residual(P, tokens, n_layers, n_heads, act_fn, eps, packed)
    m, b, p, d = x.shape
    flat, where = x.reshape(m, b * p, d), at.reshape(m, b * p)
    return [flat[i].index_select(0, where[i].nonzero()[:, 0]) for i in range(m)]


def _chunked_linear(ctx, x: Float[Tensor, "n d"], w: Float[Tensor, "d v"], b: Float[Tensor, " v"],
                    chunk: int, loss_grad) -> Float[Tensor, ""]:
    """The forward shared by ``LinearCrossEntropy`` and ``LinearKL``: the logits ``x @ W + b``
    in chunks of rows; ``loss_grad(start, logits)`` returns a chunk's summed loss and that
    loss's gradient with respect to its logits (it may overwrite them). The gradients of
    ``x``, ``W`` and ``b`` are accumulated chunk by chunk and saved on ``ctx`` for
    ``_ChunkedLinear.backward``; returns the mean loss over rows."""
    n = max(len(x), 1)
    loss = x.new_zeros(())
    gx, gw, gb = torch.empty_like(x), torch.zeros_like(w), torch.zeros_like(b)
    for s in range(0, len(x), chunk):
        xs = x[s:s + chunk]  # [c d]
        part, grad = loss_grad(s, torch.addmm(b, xs, w))  # grad: [c v]
        loss = loss + part
        torch.mm(grad, w.T, out=gx[s:s + chunk])
        gw.addmm_(xs.T, grad)
        gb += grad.sum(0)
    ctx.save_for_backward(gx, gw, gb)
    ctx.n = n
    return loss / n


class _ChunkedLinear(torch.autograd.Function):
    """A loss of ``x @ W + b`` whose forward (``_chunked_linear``) saved its gradients: the
    backward only scales them (no gradient for the inputs after ``b``)."""

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        gx, gw, gb = ctx.saved_tensors
        scale = g / ctx.n
        return (gx * scale, gw * scale, gb * scale) + (None,) * (len(ctx.needs_input_grad) - 3)


class LinearCrossEntropy(_ChunkedLinear):
    """Mean cross-entropy of the logits ``x @ W + b`` against ``target``, computed in chunks
    of rows with its gradient, so the [rows, vocabulary] logits are never held whole and
    no log-softmax backward pass runs (a tiny model's unembedding and softmax are a large
    share of its step). ``tests/studies/test_stack.py`` checks it against
    ``F.cross_entropy`` and autograd."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor, target: Tensor,  # type: ignore[override]
                chunk: int = 512) -> Tensor:
        def loss_grad(s: int, logits: Tensor) -> tuple[Tensor, Tensor]:
            ts = target[s:s + chunk]
            lse = logits.logsumexp(-1)
            part = (lse - logits.gather(1, ts[:, None])[:, 0]).sum()
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place
            grad[torch.arange(len(ts)), ts] -= 1
            return part, grad

        return _chunked_linear(ctx, x, w, b, chunk, loss_grad)


def linear_cross_entropy(x: Float[Tensor, "n d"], w: Float[Tensor, "d v"],
                         b: Float[Tensor, " v"], target: Int[Tensor, " n"]) -> Float[Tensor, ""]:
    """``F.cross_entropy(x @ w + b, target)`` (0 for no rows), chunked and fused."""
    return LinearCrossEntropy.apply(x, w, b, target)


class LinearKL(_ChunkedLinear):
    """Mean over rows of KL(teacher || softmax(x @ W + b)), the teacher given as
    log-probabilities (``target[rows]``), computed in chunks of rows with its gradient, as
    ``LinearCrossEntropy`` does: the students' distillation loss without holding the
    [rows, k] logits, their log-softmax, the gathered teacher rows or the KL's intermediates
    for a backward pass. ``tests/studies/test_stack.py`` checks it against ``D.kl`` of
    ``F.log_softmax`` and autograd.

    Per row, with p = exp(target) and q = softmax(logits): KL = sum p (target - log q), and
    its gradient with respect to the logits is q sum(p) - p."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor, target: Tensor,  # type: ignore[override]
                rows: Tensor, chunk: int = 512) -> Tensor:
        def loss_grad(s: int, logits: Tensor) -> tuple[Tensor, Tensor]:
            ts = target[rows[s:s + chunk]]  # [c k]
            p = ts.exp()
            # F.log_softmax, as the teacher tables are computed: a student at its teacher's
            # weights reads exactly its rows and its loss is exactly 0 (no signal)
            logq = F.log_softmax(logits, -1)
            part = (p * (ts - logq)).sum()
            return part, logq.exp_().mul_(p.sum(-1, keepdim=True)).sub_(p)  # in place: [c k]

        return _chunked_linear(ctx, x, w, b, chunk, loss_grad)


def linear_kl(x: Float[Tensor, "n d"], w: Float[Tensor, "d k"], b: Float[Tensor, " k"],
              target: Float[Tensor, "r k"], rows: Int[Tensor, " n"]) -> Float[Tensor, ""]:
    """``D.kl(target[rows], F.log_softmax(x @ w + b, -1)).mean()`` (0 for no rows), chunked
    and fused."""
    return LinearKL.apply(x, w, b, target, rows)


def per_model_mean(values: Float[Tensor, " n"], model: Int[Tensor, " n"], m: int) \
        -> Float[Tensor, " m"]:
    """The mean of ``values`` over each model's rows (0 for a model without rows)."""
    total = torch.zeros(m, dtype=values.dtype).index_add(0, model, values)
    count = torch.zeros(m, dtype=values.dtype).index_add(0, model, torch.ones_like(values))
    return total / count.clamp(min=1)


def next_token_rows(tokens: Int[Tensor, "m b p"], mask: Bool[Tensor, "m b p"]) \
        -> tuple[Bool[Tensor, "m b p"], Int[Tensor, " n"]]:
    """The positions that predict a next token (``mask`` without the last column) and their
    targets, in ``logits_at``'s row order."""
    at = mask.clone()
    at[..., -1] = False
    nxt = torch.roll(tokens, -1, -1)
    return at, nxt[at]


def pack(docs: list[Int[Tensor, "b w"]], pad: int, width: int = 0) \
        -> tuple[Int[Tensor, "m r p"], Int[Tensor, "m r p"], Int[Tensor, "m r p"],
                 Int[Tensor, "m r p"], Bool[Tensor, "m r p"]]:
    """Pack each model's right-padded batch of documents into rows of ``width`` tokens (at
    least the longest document), first fit decreasing, so that little compute goes to padding.

    Returns (tokens, pos, segment, target, loss): the packed tokens; each token's position in
    its document and its document's index in the batch (``residual``'s ``packed``; padding is
    segment -1); the token each position predicts and where a loss is taken. These are the
    positions and targets of the padded batch's next-token loss (``next_token_rows``): every
    document token but one in its batch's last column predicts the next column, which after
    a document's last token is ``pad``. Rows are padded to the most rows of any model."""
    width = max(width, *(int((d != pad).sum(1).max()) for d in docs))
    out = []
    for d in docs:
        lengths = (d != pad).sum(1).numpy()
        row = np.zeros(len(lengths), dtype=np.int64)  # each document's row and offset
        offset = np.zeros(len(lengths), dtype=np.int64)
        room: list[int] = []
        for i in np.argsort(-lengths, kind="stable"):
            n = int(lengths[i])
            r = next((r for r, free in enumerate(room) if free >= n), len(room))
            if r == len(room):
                room.append(width)
            row[i], offset[i] = r, width - room[r]
            room[r] -= n
        doc = np.repeat(np.arange(len(lengths)), lengths)  # one entry per document token
        within = np.arange(len(doc)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        dest = torch.from_numpy(row[doc] * width + offset[doc] + within)
        src = torch.from_numpy(doc * d.shape[1] + within)
        flat = d.flatten()
        size = len(room) * width
        t = torch.full((size,), pad, dtype=torch.long).index_put_((dest,), flat[src])
        pos = torch.zeros(size, dtype=torch.long).index_put_((dest,), torch.from_numpy(within))
        seg = torch.full((size,), -1, dtype=torch.long).index_put_((dest,),
                                                                    torch.from_numpy(doc))
        # the padded batch's next column: pad after a document's last token; a full-width
        # document's last token takes no loss, so what follows it there is never read
        nxt = flat[(src + 1).clamp(max=len(flat) - 1)]
        tgt = torch.full((size,), pad, dtype=torch.long).index_put_((dest,), nxt)
        loss = torch.zeros(size, dtype=torch.bool).index_put_(
            (dest,), torch.from_numpy(within < d.shape[1] - 1))
        out.append([x.view(len(room), width) for x in (t, pos, seg, tgt, loss)])
    n_rows = max(len(o[0]) for o in out)
    fills = (pad, 0, -1, pad, False)
    return tuple(torch.stack([  # type: ignore[return-value]
        torch.cat([o[j], torch.full((n_rows - len(o[j]), width), fills[j], dtype=o[j].dtype)])
        for o in out]) for j in range(5))
