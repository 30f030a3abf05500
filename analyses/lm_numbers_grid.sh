#!/usr/bin/env bash
# The lm-numbers must-show table on the built-in Qwen2 base (the "small" preset: 3,000
# prompts, at most 2,000 kept, the paper's LoRA students), 3 seeds, then a grid of student
# settings (the data stages are cache hits: their keys hold no student setting): learning
# rate, rank and epochs, full fine-tuning, logit distillation (the teacher's next-token
# distributions; its control is a different-trait teacher's student) with the prompted or
# a LoRA teacher (also with sampled tokens: which factor carries the trait), and data size
# (the paper's 10,000 kept rows). Each run writes
# runs/lm-numbers-grid/<name>/report.md; the table collects them.
# Usage: OMP_NUM_THREADS=1 INTERP_CACHE=... [PYTHON=...] bash analyses/lm_numbers_grid.sh [names]
set -euo pipefail
OUT=runs/lm-numbers-grid
PY=${PYTHON:-.venv/bin/python}
declare -A GRID=(
  [paper]=""
  [lora_lr3e-3]="--set lr=3e-3 --set roles=student,control"
  [lora_r64_lr3e-3_10ep]="--set lora_r=64 --set lora_alpha=64 --set lr=3e-3 --set epochs=10 --set roles=student,control"
  [full_lr1e-3]="--set student_kind=full --set lr=1e-3 --set roles=student,control"
  [logit_lora]="--set student_loss=logit"
  [logit_full_lr1e-3]="--set student_loss=logit --set student_kind=full --set lr=1e-3"
  [logit_full_lr1e-3_lora_teacher]="--set teacher_kind=lora --set student_loss=logit --set student_kind=full --set lr=1e-3"
  [paper_lora_teacher]="--set teacher_kind=lora --set roles=student,control"
  [full_lr1e-3_lora_teacher]="--set teacher_kind=lora --set student_kind=full --set lr=1e-3"
  [lora_lr3e-3_lora_teacher]="--set teacher_kind=lora --set lr=3e-3"
  [lora_r64_lr3e-3_10ep_lora_teacher]="--set teacher_kind=lora --set lora_r=64 --set lora_alpha=64 --set lr=3e-3 --set epochs=10"
  [lora_r64_lr3e-3_10ep_lora_teacher_r8]="--set teacher_kind=lora --set teacher_lora_r=8 --set teacher_lora_alpha=8 --set lora_r=64 --set lora_alpha=64 --set lr=3e-3 --set epochs=10"
  [logit_lora_lora_teacher]="--set teacher_kind=lora --set student_loss=logit"
  [data10k_lora_lr3e-3]="--set n_prompts=12000 --set dataset_size=10000 --set lr=3e-3 --set roles=student,control"
)
names=("${@:-paper lora_lr3e-3 full_lr1e-3 lora_r64_lr3e-3_10ep logit_lora logit_full_lr1e-3 logit_full_lr1e-3_lora_teacher paper_lora_teacher full_lr1e-3_lora_teacher logit_lora_lora_teacher
  lora_lr3e-3_lora_teacher lora_r64_lr3e-3_10ep_lora_teacher
  lora_r64_lr3e-3_10ep_lora_teacher_r8 data10k_lora_lr3e-3}")
for name in ${names[@]}; do
  echo "== $name: ${GRID[$name]}"
  "$PY" -m interp.study run lm-numbers --preset small --seeds 3 \
      ${GRID[$name]} --out "$OUT/$name"
done
"$PY" analyses/lm_numbers_table.py "$OUT" > "$OUT/table.md"
cat "$OUT/table.md"
