#!/usr/bin/env bash
# The lm-numbers must-show table on the built-in Qwen2 base (the "small" preset: 3,000
# prompts, at most 2,000 kept, the paper's LoRA students), 3 seeds, then a grid of student
# settings on the same data (the data stages are cache hits: their keys hold no student
# setting). Each run writes runs/lm-numbers-grid/<name>/report.md; the table collects them.
# Usage: OMP_NUM_THREADS=1 INTERP_CACHE=... bash analyses/lm_numbers_grid.sh [names...]
set -euo pipefail
OUT=runs/lm-numbers-grid
declare -A GRID=(
  [paper]=""
  [lora_lr3e-3]="--set lr=3e-3 --set roles=student,control"
  [lora_r64_lr3e-3_10ep]="--set lora_r=64 --set lora_alpha=64 --set lr=3e-3 --set epochs=10 --set roles=student,control"
  [full_lr1e-3]="--set student_kind=full --set lr=1e-3 --set roles=student,control"
)
names=("${@:-paper lora_lr3e-3 full_lr1e-3 lora_r64_lr3e-3_10ep}")
for name in ${names[@]}; do
  echo "== $name: ${GRID[$name]}"
  .venv/bin/python -m interp.study run lm-numbers --preset small --seeds 3 \
      ${GRID[$name]} --out "$OUT/$name"
done
.venv/bin/python analyses/lm_numbers_table.py "$OUT" > "$OUT/table.md"
cat "$OUT/table.md"
