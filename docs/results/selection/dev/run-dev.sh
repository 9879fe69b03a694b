#!/bin/bash
cd "$(dirname "$0")/../../../.."
A=build/tools/adamas/adamas
P='full;oracle;adamas;adamas:thresholds=calibrated;adamas:thresholds=calibrated,dist=l2;adamas:dist=ip;adamas:thresholds=calibrated,dist=ip;adamas:thresholds=calibrated,dist=ip,keep_sinks=2,keep_recent=8;adamas:thresholds=calibrated,dist=ip,bits=3'
date
$A eval ppl --out-dir docs/results/selection/dev/ppl-id --text tools/eval/data/heldout_excerpt.txt --docs 1 --prefix 2048 --tokens 2048 --bucket 512 --policies "$P" --budgets 64,128 --jobs 2 | tee docs/results/selection/dev/ppl-id.log
date
$A eval ppl --out-dir docs/results/selection/dev/ppl-ood --text tools/eval/data/ood_excerpt.txt --docs 1 --prefix 2048 --tokens 2048 --bucket 512 --policies "$P" --budgets 64,128 --jobs 2 | tee docs/results/selection/dev/ppl-ood.log
date
$A eval passkey --out-dir docs/results/selection/dev/passkey --lengths 4096 --depths 0.1,0.5,0.9 --trials 2 --seed 1 --jobs 2 \
  --policies 'full;adamas;adamas:thresholds=calibrated;adamas:thresholds=calibrated,dist=ip;adamas:thresholds=calibrated,dist=ip,keep_sinks=2,keep_recent=8;quest;streaming' \
  --budgets 16,32,64 | tee docs/results/selection/dev/passkey.log
