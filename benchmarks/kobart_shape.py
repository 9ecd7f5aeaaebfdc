"""A keyword model directory with the KoBART-base shape and random weights, built offline.

    python -m benchmarks.kobart_shape --output /tmp/perf/kobart-shape

Speed and memory of serving depend on the shape (d_model 768, 6+6 layers, 16 heads, ffn 3072,
vocabulary 30000), not on the weights, so a randomly initialised model stands in for KoBART where
nothing can be downloaded. It is written with `write_model_dir`, the same code path as a trained
model, and is served, imported and benchmarked like one. Its keywords are meaningless: use it for
speed and memory only, never for F1.

Two things keep the comparison honest:

- The tokenizer is a BPE trained on the training questions with an 8k vocabulary (a proxy for
  KoBART's subword granularity on Korean, as in `benchmarks.train_throughput`); the model keeps
  KoBART's 30000-entry vocabulary, so the output layer costs what KoBART's does.
- A random model almost never writes </s>, so every decoder would run to its length cap (512 tokens
  for the original approach). The stored generation config adds an exponentially growing bonus to
  </s> after `--typical-length` tokens (`exponential_decay_length_penalty`, honoured by every
  `generate` call, with or without beams), so answers have about the length of real keyword lists
  and the benchmark measures decoding, not a runaway loop.

It is stored with int8 allowed (`--int8 allowed`, the default), as training's default (`--quantize
auto`) stores a model whose int8 validation F1 is within a point of fp32's; a random model has no F1 to
check, so the permission is given here. Whether int8 is then used is decided where it is loaded: only
where it is measured faster than fp32 (`keyword_extractor.inference.serving_precision`). `--int8 not-allowed`
builds a model that always serves fp32 (as does `KEYWORD_QUANTIZE=off` at serving time).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import BartConfig, BartForConditionalGeneration

from benchmarks.train_throughput import SHAPES
from keyword_extractor.common.paths import PROJECT_ROOT as ROOT
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.model.artifact import InferenceSettings, max_new_tokens_for, write_model_dir
from keyword_extractor.model.encoding import EncodingSettings, encode_targets, target_text
from keyword_extractor.model.tiny import kobart_conventions, train_tokenizer

BASE_MODEL_LABEL = "kobart-base-shape (random weights)"


def build_kobart_shape(
    output: str | Path,
    train: str | Path = ROOT / "data" / "train.tsv",
    tokenizer_vocab: int = 8000,
    typical_length: int = 10,
    seed: int = 0,
    int8_allowed: bool = True,
    shape: str = "kobart-base",
) -> Path:
    """Write the model directory; returns its path."""
    frame = load_pairs(train)
    tokenizer = train_tokenizer(frame["query"].tolist(), vocab_size=tokenizer_vocab)
    torch.manual_seed(seed)
    config = BartConfig(**SHAPES[shape], **kobart_conventions(tokenizer))
    model = BartForConditionalGeneration(config).eval()
    model.generation_config.exponential_decay_length_penalty = (typical_length, 1.6)
    targets = encode_targets(
        tokenizer, [target_text(cell) for cell in frame["keyword"]], EncodingSettings.from_tokenizer(tokenizer)
    )
    settings = InferenceSettings(
        max_new_tokens=max_new_tokens_for([len(ids) for ids in targets], cap=InferenceSettings.max_new_tokens),
        num_beams=1,
        base_model=BASE_MODEL_LABEL,
        int8_allowed=int8_allowed,
    )
    return write_model_dir(model, tokenizer, settings, output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="model directory to write (replaced if it exists)")
    parser.add_argument("--train", default=str(ROOT / "data" / "train.tsv"), help="questions for the tokenizer")
    parser.add_argument("--tokenizer-vocab", type=int, default=8000, help="BPE vocabulary of the tokenizer")
    parser.add_argument("--typical-length", type=int, default=10, help="tokens after which </s> becomes likely")
    parser.add_argument(
        "--int8",
        choices=("allowed", "not-allowed"),
        default="allowed",
        help="whether int8 may serve it on CPU (default allowed, what `train --quantize auto` stores when F1 "
        "allows); where it is allowed, loading uses it only if this CPU runs it faster than fp32",
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="kobart-base", help="tiny: dry runs only")
    args = parser.parse_args(argv)
    path = build_kobart_shape(
        args.output,
        args.train,
        args.tokenizer_vocab,
        args.typical_length,
        int8_allowed=args.int8 == "allowed",
        shape=args.shape,
    )
    print(path)


if __name__ == "__main__":
    main()
