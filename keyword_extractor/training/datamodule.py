"""Turning question/keyword pairs into model batches.

Questions are ~30 tokens, so batches are padded to their own longest row
(dynamic padding), never to a fixed 512. Rows of similar length can be grouped
into the same batch to cut padding further.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from keyword_extractor.data.augment import substitute_keywords
from keyword_extractor.data.folds import split_train_val
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.model.config import default
from keyword_extractor.model.encoding import (
    LABEL_PAD_ID,
    EncodingSettings,
    encode_sources,
    encode_targets,
    target_text,
)


class EncodedPairs(Dataset):
    """Pre-tokenised (source, labels) pairs; tokenising once keeps the data loader cheap."""

    def __init__(self, sources: list[list[int]], labels: list[list[int]]):
        if len(sources) != len(labels):
            raise ValueError("sources and labels differ in length")
        self.sources = sources
        self.labels = labels

    @classmethod
    def for_keywords(cls, tokenizer, frame: pd.DataFrame, settings: EncodingSettings) -> EncodedPairs:
        sources = encode_sources(tokenizer, frame["query"].tolist(), settings)
        labels = encode_targets(tokenizer, [target_text(cell) for cell in frame["keyword"]], settings)
        return cls(sources, labels)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.sources[index], "labels": self.labels[index]}

    def lengths(self) -> list[int]:
        return [len(s) + len(t) for s, t in zip(self.sources, self.labels)]


@dataclass(frozen=True)
class DynamicPaddingCollator:
    """Pad each batch to its longest row; labels padded with -100 so the loss ignores them."""

    pad_token_id: int
    pad_to: int | None = None  # only for reproducing fixed-length padding in benchmarks

    def __call__(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        source_len = self.pad_to or max(len(row["input_ids"]) for row in rows)
        target_len = self.pad_to or max(len(row["labels"]) for row in rows)
        input_ids = torch.full((len(rows), source_len), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), source_len), dtype=torch.long)
        labels = torch.full((len(rows), target_len), LABEL_PAD_ID, dtype=torch.long)
        for i, row in enumerate(rows):
            source, target = row["input_ids"], row["labels"]
            input_ids[i, : len(source)] = torch.tensor(source)
            attention_mask[i, : len(source)] = 1
            labels[i, : len(target)] = torch.tensor(target)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class LengthGroupedSampler(Sampler[int]):
    """Shuffled batches of rows of similar length, so dynamic padding pads little.

    Rows are shuffled, cut into mega-batches of `group_factor` batches, sorted by
    length inside each, and the resulting batches shuffled again: randomness for
    SGD, little padding for speed. Under DDP each rank takes every world-th batch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        group_factor: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_factor = group_factor
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        group = self.batch_size * self.group_factor
        batches: list[list[int]] = []
        for start in range(0, len(order), group):
            chunk = sorted(order[start : start + group], key=self.lengths.__getitem__, reverse=True)
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.num_replicas if self.num_replicas > 1 else len(batches)
        return batches[self.rank : usable : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        for batch in self._batches():
            yield from batch

    def __len__(self) -> int:
        return sum(len(batch) for batch in self._batches())


class KeywordDataModule(pl.LightningDataModule):
    """Train/val loaders: the training file's rows (and substituted copies), length-grouped batches."""

    def __init__(
        self,
        tokenizer,
        train_path: str | Path,
        val_path: str | Path | None = None,
        *,
        settings: EncodingSettings,
        batch_size: int,
        seed: int,
        val_fraction: float = default("val_fraction"),
        num_workers: int = 0,
        group_by_length: bool = True,
        limit_rows: int | None = None,
        augment_copies: int = 0,
    ):
        super().__init__()
        self.augment_copies = augment_copies
        self.tokenizer = tokenizer
        self.train_path = Path(train_path)
        self.val_path = Path(val_path) if val_path else None
        self.settings = settings
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.num_workers = num_workers
        self.seed = seed
        self.group_by_length = group_by_length
        self.limit_rows = limit_rows
        self.collator = DynamicPaddingCollator(settings.pad_token_id)
        self.train_set: EncodedPairs | None = None
        self.val_set: EncodedPairs | None = None
        self.val_rows: pd.DataFrame | None = None
        self.train_rows: pd.DataFrame | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train = load_pairs(self.train_path)
        if self.limit_rows:
            train = train.head(self.limit_rows)
        if self.val_path:
            val = load_pairs(self.val_path)
        else:
            train, val = split_train_val(train, self.val_fraction, self.seed)
        self.train_rows = train  # the file's rows, before substituted copies: first in train_set, copies after
        if self.augment_copies:
            extra = substitute_keywords(train, self.augment_copies, seed=self.seed)
            train = pd.concat([train, extra], ignore_index=True)
        self.train_set = EncodedPairs.for_keywords(self.tokenizer, train, self.settings)
        self.val_set = EncodedPairs.for_keywords(self.tokenizer, val, self.settings)
        self.val_rows = val  # the raw questions and keywords, for checks that decode (cpu_precision)

    def labelled_target_lengths(self) -> list[int]:
        """Token lengths of the training file's own targets (not of substituted copies): what sizes the cap."""
        return [len(ids) for ids in self.train_set.labels[: len(self.train_rows)]]

    def _epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.current_epoch if trainer is not None else 0

    def steps_per_epoch(self, dataset: EncodedPairs, world_size: int) -> int:
        per_rank = -(-len(dataset) // world_size)
        return -(-per_rank // self.batch_size)

    def _loader(self, dataset: EncodedPairs, shuffle: bool) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        common = dict(
            batch_size=self.batch_size,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
        if shuffle and self.group_by_length:
            sampler = LengthGroupedSampler(dataset.lengths(), self.batch_size, self.seed, num_replicas=world, rank=rank)
            sampler.set_epoch(self._epoch())
            return DataLoader(dataset, sampler=sampler, **common)
        if world > 1:
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=self.seed)
            return DataLoader(dataset, sampler=sampler, **common)
        return DataLoader(dataset, shuffle=shuffle, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
