"""SAE training throughput: interp.sae.train vs sae-lens's SAETrainer called directly.

    python -m benchmarks.sae [--samples 100000] [--reps 5]

Random activations (d_in 64); both sides train the same BatchTopK SAE (d_sae 512, k 8)
with the same trainer settings; the direct side feeds a plain iterator of random batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.training.sae_trainer import SAETrainer

from benchmarks.common import Context, Measured, Row, paired, seconds
from interp.analysis import sae


def direct(acts: torch.Tensor, cfg: sae.SAEConfig) -> None:
    """sae-lens alone: the config interp.sae.train builds, fed random rows."""
    torch.manual_seed(cfg.seed)
    d_in = acts.shape[1]
    sae_cfg = BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=cfg.expansion * d_in, k=cfg.k,
                                         dtype="float32", device="cpu")
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.samples, train_batch_size_samples=cfg.batch, lr=cfg.lr,
        lr_end=cfg.lr, dead_feature_window=200, feature_sampling_window=200,
        n_batches_for_norm_estimate=20, logger=LoggingConfig(log_to_wandb=False))

    def batches() -> Iterator[torch.Tensor]:
        while True:
            yield acts[torch.randint(len(acts), (cfg.batch,))]

    SAETrainer(trainer_cfg, BatchTopKTrainingSAE(sae_cfg), batches()).fit()


def measure(reps: int, rows: int = 50_000, samples: int = 100_000) -> Measured:
    acts = torch.randn(rows, 64, generator=torch.Generator().manual_seed(0))
    cfg = sae.SAEConfig(samples=samples, batch=1024)
    direct(acts, sae.SAEConfig(samples=cfg.batch, batch=cfg.batch))  # warm-up
    base, ours = paired(reps, "sae", lambda: samples / seconds(lambda: direct(acts, cfg)),
                        lambda: samples / seconds(lambda: sae.train(acts, cfg)))
    return Measured(base, ours, "tok/s",
                    note=f"random activations ({rows:,} x 64), {samples:,} training samples "
                         f"per run, batch {cfg.batch}, d_sae {cfg.expansion * 64}, k {cfg.k:g}, "
                         f"lr {cfg.lr:g}; the toolkit's time includes its conversion to the "
                         "inference SAE.")


def run(ctx: Context) -> Measured:
    return measure(ctx.reps, *((10_000, 10_240) if ctx.quick else (50_000, 100_000)))


ROW = Row("sae", "SAE training throughput: interp.sae.train vs sae-lens SAETrainer directly",
          "toolkit / direct", "~1 (no hard goal)", run)


def main() -> None:
    from benchmarks.table import standalone

    standalone(ROW, measure, samples=100_000)


if __name__ == "__main__":
    main()
