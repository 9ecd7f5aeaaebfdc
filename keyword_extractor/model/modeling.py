"""The model being fine-tuned, and where its starting weights come from."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytorch_lightning as pl
import torch
from transformers import AutoTokenizer, BartForConditionalGeneration, get_linear_schedule_with_warmup

from keyword_extractor.model.config import TINY, TrainConfig, base_model_problem
from keyword_extractor.model.encoding import LABEL_PAD_ID

HUB_PROBE_TIMEOUT_S = 3.0


class BaseModelUnavailable(RuntimeError):
    """The base model is neither on disk nor reachable; the message says what to do instead."""


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable_message(spec: str, reason: str) -> str:
    return (
        f"Cannot load base model '{spec}': {reason}.\n"
        "Two ways out:\n"
        "  1. download it where the network is available and pass the local directory: --base-model /path/to/kobart\n"
        f"     (e.g. `hf download {spec} --local-dir models/{spec.rsplit('/', 1)[-1]}`), or\n"
        "  2. train fully offline with the tiny profile: --base-model tiny"
    )


def load_base(spec: str) -> tuple[BartForConditionalGeneration, object]:
    """Load tokenizer and model from a local directory or a hub id, failing fast when offline.

    A hub id is first looked up in the local Hugging Face cache; only if it is
    not there is the hub probed (a few seconds at most) before downloading.
    """
    if Path(spec).is_dir():
        return BartForConditionalGeneration.from_pretrained(spec), AutoTokenizer.from_pretrained(spec)
    if spec == TINY:
        raise ValueError("the tiny profile must be built first: use keyword_extractor.model.tiny.build_tiny_base")
    reason = base_model_problem(spec)
    if reason:
        raise BaseModelUnavailable(f"Cannot load base model: {reason}; or train offline with --base-model tiny.")
    try:
        return (
            BartForConditionalGeneration.from_pretrained(spec, local_files_only=True),
            AutoTokenizer.from_pretrained(spec, local_files_only=True),
        )
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        raise BaseModelUnavailable(_unavailable_message(spec, "it is not in the local cache and HF_HUB_OFFLINE is set"))
    if not _hub_reachable():
        raise BaseModelUnavailable(
            _unavailable_message(spec, "it is not in the local cache and the Hugging Face Hub cannot be reached")
        )
    try:
        return BartForConditionalGeneration.from_pretrained(spec), AutoTokenizer.from_pretrained(spec)
    except OSError as error:
        raise BaseModelUnavailable(_unavailable_message(spec, str(error).splitlines()[0])) from error


def adamw(parameters, learning_rate: float, mixed_precision: bool) -> torch.optim.AdamW:
    """AdamW with the fast kernel that training can use at this precision.

    The fused kernel: the default per-parameter loop costs seconds per step on a 124M model on CPU.
    Lightning's mixed precision cannot clip the gradients of a fused optimizer (it unscales them
    itself), so under bf16/16-mixed the multi-tensor `foreach` kernel is the fast path instead.
    """
    return torch.optim.AdamW(parameters, lr=learning_rate, fused=not mixed_precision, foreach=mixed_precision)


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups with no decay on biases and LayerNorm weights, as in the original recipe."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "layer_norm" in name or "layernorm" in name else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class KeywordSeq2Seq(pl.LightningModule):
    """BartForConditionalGeneration trained on `question -> keywords` with teacher forcing.

    Takes the whole training config (stored as the checkpoint's hyperparameters), so an optimisation
    option added to `TrainConfig` reaches the module without touching the code in between.
    """

    def __init__(self, base_model_dir: str, config: dict, total_steps: int):
        super().__init__()
        self.save_hyperparameters(logger=False)  # in the checkpoint; the loggers get the config itself
        self.config = TrainConfig(**config)
        # from_pretrained returns a model in eval mode; dropout must be on while training.
        self.model = BartForConditionalGeneration.from_pretrained(base_model_dir).train()

    def forward(self, **batch) -> torch.Tensor:
        output = self.model(**batch)
        if not self.config.label_smoothing:
            return output.loss
        logits = output.logits
        return torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)).float(),
            batch["labels"].view(-1),
            ignore_index=LABEL_PAD_ID,
            label_smoothing=self.config.label_smoothing,
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(**batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch["input_ids"].size(0))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(**batch)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["input_ids"].size(0))
        return loss

    def configure_optimizers(self):
        hp, total_steps = self.config, self.hparams.total_steps
        mixed = self._trainer is not None and "mixed" in str(self.trainer.precision)
        optimizer = adamw(_decay_groups(self.model, hp.weight_decay), hp.learning_rate, mixed)
        warmup = int(total_steps * hp.warmup_ratio)
        if hp.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=hp.learning_rate,
                total_steps=max(total_steps, 1),
                pct_start=max(hp.warmup_ratio, 1e-3),
                anneal_strategy="cos",
            )
        else:
            scheduler = get_linear_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
