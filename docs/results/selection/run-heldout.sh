#!/bin/bash
# Held-out split (fixed before tuning): ID docs 3-4 of heldout_excerpt, OOD docs 3-4 of ood_excerpt,
# passkey seed 777 at 4K/8K (8K model) and seed 777 at 16K/32K (32K model).
cd "$(dirname "$0")/../../.."
A=build/tools/adamas/adamas
R=docs/results/selection
P='full;oracle;adamas;adamas:thresholds=calibrated;adamas:dist=ip;adamas:thresholds=calibrated,dist=ip;quest;streaming'
date
$A eval passkey --out-dir $R/passkey-8k --lengths 4096,8192 --depths 0,0.25,0.5,0.75,1 --trials 2 --seed 777 --jobs 2 \
  --policies "$P;adamas:thresholds=calibrated,dist=ip,keep_sinks=2,keep_recent=8" --budgets 16,32,64,128 | tee $R/passkey-8k/passkey-8k.log
date
$A eval passkey --model models/adamas-tiny-32k --out-dir $R/passkey-32k --lengths 16384,32768 --depths 0,0.5,1 --trials 1 --seed 777 --jobs 2 \
  --policies "$P" --budgets 32,64,128,256 | tee $R/passkey-32k/passkey-32k.log
date
$A eval ppl --out-dir $R/ppl-id --text tools/eval/data/heldout_excerpt.txt --skip-docs 2 --docs 2 --prefix 2048 --tokens 4096 --bucket 512 \
  --policies "$P" --budgets 32,64,128,256 --jobs 2 | tee $R/ppl-id/ppl-id.log
date
$A eval ppl --out-dir $R/ppl-ood --text tools/eval/data/ood_excerpt.txt --skip-docs 2 --docs 2 --prefix 2048 --tokens 4096 --bucket 512 \
  --policies "$P" --budgets 32,64,128,256 --jobs 2 | tee $R/ppl-ood/ppl-ood.log
date
