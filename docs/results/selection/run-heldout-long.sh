#!/bin/bash
cd "$(dirname "$0")/../../.."
A=build/tools/adamas/adamas
R=docs/results/selection
P='full;oracle;adamas;adamas:thresholds=calibrated;adamas:dist=ip;adamas:thresholds=calibrated,dist=ip;quest;streaming'
date
$A eval ppl --model models/adamas-tiny-32k --out-dir $R/ppl-long --text tools/eval/data/long_excerpt.txt --skip-docs 2 --docs 2 --prefix 16384 --tokens 2048 --bucket 512 \
  --policies "$P" --budgets 64,128,256 --jobs 2 | tee $R/ppl-long/ppl-long.log
date
