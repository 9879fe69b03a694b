#!/bin/bash
cd "$(dirname "$0")/../../.."
A=build/tools/adamas/adamas
R=docs/results/selection
P='full;oracle;adamas;adamas:thresholds=calibrated;adamas:dist=ip;adamas:thresholds=calibrated,dist=ip;quest;streaming'
date
$A eval passkey --keys 4 --out-dir $R/multikey-8k --lengths 4096,8192 --depths 0,0.25,0.5,0.75,1 --trials 2 --seed 777 --jobs 2 \
  --policies "$P" --budgets 16,32,64,128 | tee $R/multikey-8k/multikey-8k.log
date
$A eval passkey --keys 4 --model models/adamas-tiny-32k --out-dir $R/multikey-32k --lengths 16384,32768 --depths 0,0.5,1 --trials 1 --seed 777 --jobs 2 \
  --policies "$P" --budgets 32,64,128,256 | tee $R/multikey-32k/multikey-32k.log
date
