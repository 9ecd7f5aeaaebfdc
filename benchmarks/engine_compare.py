"""CTranslate2, the inference engine a user would reach for, side by side with the project's decoding.

    python -m benchmarks.engine_compare --model-dir artifacts/runs/<run>/train/model --output /tmp/engine.json

For each model (the trained tiny model given, and the KoBART-base shape of `benchmarks.kobart_shape`,
built offline):

1. **Conversion check**: the model is converted with CTranslate2's Transformers converter, and its
   unconstrained greedy answers are compared, question by question, with the project's own greedy
   loop (`KeywordExtractor.generate_texts`, grounding off). They must be identical: a faster engine that
   answers differently is a different model.
2. **Throughput** of that unconstrained decoding at one batch size, fp32 and int8, as ratios to the
   project's loop.
3. **Quality at the served path** (tiny model only; the KoBART shape has random weights): CTranslate2 has
   no per-step logits hook, so it cannot do grounded decoding. Its unconstrained answer is snapped to the
   question's candidate spans (keywords that are not a candidate span are dropped, as the project drops
   a keyword that max_new_tokens cut) and handed to the same span selector. Compared with the project's
   default path (morpheme-grounded decoding + span selector) on F1 and end-to-end questions/s, Kiwi
   analysis included on both sides.

Two details make the conversion exact. CTranslate2's BART loader reads `normalize_before` and
`add_final_layer_norm`, which current `BartConfig`s no longer carry (BART is post-norm: both false);
they are added to a staged copy of config.json, never to the model directory itself. The KoBART shape's
generation config adds a growing </s> bonus so random weights stop at a realistic length (see
`kobart_shape`); CTranslate2 has no such option, so for that model both sides decode a fixed number of
tokens: the bonus and the forced </s> removed, </s> suppressed (`suppress_tokens`, which both honour),
on a staged copy too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

# ctranslate2 before torch: imported after torch (whose OpenMP runtime then loads first), its decoding ran
# 3-4x slower here, answers unchanged. A serving process would have to import it first as well.
import ctranslate2  # isort: skip
import torch

from keyword_extractor.common.cli import add_labelled_file, add_model_dir
from keyword_extractor.common.cpu_info import describe_cpu
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor, decoded_keywords
from keyword_extractor.model import integrity
from keyword_extractor.model.encoding import encode_sources
from keyword_extractor.text.keywords import clean_keywords, parse_keywords
from keyword_extractor.text.metrics import score

FIXED_LENGTH_TOKENS = 12  # the KoBART shape's answers: about the length of a real keyword list


def stage_for_conversion(model_dir: Path, staging: Path, fixed_length: bool) -> Path:
    """A copy of the model directory that CTranslate2's converter reads as the same model."""
    copy = staging / model_dir.name
    shutil.copytree(model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(normalize_before=False, add_final_layer_norm=False)  # BART: post-norm, no final norm
    (copy / "config.json").write_text(json.dumps(config))
    if fixed_length:  # no </s> at all: both sides decode exactly `tokens` tokens
        generation = json.loads((copy / "generation_config.json").read_text())
        generation.pop("exponential_decay_length_penalty", None)
        generation.pop("forced_eos_token_id", None)
        generation["suppress_tokens"] = [generation["eos_token_id"]]
        (copy / "generation_config.json").write_text(json.dumps(generation))
    integrity.record(copy, ["config.json", "generation_config.json"])  # changed on purpose
    return copy


def convert(model_dir: Path, output: Path, quantization: str | None) -> Path:
    """Convert; a vocabulary shorter than the output layer (the KoBART shape's) is padded with unused tokens."""
    from ctranslate2.converters import transformers as loaders

    listed = loaders.BartLoader.get_vocabulary

    def padded(self, model, tokenizer):
        tokens = listed(self, model, tokenizer)
        return tokens + [f"<unused_{i}>" for i in range(model.config.vocab_size - len(tokens))]

    loaders.BartLoader.get_vocabulary = padded
    try:
        ctranslate2.converters.TransformersConverter(str(model_dir)).convert(
            str(output), quantization=quantization, force=True
        )
    finally:
        loaders.BartLoader.get_vocabulary = listed
    return output


def vocabulary_ids(engine_dir: Path) -> dict[str, int]:
    """The converted model's token -> id (its position in the vocabulary file, as in the model)."""
    return {token: index for index, token in enumerate(json.loads((engine_dir / "shared_vocabulary.json").read_text()))}


def _answer_ids(ids: list[int], special: set[int]) -> tuple[int, ...]:
    """A decoded row's token ids without the decoder start, </s> and padding: what both engines wrote."""
    return tuple(token for token in ids if token not in special)


def project_greedy(
    extractor: KeywordExtractor, questions: list[str], batch: int, tokens: int
) -> tuple[list[tuple[int, ...]], list[str], float]:
    """The project's greedy loop, unconstrained (what `generate_texts` runs with grounding off)."""
    assert extractor.greedy is not None, "the model's generation config rules out the greedy loop"
    special = set(extractor.tokenizer.all_special_ids)

    def run(chunk: list[str]) -> list[list[int]]:
        input_ids, attention_mask = extractor.encode(chunk)
        with torch.inference_mode():
            return extractor.greedy.decode(input_ids, attention_mask, tokens, None).tolist()

    run(questions[:batch])  # warm-up
    started = time.perf_counter()
    ids: list[list[int]] = []
    texts: list[str] = []
    for start in range(0, len(questions), batch):
        rows = run(questions[start : start + batch])
        ids += rows
        texts += extractor.tokenizer.batch_decode(rows, skip_special_tokens=True)
    return [_answer_ids(row, special) for row in ids], texts, time.perf_counter() - started


def engine_greedy(
    translator,
    ids_of: dict[str, int],
    extractor: KeywordExtractor,
    questions: list[str],
    batch: int,
    tokens: int,
    fixed: bool,
) -> tuple[list[tuple[int, ...]], list[str], float]:
    tokenizer = extractor.tokenizer
    special = set(tokenizer.all_special_ids)
    sources = [tokenizer.convert_ids_to_tokens(ids) for ids in encode_sources(tokenizer, questions, extractor.encoding)]
    generation = extractor.model.generation_config
    # forced_eos_token_id: generate() spends the last of its `tokens` steps on a forced </s>
    length = tokens - 1 if generation.forced_eos_token_id is not None else tokens
    options = {"beam_size": 1, "max_decoding_length": length, "min_decoding_length": 0}
    suppressed = generation.suppress_tokens or []  # the generation config, as generate() reads it
    if suppressed:
        options["suppress_sequences"] = [[token] for token in tokenizer.convert_ids_to_tokens(list(suppressed))]
    translator.translate_batch(sources[:batch], **options)  # warm-up
    started = time.perf_counter()
    ids: list[list[int]] = []
    texts: list[str] = []
    for start in range(0, len(sources), batch):
        results = translator.translate_batch(sources[start : start + batch], **options)
        rows = [[ids_of[token] for token in result.hypotheses[0]] for result in results]
        ids += rows
        texts += tokenizer.batch_decode(rows, skip_special_tokens=True)  # one call per batch, as the project does
    return [_answer_ids(row, special) for row in ids], texts, time.perf_counter() - started


def compare_model(
    name: str, model_dir: Path, questions: list[str], golds: list[list[str]], batch: int, threads: int, fixed: bool
) -> dict:
    extractor = KeywordExtractor(model_dir, device="cpu", quantize="off")
    tokens = FIXED_LENGTH_TOKENS if fixed else extractor.settings.max_new_tokens
    with tempfile.TemporaryDirectory(prefix="engine-compare-") as work:
        staged = stage_for_conversion(model_dir, Path(work), fixed_length=fixed)
        if fixed:  # the project's side decodes the very same model: no </s> bonus, a fixed length
            extractor = KeywordExtractor(staged, device="cpu", quantize="off")
        reference, _, project_s = project_greedy(extractor, questions, batch, tokens)
        result = {"model": name, "questions": len(questions), "batch": batch, "threads": threads, "tokens": tokens}
        result["project_greedy_questions_per_s"] = round(len(questions) / project_s, 2)
        for quantization in ("float32", "int8"):
            engine_dir = convert(staged, Path(work) / f"ct2-{quantization}", quantization)
            translator = ctranslate2.Translator(str(engine_dir), device="cpu", inter_threads=1, intra_threads=threads)
            ids_of = vocabulary_ids(engine_dir)
            answers, _, seconds = engine_greedy(translator, ids_of, extractor, questions, batch, tokens, fixed)
            result[f"ctranslate2_{quantization}"] = {
                "identical_answers": sum(a == b for a, b in zip(answers, reference, strict=True)),  # token ids
                "questions_per_s": round(len(questions) / seconds, 2),
                "ratio_vs_project": round(project_s / seconds, 2),
            }
            if not fixed:
                result[f"ctranslate2_{quantization}"]["served_path"] = served_path_quality(
                    extractor, translator, ids_of, questions, golds, batch
                )
    return result


def served_path_quality(
    extractor: KeywordExtractor,
    translator,
    ids_of: dict[str, int],
    questions: list[str],
    golds: list[list[str]],
    batch: int,
) -> dict:
    """F1 and questions/s of decode-then-snap + span selector, beside the project's grounded default."""
    extractor.analyser.parse_batch(questions)  # both sides then find the Kiwi analysis memoised
    started = time.perf_counter()
    project = extractor.extract(questions, batch_size=batch)
    project_s = time.perf_counter() - started
    started = time.perf_counter()
    parsed = extractor.analyser.parse_batch(questions)
    _, texts, _ = engine_greedy(
        translator, ids_of, extractor, questions, batch, extractor.settings.max_new_tokens, False
    )
    limit = extractor.settings.max_keywords
    snapped = [  # the same post-processing as the project's morpheme-grounded answers
        decoded_keywords(text, question.text, question.spans, False, limit)
        for text, question in zip(texts, parsed, strict=True)
    ]
    engine = extractor.selector.select(parsed, snapped, limit) if extractor.selector is not None else snapped
    engine_s = time.perf_counter() - started
    return {
        "project_grounded_f1": round(score(golds, project).f1, 4),
        "engine_snapped_f1": round(score(golds, engine).f1, 4),
        "project_grounded_questions_per_s": round(len(questions) / project_s, 2),
        "engine_snapped_questions_per_s": round(len(questions) / engine_s, 2),
        "ratio_vs_project": round(project_s / engine_s, 2),
        "answers_differing": sum(a != b for a, b in zip(project, engine, strict=True)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_dir(parser, help="a trained keyword model directory (tiny)")
    parser.add_argument("--kobart-dir", type=Path, help="a kobart_shape directory (default: built in a temp dir)")
    add_labelled_file(parser)
    parser.add_argument("--batch", type=int, default=16, help="questions per decoding call [default: 16]")
    parser.add_argument("--limit", type=int, default=0, help="first N questions only (0: all)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--skip-kobart", action="store_true", help="the tiny model only (the KoBART shape takes ~40 s)")
    args = parser.parse_args(argv)
    frame = load_pairs(args.data)
    if args.limit:
        frame = frame.head(args.limit)
    questions = frame["query"].tolist()
    golds = [clean_keywords(parse_keywords(cell)) for cell in frame["keyword"]]
    threads = torch.get_num_threads()
    results = {"runs": [compare_model("tiny", args.model_dir, questions, golds, args.batch, threads, fixed=False)]}
    print(json.dumps(results["runs"][-1], ensure_ascii=False), flush=True)
    if not args.skip_kobart:
        with tempfile.TemporaryDirectory(prefix="kobart-shape-") as work:
            kobart_dir = args.kobart_dir
            if kobart_dir is None:
                from benchmarks.kobart_shape import build_kobart_shape

                kobart_dir = build_kobart_shape(Path(work) / "kobart-shape")
            run = compare_model("kobart-base-shape", kobart_dir, questions, golds, args.batch, threads, fixed=True)
            results["runs"].append(run)
            print(json.dumps(run, ensure_ascii=False), flush=True)
    write_results(results, threads, args)


def write_results(results: dict, threads: int, args: argparse.Namespace) -> None:
    results["environment"] = {
        "cpu": describe_cpu(),
        "torch": torch.__version__,
        "ctranslate2": ctranslate2.__version__,
        "threads": threads,
        "data": str(args.data),
    }
    if args.output:
        args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
