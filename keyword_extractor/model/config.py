"""Every training option, typed and validated, with its default written once.

`TrainConfig` is what the Prefect flow takes as its `training` parameter (rendered as a form), what
`python -m keyword_extractor.training` builds its command line from (`config_cli`), what the training
process reads from the run folder (`train_config.json`) and what MLflow logs as the run's params.

Two recipes: the field defaults are the original KoBART fine-tuning recipe; `PRESETS["tiny"]` holds
what a from-scratch tiny model needs instead, applied to the fields a user did not set. Only light
imports here: `--help` must not wait for torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keyword_extractor.model.artifact import Grounding, InferenceSettings

DEFAULT_BASE_MODEL = "gogamza/kobart-base-v1"
TINY = "tiny"
CONFIG_FILE = "train_config.json"
DEFAULT_SEED = 42
DEFAULT_MAX_F1_DROP = 0.01  # one F1 point: the accuracy the serving targets allow to trade for speed


@dataclass(frozen=True)
class TinySpec:
    """Size of the tiny model; defaults were chosen by measuring F1 per minute on 2 CPU cores."""

    vocab_size: int = 3000
    d_model: int = 192
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 768
    max_positions: int = 256
    dropout: float = 0.2
    seed: int = DEFAULT_SEED
    # BPE merges never cross a keyword boundary of the training labels ('면세한도|는'), so a keyword
    # is (almost always) a run of the question's own tokens: the model copies tokens, never re-spells.
    keyword_aware_tokenizer: bool = True
    # Cross-attention value/output projections start as the identity: from step 0 the decoder sees
    # the question's token embeddings, which the tied output layer scores as "copy this token".
    # Without it a from-scratch model sits at the unigram loss for epochs before it finds copying.
    copy_init: bool = True
    # Merges never cross a Kiwi morpheme boundary either ('면세|한도|는'), so the questions of unseen
    # text split where keywords can start and end (morphology.candidate_spans).
    morpheme_aware_tokenizer: bool = True


# Copy-friendly init + keyword- and morpheme-aware BPE (see TinySpec) learn in a few epochs. With
# keyword-substituted copies and val_f1 selection the validation F1 (a split of data/train.tsv) still
# rose at epoch 12, so up to 14 epochs run, stopped early after 4 without a better val_f1.
# Greedy decoding: 0.96 F1 points below beam 3 on data/test.tsv, 2.5x the batched throughput
# (benchmarks/README.md), so both recipes store num_beams 1.
PRESETS: dict[str, dict[str, Any]] = {
    TINY: dict(
        epochs=14,
        batch_size=16,
        learning_rate=1e-3,
        schedule="onecycle",
        early_stopping_patience=4,
        augment_copies=1,
    ),
}


def _group(name: str) -> dict:
    return {"group": name}


class TrainConfig(BaseModel):
    """How to fine-tune; unset fields take the recipe of the base model (KoBART, or `PRESETS['tiny']`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # model
    base_model: str = Field(
        DEFAULT_BASE_MODEL,
        description="Hugging Face id or local directory of a BART-family model, or 'tiny' to build a small model "
        "from scratch offline (tokenizer trained on the training file)",
        json_schema_extra=_group("model"),
    )
    tiny_vocab_size: int = Field(
        TinySpec.vocab_size, gt=4, description="tiny: BPE vocabulary", json_schema_extra=_group("model")
    )
    tiny_d_model: int = Field(
        TinySpec.d_model, gt=0, description="tiny: hidden size", json_schema_extra=_group("model")
    )
    tiny_layers: int = Field(
        TinySpec.layers, gt=0, description="tiny: encoder = decoder layers", json_schema_extra=_group("model")
    )
    tiny_ffn_dim: int = Field(
        TinySpec.ffn_dim, gt=0, description="tiny: feed-forward size", json_schema_extra=_group("model")
    )
    tiny_morpheme_tokenizer: bool = Field(
        TinySpec.morpheme_aware_tokenizer,
        description="tiny: BPE merges never cross Kiwi morpheme boundaries",
        json_schema_extra=_group("model"),
    )

    # data
    val_fraction: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="share of the training file held out for validation when no --val is given",
        json_schema_extra=_group("data"),
    )
    max_source_length: int = Field(
        InferenceSettings.max_source_length,
        gt=2,
        description="question tokens kept (incl. <s> </s>)",
        json_schema_extra=_group("data"),
    )
    max_target_length: int = Field(
        64, gt=1, description="keyword tokens kept (incl. </s>)", json_schema_extra=_group("data")
    )
    limit_train_rows: int | None = Field(
        None, gt=0, description="use only the first N training rows (smoke runs)", json_schema_extra=_group("data")
    )
    group_by_length: bool = Field(
        True, description="batch rows of similar length together (less padding)", json_schema_extra=_group("data")
    )
    augment_copies: int = Field(
        0,
        ge=0,
        description="extra training rows per row, keywords swapped for other rows' (keyword_extractor.data.augment)",
        json_schema_extra=_group("data"),
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes", json_schema_extra=_group("data"))

    # optimisation
    epochs: int = Field(2, gt=0, description="fine-tuning epochs", json_schema_extra=_group("optimisation"))
    batch_size: int = Field(8, gt=0, description="rows per batch and device", json_schema_extra=_group("optimisation"))
    learning_rate: float = Field(
        3e-5, gt=0, description="peak AdamW learning rate", json_schema_extra=_group("optimisation")
    )
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="share of steps with linear warm-up", json_schema_extra=_group("optimisation")
    )
    weight_decay: float = Field(
        0.01, ge=0, description="AdamW decay (never on bias/LayerNorm)", json_schema_extra=_group("optimisation")
    )
    schedule: Literal["linear", "onecycle"] = Field(
        "linear", description="learning-rate schedule", json_schema_extra=_group("optimisation")
    )
    select_by: Literal["val_f1", "val_loss"] = Field(
        "val_f1",
        description="what picks the exported checkpoint (and stops early): keyword F1 of the validation questions, "
        "decoded as the exported model will decode them, or the validation loss",
        json_schema_extra=_group("optimisation"),
    )
    early_stopping_patience: int = Field(
        0,
        ge=0,
        description="stop after N epochs without a better select_by value; 0: never",
        json_schema_extra=_group("optimisation"),
    )
    val_f1_rows: int = Field(
        1000,
        gt=0,
        description="validation questions decoded per epoch for val_f1 (the first N)",
        json_schema_extra=_group("optimisation"),
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of the target probability spread over the vocabulary (0: none)",
        json_schema_extra=_group("optimisation"),
    )
    gradient_clip: float = Field(
        1.0, ge=0, description="gradient norm clipping", json_schema_extra=_group("optimisation")
    )
    max_steps: int = Field(
        -1,
        ge=-1,
        description="stop after N optimiser steps (-1: run all epochs)",
        json_schema_extra=_group("optimisation"),
    )
    seed: int = Field(
        DEFAULT_SEED, description="seed for data split, shuffling, init", json_schema_extra=_group("optimisation")
    )

    # hardware
    accelerator: str = Field("auto", description="cpu, gpu or auto", json_schema_extra=_group("hardware"))
    devices: str = Field(
        "auto", description="devices per node, -1 (all GPUs) or auto", json_schema_extra=_group("hardware")
    )
    num_nodes: int = Field(
        1, gt=0, description="machines (with torchrun / SLURM)", json_schema_extra=_group("hardware")
    )
    strategy: str = Field(
        "auto", description="auto, ddp, ddp_spawn, deepspeed, ...", json_schema_extra=_group("hardware")
    )
    precision: str = Field(
        "auto",
        description="32-true, bf16-mixed, 16-mixed, or auto (bf16-mixed on GPUs that support it)",
        json_schema_extra=_group("hardware"),
    )

    # what the exported model directory stores
    num_beams: int = Field(
        InferenceSettings.num_beams,
        gt=0,
        description="beam width stored with the model",
        json_schema_extra=_group("export"),
    )
    grounding: Grounding = Field(
        InferenceSettings.grounding,
        description="decoding constraint stored with the model (and used for val_f1): 'morphemes' allows only "
        "whole spans of the question's Kiwi words, 'substrings' any substring, 'off' anything",
        json_schema_extra=_group("export"),
    )
    span_selector: bool = Field(
        True,
        description="fit the span selector after training (morpheme grounding only): it chooses the final keywords "
        "among the candidate spans, the model's answer among its evidence",
        json_schema_extra=_group("export"),
    )
    max_new_tokens: int = Field(
        InferenceSettings.max_new_tokens,
        gt=0,
        description="upper bound on the stored generation cap (itself sized from the training targets)",
        json_schema_extra=_group("export"),
    )
    quantize: Literal["off", "auto", "int8"] = Field(
        "auto",
        description="whether row-wise int8 may serve the model on CPU: 'auto' allows it only if its validation "
        "F1 is at most int8_max_f1_drop lower than fp32's; 'off' never; 'int8' without measuring. An allowed "
        "int8 is used only where it is also measured faster, decided when the model is loaded (on AVX-512 "
        "VNNI/AMX CPUs for KoBART-size layers, not on AVX2-only ones). Answers are batch-independent in both",
        json_schema_extra=_group("export"),
    )
    int8_max_f1_drop: float = Field(
        DEFAULT_MAX_F1_DROP,
        ge=0,
        description="F1 that quantize=auto may give up for int8 (0.01 = one point)",
        json_schema_extra=_group("export"),
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, values: Any) -> Any:
        """The tiny recipe fills the fields the caller left unset; explicit values always win."""
        if not isinstance(values, dict):
            return values
        preset = PRESETS.get(values.get("base_model", DEFAULT_BASE_MODEL), {})
        return {**preset, **{key: value for key, value in values.items() if value is not None}}

    @property
    def is_tiny(self) -> bool:
        return self.base_model == TINY

    def tiny_spec(self) -> TinySpec:
        return TinySpec(
            vocab_size=self.tiny_vocab_size,
            d_model=self.tiny_d_model,
            layers=self.tiny_layers,
            ffn_dim=self.tiny_ffn_dim,
            seed=self.seed,
            morpheme_aware_tokenizer=self.tiny_morpheme_tokenizer,
        )

    def save(self, path: str | Path) -> Path:
        from keyword_extractor.common.files import write_atomic

        path = Path(path)
        write_atomic(path, self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def default(field: str) -> Any:
    """A TrainConfig field's default (the KoBART recipe), for code that needs it outside a config."""
    return TrainConfig.model_fields[field].default


def base_model_problem(spec: str) -> str | None:
    """Why `spec` can be neither a folder here nor a Hugging Face model id (None when it could be either).

    Told apart before any network probe: a typo such as `kobart` must not wait for the hub and then
    blame the network.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    local = Path(spec).expanduser()
    if spec == TINY or local.is_dir():
        return None
    if local.exists():
        return f"{spec} is a file; --base-model takes a model folder or a Hugging Face id"
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec:  # a path, not an id
        return f"no folder {spec}; --base-model takes a model folder or a Hugging Face id (gogamza/kobart-base-v1)"
    try:
        validate_repo_id(spec)
    except HFValidationError:
        return f"'{spec}' is neither a folder here nor a Hugging Face id (owner/name, e.g. gogamza/kobart-base-v1)"
    if "/" not in spec:
        return (
            f"'{spec}' is not a folder here, and Hugging Face ids of BART models name their owner "
            "(owner/name, e.g. gogamza/kobart-base-v1)"
        )
    return None
