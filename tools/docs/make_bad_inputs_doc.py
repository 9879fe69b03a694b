#!/usr/bin/env python3
"""Writes docs/bad-inputs.md: the command-line cases from tests/cli/cli_test.cc (kBadInputs), then
the file, runtime, sampling and tokenizer cases below, each naming its test.
Usage: python3 tools/docs/make_bad_inputs_doc.py  (from the repository root)"""
import re

MORE = [('Results', '`adamas bench --csv old.csv … --policy bogus` after `old.csv` was written', 'fails; `old.csv` keeps its earlier content, no temporary file is left', 'CliBadInput.FailedRunsKeepTheEarlierResult'), ('Results', '`adamas recall --csv old.csv … --policies bogus`', 'the same', 'CliBadInput.FailedRunsKeepTheEarlierResult'), ('Results', 'a run that succeeds over an earlier result', 'the result replaces it whole', 'CliBadInput.ASuccessfulRunReplacesTheResult'), ('Runtime', 'a prompt longer than max_position_embeddings', "`prefill: sequence 0 would reach position 29, beyond the model's max_position_embeddings (24)`; `generate`: `the prompt has N tokens, beyond …: shorten it, or pass --allow-beyond-context`", 'RuntimeLimits.PositionsBeyondTheContextAreRefused'), ('Runtime', 'decoding past max_position_embeddings', "`decode: sequence 1 would reach position 24 …`; `generate` stops there with `stopped at the model's context`", 'RuntimeLimits.PositionsBeyondTheContextAreRefused'), ('Runtime', 'one NaN in `model.layers.1.self_attn.k_proj.weight`', "`the checkpoint's model.layers.1.self_attn.k_proj.weight holds a non-finite value (NaN or Inf) at row …, column …`", 'RuntimeLimits.NonFiniteWeightsAreRefusedAtLoad'), ('Runtime', '+Inf in a norm vector (f32 path)', 'the same, naming `post_attention_layernorm.weight` and the element', 'RuntimeLimits.NonFiniteWeightsAreRefusedAtLoad'), ('Runtime', 'finite weights whose products overflow', '`prefill: the logits of sequence 0 are not finite (token …)`', 'RuntimeLimits.NonFiniteLogitsStopTheStep'), ('Runtime', 'a token id ≥ vocab_size', '`token id 500 out of range`', 'Runtime.ErrorsAreClear'), ('Runtime', 'decode before prefill', '`… prefill it first`', 'Runtime.ErrorsAreClear'), ('Runtime', 'more tokens than the KV cache holds', '`KV cache is full …`', 'Runtime.ErrorsAreClear'), ('Runtime', 'page_size 0, −3, 5000', '`page_size (--page-size) must be in [1, 4096]`', 'Runtime.ErrorsAreClear'), ('Sampling', 'NaN among the logits', '`sample: logit nan of token 1 is not a number or +Inf`', 'Sampler.NonFiniteLogitsAreRefusedAndMaskedTokensNeverDrawn'), ('Sampling', '+Inf among the logits', '`… is not a number or +Inf`', 'Sampler.NonFiniteLogitsAreRefusedAndMaskedTokensNeverDrawn'), ('Sampling', 'every logit −Inf', '`sample: every logit is -Inf (every token masked)`', 'Sampler.NonFiniteLogitsAreRefusedAndMaskedTokensNeverDrawn'), ('Safetensors', 'two tensors whose byte ranges overlap', "`corrupt safetensors header: tensors 'a' (data_offsets […]) and 'b' ([…]) overlap`", 'Safetensors.OverlapsDuplicatesEmptyNamesAndOverflowsAreRejected'), ('Safetensors', 'a duplicate key in the JSON header', "`corrupt safetensors header: duplicate key 'x' (keys must be unique)`", 'Safetensors.OverlapsDuplicatesEmptyNamesAndOverflowsAreRejected'), ('Safetensors', 'a tensor with an empty name', '`a tensor has an empty name`', 'Safetensors.OverlapsDuplicatesEmptyNamesAndOverflowsAreRejected'), ('Safetensors', 'a shape whose element count overflows 64 bits', '`shape […] has too many elements (the count overflows 64 bits)`', 'Safetensors.OverlapsDuplicatesEmptyNamesAndOverflowsAreRejected'), ('Safetensors', 'a tensor at an offset that is not a multiple of its element size', 'accepted (the format allows it), copied once to aligned memory', 'Safetensors.UnalignedTensorsAreCopiedAligned'), ('Safetensors', 'a directory where the file should be', '`… is a directory, expected a safetensors file`', 'Weights.ShardedCheckpoint'), ('Index', 'a shard name with `..` or an absolute path', '`weight_map[\'t\'] names shard "../x", outside the model directory`', 'Weights.ShardIndexMustMatchTheShards'), ('Index', 'a tensor found in another shard than the index says', "`tensor 't' is mapped to a.safetensors but found in b.safetensors`", 'Weights.ShardIndexMustMatchTheShards'), ('Index', 'a tensor the named shard does not contain', "`tensor 't' is mapped to a.safetensors, which does not contain it`", 'Weights.ShardIndexMustMatchTheShards'), ('Weights', 'layers in the checkpoint beyond num_hidden_layers', "`checkpoint has layer 3 ('model.layers.3…') but config.json has num_hidden_layers = 3`", 'Weights.LayersBeyondTheConfigAreAnError'), ('Config', 'max_position_embeddings 10^12 (once wrapped negative)', "`field 'max_position_embeddings' must be an integer in [0, 2147483647], got 1000000000000`", 'Config.IntegerFieldsAreRangeChecked'), ('Config', 'num_hidden_layers 0 or negative', "`field 'num_hidden_layers' must be an integer in [1, 65536]`", 'Config.IntegerFieldsAreRangeChecked'), ('Config', 'hidden_size not a multiple of the heads (no head_dim)', '`hidden_size (65) must be a multiple of num_attention_heads (4) when head_dim is not given`', 'Config.IntegerFieldsAreRangeChecked'), ('Config', 'rope_theta ≤ 0, NaN or not a number', '`rope_theta must be a finite number > 0, got …`', 'Config.RealFieldsMustBeFiniteAndPositive'), ('Config', 'rms_norm_eps 0, 1e-50 or 1e300', '`rms_norm_eps must be a finite number > 0 that fits a float`', 'Config.RealFieldsMustBeFiniteAndPositive'), ('Config', 'an eos id in generation_config.json beyond int', "`field 'eos_token_id' must be an integer in [-1, 2147483647]`", 'Config.LoadsGenerationConfigEosIds'), ('Tokenizer', "tokenizer.json ids beyond the model's vocab_size", "`the tokenizer has 302 token ids (0..301) but the model's vocab_size is 256 …`", 'VocabSize.TokenizerWithIdsBeyondTheModelFailsAtLoad'), ('Tokenizer', '`add_bos_token: "yes"` in tokenizer_config.json', '`add_bos_token must be true or false`', 'TokenizerConfig.DecidesBosAndEosOfByteLevelPrompts'), ('Tokenizer', 'an unknown bos_token / eos_token', "`bos_token '<nope>' is not a token of the tokenizer`", 'TokenizerConfig.DecidesBosAndEosOfByteLevelPrompts'), ('Tokenizer', 'a character split over tokens while streaming', 'held until complete, never written in part', 'TokenStreamer.HoldsSplitCharactersAndReplacesInvalidBytesOfByteLevelTokens'), ('Tokenizer', 'invalid UTF-8 bytes in the output', 'one U+FFFD per maximal bad run, as Python\'s errors="replace"', 'Utf8.InvalidBytesBecomeOneReplacementPerMaximalSubpart'), ('Fuzzing', 'JSON nested 200 000 levels deep (safetensors header, config.json, tokenizer.json)', '`not valid JSON: nested deeper than 128 levels` (once overflowed the stack)', 'Safetensors.DeeplyNestedHeadersAreRefused'), ('Fuzzing', 'a token id written `1e30`, `4294967296` or `2.5` in tokenizer.json', 'refused: ids must be integers in [0, 2^24) (once undefined behaviour, or wrapped to id 0)', 'BpeTokenizer.TokenIdsMustBeIntegersInRange'), ('Fuzzing', 'an added token with empty content', 'ignored, as Hugging Face does (once made encode loop forever)', 'BpeTokenizer.EmptyAddedTokensAreIgnored'), ('Fuzzing', 'a tensor of shape [2^62, 2, 0]', '0 elements (its element count once overflowed int64)', 'Safetensors.EmptyTensorsWithHugeDimensionsHaveNoElements')]


def cli_rows():
    src = open("tests/cli/cli_test.cc").read()
    start = src.index("constexpr BadInput kBadInputs[] = {")
    block = src[start:src.index("\n};", start)]
    return re.findall(r'\{"((?:[^"\\]|\\.)*)",\s*\n?\s*"((?:[^"\\]|\\.)*)"\}', block)


def esc(s):
    return s.replace("|", "\\|").replace("{model}", "MODEL").replace('\\"', '"')


def main():
    out = ["""# Bad input and what Adamas says

Every row is a case a test runs for real: the command line through the `adamas` binary
(`tests/cli/cli_test.cc`, `CliBadInput.*`: non-zero exit status, never a signal, the message below,
no file left behind), the files and the runtime through the library functions the tools call
(test named in the row). MODEL is `models/adamas-tiny-8k`. Messages are quoted in part.
Generated by `tools/docs/make_bad_inputs_doc.py`.

## Command line (`tests/cli/cli_test.cc`, kBadInputs)

| # | command | what it says |
| ---: | --- | --- |"""]
    rows = cli_rows()
    for i, (a, b) in enumerate(rows, 1):
        out.append(f"| {i} | `adamas {esc(a)}` | {esc(b)} |")
    out.append("""
## Files, runtime, sampling and tokenizers

| # | input | what happens | test |
| ---: | --- | --- | --- |""")
    for j, (sec, a, b, t) in enumerate(MORE, len(rows) + 1):
        out.append(f"| {j} | {sec}: {a} | {b} | `{t}` |")
    out.append("""
Model files that were already handled before (truncated or malformed safetensors, configs and
tokenizers) keep their tests in `tests/model/safetensors_test.cc`, `config_test.cc` and
`tokenizer_test.cc`.
""")
    open("docs/bad-inputs.md", "w").write("\n".join(out))
    print(f"wrote docs/bad-inputs.md: {len(rows) + len(MORE)} rows")


if __name__ == "__main__":
    main()
