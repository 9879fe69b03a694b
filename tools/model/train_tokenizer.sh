#!/bin/bash
# Train the SentencePiece tokenizer with Debian's spm_train (package sentencepiece).
#   tools/model/train_tokenizer.sh     # reads .data/corpus/train.txt, writes .data/tok/tokenizer.model
# BPE, vocab 8192, byte fallback, digits split, identity normalization (no NFKC,
# whitespace kept as is), like Llama 2's tokenizer. unk=0, bos=1, eos=2, no pad.
# Newlines never occur inside a training "sentence" (spm_train reads lines), so "\n"
# is always encoded as the byte-fallback piece <0x0A>.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DATA="${DATA:-$ROOT/.data}"
mkdir -p "$DATA/tok"
# drop the document-separator lines (a lone 0x1e) and empty lines
grep -av -e $'^\x1e$' -e '^$' "$DATA/corpus/train.txt" > "$DATA/tok/spm_input.txt"
cd "$DATA/tok"
spm_train --input=spm_input.txt --model_prefix=tokenizer --model_type=bpe \
  --vocab_size=8192 --character_coverage=0.9999 --byte_fallback=true \
  --split_digits=true --normalization_rule_name=identity --remove_extra_whitespaces=false \
  --allow_whitespace_only_pieces=true --add_dummy_prefix=true --max_sentence_length=8192 \
  --input_sentence_size=2000000 --shuffle_input_sentence=true --random_seed=1234 \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=2 2>&1 | tail -3
rm -f spm_input.txt
ls -l tokenizer.model
sha256sum tokenizer.model
