"""The SQLite journal: every sample written as it arrives, so nothing paid for is ever requested again.

Two kinds of rows (stdlib ``sqlite3``, WAL mode, one transaction per arriving sample):

- ``samples``: keyed by (sample key, question id, sample index, messages hash) and never by prompt alone. The
  *sample key* hashes what makes a sample what it is: base URL, model, sampling parameters and seed. It leaves
  out the strategy and the budget, so a re-run with a larger budget, or another strategy that asks for the same
  independent samples, reuses them. The messages hash keeps chain samples (whose prompts depend on earlier
  answers) from standing in for one another.
- ``events``: per *run key* (the sample key plus strategy, budget and batch), the order in which the engine
  issued requests and received results or failures. The engine is deterministic given that order, so a resumed
  run replays the events and makes exactly the same decisions as the interrupted one; only what was in flight at
  the interruption is requested again. A failure is an event, never a result: a re-run retries a question that
  only ever failed (``dynscaling.drivers``).

One writer per file: a ``Journal`` holds SQLite's own exclusive lock while it is open (``locking_mode=EXCLUSIVE``),
so a second run refuses or waits instead of interleaving its events; the lock dies with the process.

The schema evolves through named, append-only migrations recorded in ``migrations``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import JournalError
from .types import Sample, Usage

__all__ = ["Event", "Journal", "RunLog", "default_journal_path", "journal_error", "stable_hash"]

HASH_PREFIX = "sha256:"


def stable_hash(value: Any) -> str:
    """A tagged hash of canonical JSON (sorted keys, compact), so a change of scheme is detectable."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return HASH_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def default_journal_path() -> Path:
    """``$DYNSCALING_HOME/journal.sqlite``, by default ``~/.dynscaling/journal.sqlite``."""
    home = Path(os.environ.get("DYNSCALING_HOME") or Path.home() / ".dynscaling")
    return home / "journal.sqlite"


def journal_error(path: Path, error: BaseException) -> JournalError:
    """One line for a journal that cannot be used, saying what to do about it."""
    text = str(error)
    if isinstance(error, sqlite3.OperationalError) and "locked" in text:
        advice = ("another run is using this journal (one writer at a time): wait for it to finish, or pass "
                  "another --journal")
    elif isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
        advice = "this file is not a dynscaling journal (not SQLite): move it away, or pass another --journal"
    elif "full" in text:
        advice = (f"cannot write the journal ({text}): free some space and run the same command again; every "
                  "sample journaled so far is kept")
    elif "readonly" in text or "read-only" in text or isinstance(error, PermissionError) or "unable to open" in text:
        advice = f"cannot write the journal ({text}): make it writable, or pass another --journal"
    else:
        advice = f"cannot use the journal: {text}"
    return JournalError(f"{path}: {advice}")


#: A journal on a disk with less room than this is refused before the run pays for anything: SQLite would fail
#: on the first sample, after the requests in flight were paid for.
MIN_FREE_BYTES = 4 * 1024 * 1024


def _check_free_space(path: Path) -> None:
    if str(path) == ":memory:":
        return
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return  # cannot tell: SQLite's own error will say
    if free < MIN_FREE_BYTES:
        raise sqlite3.OperationalError(f"database or disk is full ({free} bytes free on {path.parent})")


def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE runs (
        run_key TEXT PRIMARY KEY, sample_key TEXT NOT NULL, created_at REAL NOT NULL, description TEXT NOT NULL)""")
    db.execute("""CREATE TABLE samples (
        sample_key TEXT NOT NULL, question_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
        messages_hash TEXT NOT NULL, run_key TEXT NOT NULL, text TEXT, finish_reason TEXT,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, messages TEXT, created_at REAL NOT NULL,
        PRIMARY KEY (sample_key, question_id, sample_index, messages_hash))""")
    db.execute("""CREATE TABLE events (
        run_key TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, question_id TEXT NOT NULL,
        sample_index INTEGER NOT NULL, messages_hash TEXT, detail TEXT, PRIMARY KEY (run_key, seq))""")


def _m002_sample_logprob(db: sqlite3.Connection) -> None:
    # the mean token log-probability a local model (or an endpoint asked for logprobs) reported; NULL otherwise
    db.execute("ALTER TABLE samples ADD COLUMN mean_logprob REAL")


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("m001_initial", _m001_initial),
    ("m002_sample_logprob", _m002_sample_logprob),
]


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a run as the engine saw it: ``request``, ``result`` or ``failure``."""

    kind: str
    question_id: str
    sample_index: int
    messages_hash: str | None
    detail: str | None = None


class Journal:
    """A journal file, held by one writer at a time. Open one per process; ``RunLog`` objects write through it.

    **One writer per journal.** The connection runs in SQLite's ``locking_mode=EXCLUSIVE`` and takes the write
    lock as it opens: SQLite then holds the lock until the connection closes, so a second run on the same file
    (another process, or another ``Journal`` in this one) waits up to ``wait`` seconds and then gets
    ``JournalError`` instead of interleaving its events with ours. The lock is SQLite's own: it goes away with
    the process, however the process ends, so a SIGKILL never leaves a stale lock behind.

    Every failure to open, lock or write (not a SQLite file, read-only, disk full) raises ``JournalError`` with
    one line naming the file; what was already committed stays committed.
    """

    def __init__(self, path: str | Path, *, wait: float = 0.0) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level=None,  # explicit transactions below
                                      timeout=wait)
        except (OSError, sqlite3.Error) as error:
            raise journal_error(self.path, error) from None
        try:
            _check_free_space(self.path)
            self.db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("BEGIN IMMEDIATE")  # takes the write lock now, and EXCLUSIVE mode keeps it
            self.db.execute("COMMIT")
            self._migrate()
        except sqlite3.Error as error:
            self.db.close()
            raise journal_error(self.path, error) from None

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        done = {row[0] for row in self.db.execute("SELECT name FROM migrations")}
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            with self._transaction():
                migration(self.db)
                self.db.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A transaction whose SQLite failures (disk full, read-only) become ``JournalError``."""
        try:
            with self._transaction():
                yield
        except sqlite3.Error as error:
            raise journal_error(self.path, error) from None

    def migrations(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM migrations ORDER BY rowid")]

    def open_run(self, *, sample_key: Mapping[str, Any], run_key: Mapping[str, Any], fresh: bool = False,
                 question_ids: Sequence[str] | None = None) -> RunLog:
        """The log of one run.

        ``fresh=True`` starts over: it forgets this run's events and the samples it recorded; with
        ``question_ids``, it forgets every sample of those questions under this sample key, whatever run (budget,
        strategy) paid for them, and the events of every run over the same question set, so that nothing paid
        before is served again."""
        sample_hash = stable_hash(sample_key)
        run_hash = stable_hash({"samples": sample_hash, **run_key})
        description = json.dumps({"samples": dict(sample_key), "run": dict(run_key)}, default=str)
        try:
            with self._transaction():
                if fresh:
                    self._forget(sample_hash, run_hash, run_key, question_ids)
                self.db.execute("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?)",
                                (run_hash, sample_hash, time.time(), description))
        except sqlite3.Error as error:
            raise journal_error(self.path, error) from None
        return RunLog(self, run_hash, sample_hash)

    def _forget(self, sample_hash: str, run_hash: str, run_key: Mapping[str, Any],
                question_ids: Sequence[str] | None) -> None:
        self.db.execute("DELETE FROM events WHERE run_key = ?", (run_hash,))
        self.db.execute("DELETE FROM samples WHERE run_key = ?", (run_hash,))
        if question_ids is None:
            return
        self.db.executemany("DELETE FROM samples WHERE sample_key = ? AND question_id = ?",
                            [(sample_hash, qid) for qid in question_ids])
        batch = run_key.get("questions")
        if batch is None:
            return
        runs = self.db.execute("SELECT run_key, description FROM runs WHERE sample_key = ?", (sample_hash,))
        same_batch = [(key,) for key, text in runs.fetchall() if json.loads(text)["run"].get("questions") == batch]
        self.db.executemany("DELETE FROM events WHERE run_key = ?", same_batch)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        if self.db.in_transaction:  # SQLite may have rolled back already (a full disk does)
            self.db.execute("ROLLBACK")


class RunLog:
    """Reads and appends one run's events and samples."""

    def __init__(self, journal: Journal, run_key: str, sample_key: str) -> None:
        self.journal = journal
        self.db = journal.db
        self.run_key = run_key
        self.sample_key = sample_key
        row = self.db.execute("SELECT MAX(seq) FROM events WHERE run_key = ?", (run_key,)).fetchone()
        self._seq = (row[0] + 1) if row[0] is not None else 0
        self._pending_events: list[tuple[Any, ...]] = []

    def events(self) -> list[Event]:
        rows = self.db.execute(
            "SELECT kind, question_id, sample_index, messages_hash, detail FROM events WHERE run_key = ? "
            "ORDER BY seq", (self.run_key,))
        return [Event(*row) for row in rows]

    def lookup(self, question_id: str, sample_index: int, messages_hash: str) -> Sample | None:
        row = self.db.execute(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, "
            "cost_usd, mean_logprob FROM samples WHERE sample_key = ? AND question_id = ? AND sample_index = ? "
            "AND messages_hash = ?", (self.sample_key, question_id, sample_index, messages_hash)).fetchone()
        if row is None:
            return None
        text, finish_reason, *usage, mean_logprob = row
        return Sample(text, None, Usage(*usage), finish_reason, mean_logprob)

    def samples_recorded(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM samples WHERE sample_key = ?",
                                   (self.sample_key,)).fetchone()[0])

    def _event(self, kind: str, question_id: str, sample_index: int, messages_hash: str | None,
               detail: str | None = None) -> tuple[Any, ...]:
        row = (self.run_key, self._seq, kind, question_id, sample_index, messages_hash, detail)
        self._seq += 1
        return row

    def record_request(self, question_id: str, sample_index: int, messages_hash: str) -> None:
        """Buffered: written with the next result, which is all a resume needs (an unwritten request was in
        flight and is simply issued again)."""
        self._pending_events.append(self._event("request", question_id, sample_index, messages_hash))

    def record_result(self, question_id: str, sample_index: int, messages_hash: str, sample: Sample,
                      messages: list[dict[str, str]] | None, *, new: bool) -> None:
        """One transaction: the buffered requests, the result event and (when it is new) the sample itself."""
        events = [*self._pending_events, self._event("result", question_id, sample_index, messages_hash)]
        self._pending_events = []
        u = sample.usage
        with self.journal._writing():
            if new:
                self.db.execute(
                    "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.sample_key, question_id, sample_index, messages_hash, self.run_key, sample.text,
                     sample.finish_reason, u.prompt_tokens, u.completion_tokens, u.cached_tokens,
                     u.reasoning_tokens, u.cost_usd,
                     json.dumps(messages, ensure_ascii=False) if messages is not None else None, time.time(),
                     sample.mean_logprob))
            self.db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", events)

    def record_failure(self, question_id: str, sample_index: int, messages_hash: str, kind: str) -> None:
        events = [*self._pending_events, self._event("failure", question_id, sample_index, messages_hash, kind)]
        self._pending_events = []
        with self.journal._writing():
            self.db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", events)

    def truncate_events(self, keep: int) -> None:
        """Forget events from position ``keep`` on (after a resume diverged from the log)."""
        rows = self.db.execute("SELECT seq FROM events WHERE run_key = ? ORDER BY seq", (self.run_key,)).fetchall()
        if keep < len(rows):
            with self.journal._writing():
                self.db.execute("DELETE FROM events WHERE run_key = ? AND seq >= ?", (self.run_key, rows[keep][0]))
        self._seq = rows[keep - 1][0] + 1 if 0 < keep <= len(rows) else (0 if keep == 0 else self._seq)
        self._pending_events = []

    def iter_samples(self) -> Iterator[tuple[str, int, Sample]]:
        rows = self.db.execute(
            "SELECT question_id, sample_index, text, finish_reason, prompt_tokens, completion_tokens, cached_tokens, "
            "reasoning_tokens, cost_usd FROM samples WHERE run_key = ? ORDER BY created_at", (self.run_key,))
        for qid, index, text, finish_reason, *usage in rows:
            yield qid, index, Sample(text, None, Usage(*usage), finish_reason)
