"""A durable local outbox for results while PostgreSQL cannot be reached.

A SQLite file on the orchestrator's disk (WAL, ``synchronous=FULL``): ``put`` returns only
once the entry is on disk, so the PLC may then see ``ResultSeq`` move. Entries are
replayed in insertion order; recording is idempotent on the job key, so a replay that is
interrupted and repeated never counts a job twice.

The same file keeps each station's last recorded job (``remember``), wherever it went: an
orchestrator that starts while PostgreSQL is down places the PLC's next job in a counter
epoch from it, as it would from its memory had it been running.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from cell.record.jobs import JobRecord


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    record: JobRecord
    alert: str | None  # alert kind to raise once recorded, if any


class Outbox:
    """File-backed FIFO of (JobRecord, alert kind); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " job_key TEXT NOT NULL UNIQUE, record TEXT NOT NULL, alert TEXT)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS last_job"
            " (station_id TEXT PRIMARY KEY, record TEXT NOT NULL)"
        )

    def put(self, record: JobRecord, alert: str | None) -> None:
        """Store durably; a second put of the same job key keeps the first."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (job_key, record, alert) VALUES (?, ?, ?)",
                (record.key, record.model_dump_json(), alert),
            )

    def entries(self) -> list[OutboxEntry]:
        """All entries, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, record, alert FROM outbox ORDER BY seq").fetchall()
        return [
            OutboxEntry(seq, JobRecord.model_validate_json(rec), alert) for seq, rec, alert in rows
        ]

    def find(self, station_id: str, epoch: int, job_seq: int) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM outbox WHERE job_key = ?", (f"{station_id}:{epoch}:{job_seq}",)
            ).fetchone()
        return JobRecord.model_validate_json(row[0]) if row else None

    def latest(self, station_id: str) -> JobRecord | None:
        """The most recently stored record of a station (for epoch decisions)."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM outbox ORDER BY seq DESC").fetchall()
        for (raw,) in rows:
            rec = JobRecord.model_validate_json(raw)
            if rec.station_id == station_id:
                return rec
        return None

    def remember(self, record: JobRecord) -> None:
        """Keep ``record`` (without its fasteners) as its station's last recorded job; call
        it only once the record is durable, so that it never answers for a lost one."""
        slim = record.model_copy(update={"fasteners": []})
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO last_job (station_id, record) VALUES (?, ?)",
                (record.station_id, slim.model_dump_json()),
            )

    def remembered(self) -> dict[str, JobRecord]:
        """Each station's last recorded job, as ``remember`` kept it."""
        with self._lock:
            rows = self._db.execute("SELECT station_id, record FROM last_job").fetchall()
        return {sid: JobRecord.model_validate_json(raw) for sid, raw in rows}

    def remove(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
