"""Convert a Lightning checkpoint into the model directory later steps consume.

python -m keyword_extractor.export --checkpoint artifacts/train/checkpoints/best.ckpt --output artifacts/model
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoTokenizer

from keyword_extractor.artifact import InferenceSettings, write_model_dir
from keyword_extractor.modeling import KeywordSeq2Seq


def export_checkpoint(
    checkpoint: str | Path, output_dir: str | Path, settings: InferenceSettings | None = None
) -> Path:
    """Load the checkpoint's weights into its base architecture and save a Hugging Face directory."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    module = KeywordSeq2Seq.load_from_checkpoint(checkpoint, map_location="cpu")
    base_dir = module.hparams.base_model_dir
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    settings = settings or InferenceSettings()
    settings.base_model = settings.base_model or str(base_dir)
    return write_model_dir(module.model, tokenizer, settings, output_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.export",
        description="Export a Lightning .ckpt of a keyword model as a Hugging Face model directory "
        "(safetensors, tokenizer, generation config, keyword_extractor.json).",
    )
    parser.add_argument("--checkpoint", required=True, help="the .ckpt file written by keyword_extractor.train")
    parser.add_argument("--output", required=True, help="directory to write; replaced atomically if it exists")
    parser.add_argument("--num-beams", type=int, default=1, help="default beam width stored with the model")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="default generation length cap")
    args = parser.parse_args(argv)
    module_settings = InferenceSettings(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
    path = export_checkpoint(args.checkpoint, args.output, module_settings)
    print(f"exported {args.checkpoint} -> {path}")


if __name__ == "__main__":
    main()
