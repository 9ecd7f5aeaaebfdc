"""Where corrections wait for review: one SQL table, SQLite by default, any SQLAlchemy URL (PostgreSQL).

A correction is keyed by its content (the normalised question and corrected keywords), so the same
correction sent twice, by a retry or by two people, is one record, whichever writer gets there first:
the unique key decides, not a read before the write. SQLite is opened in WAL mode with a busy timeout,
so the service's workers and a reviewer can write at the same time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from keyword_extractor.feedback import DEFAULT_URL
from keyword_extractor.text.keywords import normalize

Status = Literal["pending", "accepted", "rejected"]
STATUSES: tuple[Status, ...] = ("pending", "accepted", "rejected")

_METADATA = sa.MetaData()
CORRECTIONS = sa.Table(
    "corrections",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("content_key", sa.String(64), nullable=False, unique=True),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("keywords", sa.Text, nullable=False),  # JSON list: the corrected keywords
    sa.Column("model_keywords", sa.Text, nullable=False),  # JSON list: what the model answered
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False, default="pending", index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reviewer", sa.String(200), nullable=False, default=""),
)


@dataclass(frozen=True)
class Correction:
    """A question's keywords as a person corrected them, beside what the model had answered."""

    query: str
    keywords: list[str]
    model_keywords: list[str]
    model_version: str
    comment: str = ""

    def content_key(self) -> str:
        """The same question with the same corrected keywords (spacing and Unicode form aside): one record."""
        canonical = json.dumps([normalize(self.query), [normalize(k) for k in self.keywords]], ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class StoredCorrection:
    id: int
    correction: Correction
    status: Status
    created_at: datetime
    reviewed_at: datetime | None
    reviewer: str


@dataclass(frozen=True)
class Receipt:
    id: int
    created: bool  # False: the same correction was already stored (its id is returned)
    status: Status


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _wal(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


class FeedbackStore:
    """Corrections and their review state; every write is one transaction."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine = _engine(url)
        _METADATA.create_all(self.engine, checkfirst=True)

    def add(self, correction: Correction) -> Receipt:
        """Store a correction once; the same correction again returns the first record's receipt."""
        key = correction.content_key()
        row = {
            "content_key": key,
            "query": correction.query,
            "keywords": json.dumps(correction.keywords, ensure_ascii=False),
            "model_keywords": json.dumps(correction.model_keywords, ensure_ascii=False),
            "model_version": correction.model_version,
            "comment": correction.comment,
            "status": "pending",
            "created_at": datetime.now(timezone.utc),
        }
        try:
            with self.engine.begin() as connection:
                new_id = connection.execute(sa.insert(CORRECTIONS).values(**row)).inserted_primary_key[0]
            return Receipt(int(new_id), True, "pending")
        except IntegrityError:  # a concurrent or earlier writer stored the same content first
            with self.engine.connect() as connection:
                found = connection.execute(
                    sa.select(CORRECTIONS.c.id, CORRECTIONS.c.status).where(CORRECTIONS.c.content_key == key)
                ).one()
            return Receipt(int(found.id), False, found.status)

    def review(self, ids: Iterable[int], status: Status, reviewer: str = "") -> int:
        """Accept or reject corrections (or send them back to pending); how many changed."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        reviewed_at = None if status == "pending" else datetime.now(timezone.utc)
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.update(CORRECTIONS)
                .where(CORRECTIONS.c.id.in_(wanted))
                .values(status=status, reviewed_at=reviewed_at, reviewer=reviewer)
            )
        return int(result.rowcount)

    def corrections(self, status: Status | None = None, after_id: int = 0) -> list[StoredCorrection]:
        """Corrections in the order they arrived, optionally of one status and newer than `after_id`."""
        query = sa.select(CORRECTIONS).where(CORRECTIONS.c.id > after_id).order_by(CORRECTIONS.c.id)
        if status is not None:
            query = query.where(CORRECTIONS.c.status == status)
        with self.engine.connect() as connection:
            return [_stored(row) for row in connection.execute(query)]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(CORRECTIONS.c.status, sa.func.count()).group_by(CORRECTIONS.c.status))
            found = {status: int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in STATUSES}

    def dispose(self) -> None:
        self.engine.dispose()


def _stored(row: sa.Row) -> StoredCorrection:
    correction = Correction(
        query=row.query,
        keywords=json.loads(row.keywords),
        model_keywords=json.loads(row.model_keywords),
        model_version=row.model_version,
        comment=row.comment,
    )
    return StoredCorrection(row.id, correction, row.status, row.created_at, row.reviewed_at, row.reviewer)
