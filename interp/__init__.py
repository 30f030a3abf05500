"""interp: a mechanistic-interpretability toolkit for subliminal learning."""

import os

# sae-lens logs to wandb by default; this toolkit never does.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_DISABLED", "true")

__version__ = "0.1.0"
