#!/bin/bash
# Runs on the GPU machine (through the device tool; see README.md): train (or resume),
# export to Hugging Face format, evaluate with transformers. Everything lands in $OUT
# (at most 8 files): run.log, train_log.csv, ckpt.json, config.json, results.json and
# model.safetensors.part0..2 (cat them to get model.safetensors).
#   tools/model/device_run.sh TRAIN_SECONDS [train.py args, e.g. --resume DIR]
# Environment: DATA (carry folder, default .data/carry), CHECK_ARGS (extra check_passkey.py
# arguments, e.g. "--lengths 8192,16384,32768" for a 32K model).
set -o pipefail
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to a writable folder}"
TS=${1:-390}; shift
M=tools/model
DATA=${DATA:-.data/carry}
LOG=$OUT/run.log
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  } 2>&1 | tee $LOG
python3 $M/train.py --data $DATA --out $OUT --train-seconds $TS --deadline $((TS+25)) "$@" 2>&1 | tee -a $LOG
cat $OUT/train_summary.json >> $LOG; rm -f $OUT/train_summary.json
python3 $M/export_hf.py --ckpt $OUT --tokenizer $DATA/tokenizer.model --out .ckpt/hf 2>&1 | tee -a $LOG
if [ -s .ckpt/hf/model.safetensors ]; then
  cp .ckpt/hf/config.json $OUT/
  split -b 15M -d -a 1 .ckpt/hf/model.safetensors $OUT/model.safetensors.part
  sha256sum .ckpt/hf/model.safetensors | tee -a $LOG
  rm -f $OUT/ckpt.pt.part*
fi
python3 $M/check_passkey.py --model .ckpt/hf --heldout $DATA/heldout.u16.xz --json $OUT/results.json $CHECK_ARGS 2>&1 | tee -a $LOG
ls -l $OUT | tee -a $LOG
