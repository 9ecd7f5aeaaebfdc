"""The offline `tiny` profile: a base model built here instead of downloaded.

A BPE tokenizer is trained on the training questions with `tokenizers`, a small
`BartConfig` is initialised from scratch, and both are saved as an ordinary
Hugging Face directory. From then on it is loaded with the very same
`from_pretrained` calls as KoBART, so tests exercise the real code path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.model.config import TinySpec
from keyword_extractor.text.keywords import clean_keywords, normalize, parse_keywords

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<unk>", "<mask>"]  # KoBART-like names; ids 0..4
SPEC_FILE = "tiny_profile.json"
_CUT = "\x1f"  # marks a keyword boundary inside a word while the tokenizer is trained; never in real text


def mark_keyword_boundaries(query: str, keywords: Sequence[str], extra_cuts: Iterable[int] = ()) -> str:
    """The question with `_CUT` wherever a keyword starts or ends inside a word ('면세한도\x1f는').

    `extra_cuts`: more positions of the normalised question to cut at (morpheme boundaries).
    """
    text = normalize(query)
    cuts: set[int] = set(extra_cuts)
    for keyword in keywords:
        start = text.find(keyword)
        while start >= 0:
            cuts.update((start, start + len(keyword)))
            start = text.find(keyword, start + 1)
    inside = [i for i in sorted(cuts) if 0 < i < len(text) and text[i - 1] != " " and text[i] != " "]
    for i in reversed(inside):
        text = text[:i] + _CUT + text[i:]
    return text


def morpheme_boundaries(texts: Sequence[str]) -> list[set[int]]:
    """Per text, the positions of its normalised form where a Kiwi morpheme starts or ends."""
    from keyword_extractor.text.questions import QuestionAnalyser

    analysed = QuestionAnalyser().analyse([normalize(text) for text in texts])
    return [{edge for token in tokens for edge in (token.start, token.start + token.len)} for tokens in analysed]


def train_tokenizer(
    texts: list[str],
    vocab_size: int,
    keywords: Sequence[str] | None = None,
    morpheme_cuts: Sequence[Iterable[int]] | None = None,
) -> PreTrainedTokenizerFast:
    """BPE over NFC text with SentencePiece-style '▁' word starts and punctuation split off.

    Splitting punctuation keeps the ', ' keyword separator a token of its own. With `keywords`
    (the `keyword` cells of the same rows), merges are learned on the questions cut at keyword
    boundaries, and with `morpheme_cuts` (per text, positions of its normalised form) at those too;
    the saved tokenizer itself splits like the plain one (no cut marks at inference).
    """
    standard = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"), pre_tokenizers.Punctuation("isolated")]
    )
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    if keywords is not None or morpheme_cuts is not None:
        cells = keywords if keywords is not None else [""] * len(texts)
        cuts = morpheme_cuts if morpheme_cuts is not None else [()] * len(texts)
        texts = [
            mark_keyword_boundaries(text, clean_keywords(parse_keywords(cell)), extra)
            for text, cell, extra in zip(texts, cells, cuts, strict=True)
        ]
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
                pre_tokenizers.Split(_CUT, "removed"),
                pre_tokenizers.Punctuation("isolated"),
            ]
        )
    else:
        tokenizer.pre_tokenizer = standard
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.pre_tokenizer = standard
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=512,
    )


def kobart_conventions(tokenizer: PreTrainedTokenizerFast) -> dict:
    """BartConfig settings every model built here shares with KoBART: its special tokens, the decoder
    starting with </s>, tied input and output embeddings."""
    return dict(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )


def tiny_config(spec: TinySpec, tokenizer: PreTrainedTokenizerFast) -> BartConfig:
    """A BART that keeps KoBART's conventions (decoder starts with </s>) at a fraction of the size."""
    return BartConfig(
        vocab_size=len(tokenizer),
        d_model=spec.d_model,
        encoder_layers=spec.layers,
        decoder_layers=spec.layers,
        encoder_attention_heads=spec.heads,
        decoder_attention_heads=spec.heads,
        encoder_ffn_dim=spec.ffn_dim,
        decoder_ffn_dim=spec.ffn_dim,
        max_position_embeddings=spec.max_positions,
        dropout=spec.dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        **kobart_conventions(tokenizer),
    )


def _fingerprint(train_path: Path, spec: TinySpec) -> str:
    digest = hashlib.sha256(train_path.read_bytes())
    digest.update(json.dumps(asdict(spec), sort_keys=True).encode())
    return digest.hexdigest()


def build_tiny_base(train_path: str | Path, output_dir: str | Path, spec: TinySpec = TinySpec()) -> Path:
    """Build (or reuse, when data and spec are unchanged) the tiny base model directory.

    Written to a temporary sibling and renamed, so a crash never leaves half a model.
    """
    train_path, output_dir = Path(train_path), Path(output_dir)
    fingerprint = _fingerprint(train_path, spec)
    spec_file = output_dir / SPEC_FILE
    if spec_file.is_file() and json.loads(spec_file.read_text()).get("fingerprint") == fingerprint:
        log.info("reusing the tiny base model in %s (same data and spec)", output_dir)
        return output_dir
    pairs = load_pairs(train_path)
    queries = pairs["query"].tolist()
    keywords = pairs["keyword"].tolist() if spec.keyword_aware_tokenizer else None
    morpheme_cuts = morpheme_boundaries(queries) if spec.morpheme_aware_tokenizer else None
    tokenizer = train_tokenizer(queries, spec.vocab_size, keywords, morpheme_cuts)
    import torch

    torch.manual_seed(spec.seed)
    model = BartForConditionalGeneration(tiny_config(spec, tokenizer))
    if spec.copy_init:
        with torch.no_grad():
            for layer in model.model.decoder.layers:
                layer.encoder_attn.v_proj.weight.copy_(torch.eye(spec.d_model))
                layer.encoder_attn.out_proj.weight.copy_(torch.eye(spec.d_model))
    model.generation_config.max_length = None
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    try:
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        meta = {"fingerprint": fingerprint, "spec": asdict(spec), "train_file": str(train_path)}
        (staging / SPEC_FILE).write_text(json.dumps(meta, indent=2))
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.replace(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built the tiny base model in %s (vocabulary %d)", output_dir, len(tokenizer))
    return output_dir
