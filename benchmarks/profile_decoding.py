"""Where the time of one batched `extract` call goes: cProfile over batches of the test questions.

    python -m benchmarks.profile_decoding --model-dir /tmp/perf/tiny/model [--batch-size 16] [--batches 10] [--generate]

Prints milliseconds per batch (one torch thread, as the model service runs), then the share of the
profiled time spent in the parts that matter for decoding speed: the decoder (and within it Linear
layers and attention), the encoder, the grounded processor, the output layer. `--generate` profiles
decoding by `generate` instead of the greedy loop (`keyword_extractor.model.greedy`). Shares are of the whole
profiled time; profiling itself slows Python code more than torch kernels, so read them as
proportions, not as timings.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch

from keyword_extractor.common.cli import add_batch_size, add_labelled_file, add_model_dir
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor

# (label, file suffix, function name) of pstats entries whose cumulative time is reported
COMMON_PARTS = (
    ("Linear layers (encoder, decoder, output layer)", "~", "<built-in method torch._C._nn.linear>"),
    ("attention kernels", "~", "<built-in method torch._C._nn.scaled_dot_product_attention>"),
)
GENERATE_PARTS = (
    ("generate (all of decoding)", "generation/utils.py", "generate"),
    ("model forward, every decoder step", "modeling_bart.py", "forward"),
    ("encoder", "generation/utils.py", "_prepare_text_encoder_decoder_kwargs_for_generation"),
    *COMMON_PARTS,
    ("logits processors", "generation/logits_process.py", "__call__"),
    ("grounded processor", "keyword_extractor/model/grounded.py", "__call__"),
)
LOOP_PARTS = (
    ("greedy loop (all of decoding)", "keyword_extractor/model/greedy.py", "decode"),
    ("decoder, every step", "modeling_bart.py", "forward"),
    *COMMON_PARTS,
    ("grounded tokens allowed per row", "keyword_extractor/model/grounded.py", "allowed_tokens"),
    ("choosing the next tokens (output layer, masks, argmax)", "keyword_extractor/model/greedy.py", "_choose"),
)


def cumulative_seconds(stats: pstats.Stats, suffix: str, name: str) -> float:
    """The largest cumulative time among entries matching (file suffix, function): the outermost call."""
    found = 0.0
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        if filename.endswith(suffix) and function == name:
            found = max(found, cumulative)
    return found


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_dir(parser)
    add_labelled_file(parser)
    add_batch_size(parser, 16, help="questions per extract call")
    parser.add_argument("--batches", type=int, default=10, help="calls timed and profiled")
    parser.add_argument("--generate", action="store_true", help="decode with generate(), not the greedy loop")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    questions = load_pairs(args.data)["query"].tolist()[: args.batch_size * args.batches]
    batches = [questions[i : i + args.batch_size] for i in range(0, len(questions), args.batch_size)]
    extractor = KeywordExtractor(args.model_dir, device="cpu", greedy_loop=not args.generate)
    parts = LOOP_PARTS if extractor.greedy else GENERATE_PARTS
    extractor.extract(batches[0])  # warm-up
    began = time.perf_counter()
    for batch in batches:
        extractor.extract(batch)
    per_batch_ms = 1e3 * (time.perf_counter() - began) / len(batches)

    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        extractor.extract(batch)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    decoded_by = "the greedy loop" if extractor.greedy else "generate()"
    batches_run = f"{len(batches)} batches, 1 torch thread, {decoded_by}"
    print(f"{per_batch_ms:.1f} ms per batch of {args.batch_size} ({batches_run})")
    shares = {}
    for label, suffix, name in parts:
        shares[label] = cumulative_seconds(stats, suffix, name) / total
        print(f"{100 * shares[label]:5.1f}%  {label}")
    return {"ms_per_batch": per_batch_ms, **shares}


if __name__ == "__main__":
    main()
