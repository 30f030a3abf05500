"""Sparse autoencoders on cached activations, trained with sae-lens and kept in the store.

The architecture is sae-lens's BatchTopK (saved, as sae-lens does, as a JumpReLU SAE for
inference). Training reads a tensor of activations rather than a language model, so the
same activation cache that the align report fills feeds it; wandb stays off.
Quality is measured with sae-lens's own explained-variance calculator on held-out rows.

The toolkit's SAEs are also written in sae-lens's own on-disk layout (``save_dir``: the
``cfg.json`` and weights that ``SAE.save_model`` writes), so ``SAE.load_from_disk`` reads
them; ``load_pretrained`` reads SAEs given on the command line (``--sae DIR`` or
``--sae RELEASE:SAE_ID``) for the fingerprint instead of training them.

Owns: ``SAEConfig``, SAE training and its store entries, ``save_dir``, ``load_pretrained``.
Must not import: reports, the CLIs.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from jaxtyping import Float
from sae_lens import SAE, BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.evals import ExplainedVarianceCalculator
from sae_lens.training.sae_trainer import SAETrainer
from torch import Tensor

from interp.errors import ConfigError, UsageError
from interp.storage.activations import digest
from interp.storage.store import Store
from interp.validation import check_range, check_seed, check_types


@dataclasses.dataclass(frozen=True)
class SAEConfig:
    expansion: int = 8  # d_sae = expansion * d_in
    k: float = 8.0  # BatchTopK: active features per token on average
    samples: int = 300_000  # training tokens (the cached rows, cycled)
    batch: int = 1024
    lr: float = 1e-3
    holdout: float = 0.1  # rows kept out of training to measure quality
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            check_types(self)
            check_range(self, ("expansion", "batch", "samples"), 1)
            check_range(self, ("k", "lr"), 0, low_open=True)
            check_range(self, ("holdout",), 0, 1, low_open=True)
            check_seed("seed", self.seed)
        except ConfigError as e:
            raise ConfigError(f"invalid SAE config: {e}") from None
        if self.samples < self.batch or self.k > 4096 * self.expansion:
            raise ValueError(f"invalid SAE config {self}: need samples >= batch and k at most "
                             "the SAE width")

    def validate(self) -> None:
        self.__post_init__()


def _rows(acts: Float[Tensor, "n d"], batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:  # sae-lens asks for batches until it has seen `samples` rows
        for idx in torch.randperm(len(acts), generator=g).split(batch):
            if len(idx) == batch:
                yield acts[idx]


def split(acts: Float[Tensor, "n d"], cfg: SAEConfig) -> tuple[Tensor, Tensor]:
    """(train, held-out) rows, a fixed shuffle of the cache."""
    perm = torch.randperm(len(acts), generator=torch.Generator().manual_seed(cfg.seed + 1))
    n_hold = max(1, int(len(acts) * cfg.holdout))
    return acts[perm[n_hold:]], acts[perm[:n_hold]]


def check(acts: Float[Tensor, "n d"], cfg: SAEConfig) -> None:
    cfg.validate()
    if acts.ndim != 2 or len(acts) < cfg.batch:
        raise ValueError(f"need activations [n >= {cfg.batch}, d_in], got {tuple(acts.shape)}; "
                         "flatten positions and capture more tokens")


def train(acts: Float[Tensor, "n d"], cfg: SAEConfig, hook: str = "") -> SAE:
    """A BatchTopK SAE trained with sae-lens's SAETrainer on ``acts``; returns the inference
    SAE (JumpReLU with the learned threshold)."""
    check(acts, cfg)
    torch.manual_seed(cfg.seed)
    d_in = acts.shape[1]
    sae_cfg = BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=cfg.expansion * d_in, k=cfg.k,
                                         dtype="float32", device="cpu")
    sae_cfg.metadata.hook_name = hook
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.samples, train_batch_size_samples=cfg.batch, lr=cfg.lr,
        lr_end=cfg.lr, dead_feature_window=200, feature_sampling_window=200,
        n_batches_for_norm_estimate=20, logger=LoggingConfig(log_to_wandb=False))
    trained = SAETrainer(trainer_cfg, BatchTopKTrainingSAE(sae_cfg),
                         _rows(acts, cfg.batch, cfg.seed)).fit()
    return to_inference(trained)


def to_inference(trained: BatchTopKTrainingSAE) -> SAE:
    state = trained.state_dict()
    trained.process_state_dict_for_saving_inference(state)
    sae = SAE.from_dict(trained.cfg.get_inference_sae_cfg_dict())
    sae.load_state_dict(state)
    return sae.eval()


@torch.no_grad()
def quality(sae: SAE, acts: Float[Tensor, "n d"]) -> dict[str, float]:
    """sae-lens's explained variance, mean L0, and the fraction of features never active."""
    ev = ExplainedVarianceCalculator()
    feats = sae.encode(acts)
    ev.add_batch(sae_output=sae.decode(feats), hidden_acts=acts)
    return {"explained_variance": ev.compute(), "l0": float((feats != 0).sum(-1).float().mean()),
            "dead_fraction": float(((feats != 0).sum(0) == 0).float().mean())}


def cached(store: Store, acts: Float[Tensor, "n d"], cfg: SAEConfig, hook: str) \
        -> tuple[SAE, dict]:
    """The SAE for these activations and config, trained once; (sae, quality)."""
    check(acts, cfg)  # before the held-out split, so the error names the caller's shape
    return cached_by(store, {"acts": digest(acts)}, lambda: acts, cfg, hook)


def cached_by(store: Store, names: dict, rows: Callable[[], Float[Tensor, "n d"]],
              cfg: SAEConfig, hook: str) -> tuple[SAE, dict]:
    """``cached`` keyed by ``names`` (what determines the activations, e.g. the keys of the
    activation entries they come from), so that a hit reads no activations; ``rows()``
    gives them when the SAE must be trained."""
    key = {**names, "hook": hook, "sae": cfg}

    def build():
        acts = rows()
        check(acts, cfg)
        train_rows, held = split(acts, cfg)
        sae = train(train_rows, cfg, hook)
        return ({"sae": sae.state_dict()},
                {"cfg": sae.cfg.to_dict(), "quality": quality(sae, held)})

    entry = store.get_or_build("sae", key, build)
    sae = SAE.from_dict(entry.meta["cfg"])
    sae.load_state_dict(entry.load("sae"))
    return sae.eval(), entry.meta["quality"]


def save_dir(sae: SAE, dest: Path) -> Path:
    """``dest``: the SAE in sae-lens's layout (``SAE.load_from_disk(dest)`` reads it),
    written to a temporary sibling and renamed into place (an existing one is replaced)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        sae.save_model(tmp)
        old = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.old"
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _sae_dirs(path: Path) -> list[Path]:
    if (path / "cfg.json").is_file():
        return [path]
    return sorted(p for p in path.iterdir() if (p / "cfg.json").is_file()) \
        if path.is_dir() else []


def load_pretrained(specs: list[str], hooks: list[str], device: str = "cpu") \
        -> dict[str, SAE]:
    """hook -> SAE for each ``--sae``: a directory in sae-lens's layout (or a directory of
    them), read with ``SAE.load_from_disk``, or ``RELEASE:SAE_ID`` read with
    ``SAE.from_pretrained``. Each SAE is placed at the hook its config names
    (``metadata.hook_name``), which must be one of ``hooks``."""
    out: dict[str, SAE] = {}
    for spec in specs:
        path = Path(spec)
        if path.exists():
            dirs = _sae_dirs(path)
            if not dirs:
                raise UsageError(f"--sae {spec}: no cfg.json in it or its subdirectories; pass "
                                 "a directory written by sae-lens's SAE.save_model")
            try:
                loaded = [SAE.load_from_disk(str(d), device=device) for d in dirs]
            except Exception as e:
                raise UsageError(f"--sae {spec}: sae-lens cannot load it ({str(e)[:150]})") \
                    from None
        elif ":" in spec:
            release, sae_id = spec.split(":", 1)
            try:
                loaded = [SAE.from_pretrained(release, sae_id, device=device)]
            except Exception as e:
                first = " ".join(str(e).split())[:150] or type(e).__name__
                raise UsageError(f"--sae {spec}: sae-lens could not load release {release!r} "
                                 f"id {sae_id!r} ({first}); check the names in sae-lens's "
                                 "pretrained_saes.yaml, or download it and pass --sae DIR") \
                    from None
        else:
            raise UsageError(f"--sae {spec}: no such directory; pass a directory saved by "
                             "sae-lens or RELEASE:SAE_ID")
        for sae in loaded:
            hook = sae.cfg.metadata.hook_name
            if hook not in hooks:
                raise UsageError(f"--sae {spec}: the SAE reads {hook!r}, not one of this "
                                 f"report's hooks ({', '.join(hooks)})")
            out[hook] = sae.eval()
    return out
