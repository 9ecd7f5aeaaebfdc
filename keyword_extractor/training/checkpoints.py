"""Checkpoint selection by what the product is judged on: keyword F1 on the validation questions.

The validation loss rewards a model for spreading probability well over every token of the target;
the user only sees the decoded keywords. So after every validation epoch the model in training decodes
the validation questions through `KeywordExtractor` (greedy, the model's grounding), exactly as the
exported model will, and logs `val_f1`; the best checkpoint and early stopping follow it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from keyword_extractor.model.artifact import InferenceSettings
from keyword_extractor.text.metrics import score

VAL_F1 = "val_f1"


class ValidationKeywordF1(Callback):
    """Decodes `questions` at the end of every validation epoch and logs their keyword F1 as `val_f1`.

    Every rank decodes the same questions, so every rank logs the same value (DDP needs it on all of
    them for checkpointing and early stopping) without any gather.
    """

    def __init__(
        self, tokenizer, questions: Sequence[str], golds: Sequence[Sequence[str]], settings: InferenceSettings
    ):
        if len(questions) != len(golds):
            raise ValueError(f"{len(questions)} validation questions but {len(golds)} keyword lists")
        self.tokenizer = tokenizer
        self.questions = list(questions)
        self.golds = [list(gold) for gold in golds]
        self.settings = settings
        self._extractor = None  # built on first use and kept: Kiwi and the vocabulary index load once per run

    def measure(self, model) -> float:
        from keyword_extractor.inference.extractor import KeywordExtractor

        if self._extractor is None or self._extractor.model is not model:
            self._extractor = KeywordExtractor.from_loaded(model, self.tokenizer, self.settings)
        extractor = self._extractor
        was_training = model.training
        model.eval()
        try:
            with torch.autocast(model.device.type, enabled=False):
                predictions = extractor.extract(self.questions)
        finally:
            model.train(was_training)
        return score(self.golds, predictions, self.questions).f1

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self.questions:
            return
        f1 = self.measure(module.model)
        module.log(VAL_F1, f1, prog_bar=True, sync_dist=False, rank_zero_only=False)
