"""Convert a Lightning checkpoint into the model directory later steps consume.

python -m keyword_extractor.training.export --checkpoint artifacts/train/checkpoints/best.ckpt \
    --output artifacts/model \
    [--train data/train.tsv]      # size max_new_tokens from the training targets, as training does
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from keyword_extractor.model.artifact import InferenceSettings, max_new_tokens_for, write_model_dir


def export_checkpoint(
    checkpoint: str | Path,
    output_dir: str | Path,
    settings: InferenceSettings | None = None,
    keyword_cells: Sequence[str] | None = None,
) -> Path:
    """Load the checkpoint's weights into its base architecture and save a Hugging Face directory.

    With `keyword_cells` (the training file's `keyword` column) the stored `max_new_tokens` is sized
    from their tokenised length, `settings.max_new_tokens` being the upper bound.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    # torch, transformers and Lightning load here, not at import: `--help` answers at once
    from transformers import AutoTokenizer

    from keyword_extractor.model.encoding import EncodingSettings, encode_targets, target_text
    from keyword_extractor.model.modeling import KeywordSeq2Seq

    module = KeywordSeq2Seq.load_from_checkpoint(checkpoint, map_location="cpu")
    base_dir = module.hparams.base_model_dir
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    settings = settings or InferenceSettings()
    if keyword_cells is not None:
        encoding = EncodingSettings.from_tokenizer(tokenizer)
        targets = encode_targets(tokenizer, [target_text(cell) for cell in keyword_cells], encoding)
        settings.max_new_tokens = max_new_tokens_for([len(ids) for ids in targets], cap=settings.max_new_tokens)
    settings.base_model = settings.base_model or str(base_dir)
    return write_model_dir(module.model, tokenizer, settings, output_dir)


if __name__ == "__main__":  # the command line lives in keyword_extractor.training.cli
    from keyword_extractor.training.cli import export_main

    export_main()
