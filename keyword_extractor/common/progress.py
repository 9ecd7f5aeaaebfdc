"""Training progress that reads well both in a terminal and in a piped log (Prefect)."""

from __future__ import annotations

import logging
import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar, TQDMProgressBar

log = logging.getLogger("keyword_extractor.training")


class EpochSummary(Callback):
    """One log line per epoch: losses, learning rate, throughput. Rank 0 only."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._started = time.time()
        self._rows = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._rows += int(batch["input_ids"].size(0))

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """After the epoch's validation and once Lightning has averaged this epoch's `train_loss`."""
        if not trainer.is_global_zero or not hasattr(self, "_started"):
            return
        metrics = trainer.callback_metrics
        seconds = time.time() - self._started
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        train_loss = metrics.get("train_loss_epoch", metrics.get("train_loss"))
        if train_loss is not None:
            parts.append(f"train_loss {float(train_loss):.4f}")
        for name in ("val_loss", "val_f1"):
            if name in metrics:
                parts.append(f"{name} {float(metrics[name]):.4f}")
        parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.2e}")
        parts.append(f"{self._rows / max(seconds, 1e-9):.1f} rows/s")
        log.info(" | ".join(parts))


def progress_callbacks() -> list[Callback]:
    """A live bar in a terminal; plain epoch lines when output goes to a file or a pipe."""
    if sys.stdout.isatty():
        try:
            return [RichProgressBar(), EpochSummary()]
        except ModuleNotFoundError:
            return [TQDMProgressBar(), EpochSummary()]
    return [EpochSummary()]
