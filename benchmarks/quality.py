"""Keyword F1 of one model under each grounding mode, beside the Kiwi baseline on the same questions.

    python -m benchmarks.quality --model-dir artifacts/runs/RUN/train/model --data data/test.tsv

With a span selector in the model directory (keyword_extractor.model.span_selector) the seq2seq model's own
answers get a row of their own. Also counts, per mode, the keywords that cut a Kiwi word (not a
candidate span of their question: `morphology.candidate_spans`), and the F1 on customs and general
questions (`keyword_extractor.text.domains`).
Use a validation split of data/train.tsv to choose settings; data/test.tsv is for quoting results.
"""

from __future__ import annotations

import argparse

from keyword_extractor.common.cli import add_labelled_file, add_model_dir
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model.artifact import GROUNDING_MODES
from keyword_extractor.text.baselines import KiwiNounPhraseBaseline
from keyword_extractor.text.domains import CUSTOMS, GENERAL, domain_of
from keyword_extractor.text.keywords import clean_keywords, parse_keywords
from keyword_extractor.text.metrics import score
from keyword_extractor.text.questions import QuestionAnalyser


def _row(name: str, golds, preds, queries, spans, domains) -> str:
    overall = score(golds, preds, queries)
    by_domain = []
    for domain in (CUSTOMS, GENERAL):
        rows = [i for i, d in enumerate(domains) if d == domain]
        by_domain.append(score([golds[i] for i in rows], [preds[i] for i in rows], [queries[i] for i in rows]).f1)
    cut = sum(keyword not in allowed for row, allowed in zip(preds, spans) for keyword in row)
    return (
        f"| {name} | {overall.f1:.4f} | {overall.precision:.4f} | {overall.recall:.4f} | "
        f"{by_domain[0]:.4f} | {by_domain[1]:.4f} | {cut} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_dir(parser)
    add_labelled_file(parser)
    args = parser.parse_args(argv)

    pairs = load_pairs(args.data)
    queries = pairs["query"].tolist()
    golds = [clean_keywords(parse_keywords(cell)) for cell in pairs["keyword"]]
    spans = QuestionAnalyser().spans_batch(queries)
    domains = [domain_of(query) for query in queries]
    extractor = KeywordExtractor(args.model_dir)
    print(f"{len(queries)} questions from {args.data} ({domains.count(CUSTOMS)} customs), model {args.model_dir}")
    print("| system | F1 | precision | recall | customs F1 | general F1 | keywords cutting a Kiwi word |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(_row("Kiwi baseline", golds, KiwiNounPhraseBaseline().extract_batch(queries), queries, spans, domains))
    if extractor.selector is not None:
        preds = extractor.extract(queries, select_spans=False)
        print(_row("seq2seq alone (no span selector), morphemes", golds, preds, queries, spans, domains))
    for grounding in GROUNDING_MODES:
        preds = extractor.extract(queries, grounding=grounding)
        selected = " + span selector" if grounding == "morphemes" and extractor.selector is not None else ""
        print(_row(f"model, grounding={grounding}{selected}", golds, preds, queries, spans, domains))


if __name__ == "__main__":
    main()
