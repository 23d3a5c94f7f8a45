"""One writer per journal, and journals or output folders that cannot be used: one line, exit 2, nothing paid for
lost (issue 10). Real SQLite locking, real files, the replay server over HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dynscaling import Budget
from dynscaling.backends.openai import OpenAIBackend
from dynscaling.drivers import RunStats
from dynscaling.errors import JournalError
from dynscaling.journal import Journal
from dynscaling.pools import Pool, load_pool
from dynscaling.replay_server import ReplayServer
from run_safety_helpers import DATE_POOL, read_out, solve, write_batch


@pytest.fixture(scope="module")
def pool() -> Pool:
    full = load_pool(DATE_POOL)
    return Pool(full.name, full.path, full.entries[:20])


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("DYNSCALING_HOME", str(tmp_path / "home"))


class TestOneWriterPerJournal:
    def test_a_second_run_on_a_held_journal_refuses_in_one_line(self, pool: Pool, tmp_path: Path) -> None:
        journal = tmp_path / "j.sqlite"
        with Journal(journal), ReplayServer(pool) as server:
            result = solve(server.base_url, server.model, write_batch(pool, tmp_path / "in.jsonl"),
                           tmp_path / "out.jsonl", journal)
            served = server.stats.snapshot()["samples"]
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "another run is using this journal" in result.output
        assert str(journal) in result.output
        assert served == 0

    def test_two_journals_in_one_process_cannot_both_write(self, tmp_path: Path) -> None:
        with Journal(tmp_path / "j.sqlite"):
            with pytest.raises(JournalError, match="another run is using this journal"):
                Journal(tmp_path / "j.sqlite")
        with Journal(tmp_path / "j.sqlite") as journal:  # released on close
            assert journal.migrations()

    def test_concurrent_runs_one_refuses_or_waits_and_the_finished_command_serves_nothing(
            self, pool: Pool, tmp_path: Path) -> None:
        batch, journal = write_batch(pool, tmp_path / "in.jsonl"), tmp_path / "j.sqlite"
        batch = write_batch(pool, tmp_path / "in.jsonl", 12)
        # one sample at a time, 0.3 s each: the first run holds the journal for about 10 s, far longer than the
        # second needs to start and reach it
        with ReplayServer(pool, latency=0.3, slots=1) as server:
            args = [sys.executable, "-m", "dynscaling.cli", "solve", str(batch), "--base-url", server.base_url,
                    "--model", server.model, "--journal", str(journal), "--strategy", "sc", "--budget", "3",
                    "--concurrency", "1"]
            first = subprocess.Popen([*args, "--out", str(tmp_path / "a.jsonl")], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
            while server.stats.snapshot()["samples"] == 0:  # the first run holds the journal once it samples
                assert first.poll() is None
                threading.Event().wait(0.01)
            refused = subprocess.run([*args, "--out", str(tmp_path / "b.jsonl")], capture_output=True, text=True,
                                     timeout=100)
            waiter = subprocess.Popen([*args, "--out", str(tmp_path / "c.jsonl"), "--journal-wait", "100"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            _, first_err = first.communicate(timeout=100)
            served_by_first = server.stats.snapshot()["samples"]
            _, waiter_err = waiter.communicate(timeout=100)
            served = server.stats.snapshot()["samples"]
        assert first.returncode == 0, first_err
        assert refused.returncode == 2 and "another run is using this journal" in refused.stderr
        assert not (tmp_path / "b.jsonl").exists()
        assert waiter.returncode == 0, waiter_err
        assert served_by_first == served == 36  # the waiting run found everything paid for: it served 0
        assert read_out(tmp_path / "c.jsonl") == read_out(tmp_path / "a.jsonl")


class TestBadFiles:
    def test_a_garbage_journal_is_one_line_and_nothing_is_sampled(self, pool: Pool, tmp_path: Path) -> None:
        journal = tmp_path / "j.sqlite"
        journal.write_bytes(b"this is not a database\n" * 200)
        with ReplayServer(pool) as server:
            result = solve(server.base_url, server.model, write_batch(pool, tmp_path / "in.jsonl"),
                           tmp_path / "out.jsonl", journal)
            served = server.stats.snapshot()["samples"]
        assert result.exit_code == 2, result.output
        assert "not a dynscaling journal" in result.output and result.output.count("\n") == 1
        assert served == 0
        assert journal.read_bytes().startswith(b"this is not a database")  # left as it was

    def test_a_journal_on_a_read_only_filesystem_is_one_line(self, pool: Pool, tmp_path: Path) -> None:
        with ReplayServer(pool) as server:  # /proc takes no new files, whoever asks (root included)
            result = solve(server.base_url, server.model, write_batch(pool, tmp_path / "in.jsonl"),
                           tmp_path / "out.jsonl", Path("/proc/dynscaling-journal.sqlite"))
            served = server.stats.snapshot()["samples"]
        assert result.exit_code == 2, result.output
        assert "cannot write the journal" in result.output and result.output.count("\n") == 1
        assert served == 0

    def test_an_output_folder_that_cannot_be_written_is_refused_before_paying(
            self, pool: Pool, tmp_path: Path) -> None:
        with ReplayServer(pool) as server:
            result = solve(server.base_url, server.model, write_batch(pool, tmp_path / "in.jsonl"),
                           Path("/proc/dynscaling-out/answers.jsonl"), tmp_path / "j.sqlite")
            served = server.stats.snapshot()["requests"]
        assert result.exit_code == 2, result.output
        assert "--out /proc/dynscaling-out/answers.jsonl: cannot write there" in result.output
        assert served == 0

    def test_a_full_journal_stops_the_run_and_keeps_every_paid_sample_in_memory(
            self, pool: Pool, tmp_path: Path) -> None:
        from dynscaling import Engine
        from dynscaling.drivers import arun

        questions = pool.questions[:20]

        async def run(journal: Journal) -> tuple[RunStats, BaseException | None]:
            backend = OpenAIBackend(server.model, base_url=server.base_url)
            stats = RunStats()
            log = journal.open_run(sample_key={"m": 1}, run_key={"s": "sc"})
            pages = journal.db.execute("PRAGMA page_count").fetchone()[0]
            journal.db.execute(f"PRAGMA max_page_count={pages + 1}")  # SQLite's own "database or disk is full"
            try:
                await arun(Engine(questions, "sc", Budget(samples=60)), backend, concurrency=4, log=log, stats=stats)
            except JournalError as error:
                return stats, error
            finally:
                await backend.aclose()
            return stats, None

        with ReplayServer(pool) as server, Journal(tmp_path / "j.sqlite") as journal:
            stats, error = asyncio.run(run(journal))
            served = server.stats.snapshot()["samples"]
            journaled = journal.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        assert isinstance(error, JournalError) and "full" in str(error)
        assert stats.result is not None
        assert stats.result.samples == stats.new == served  # every sample served is counted, none dropped
        assert served < 60 and journaled < served  # it stopped, and kept in memory what the journal could not

    def test_a_disk_without_room_for_the_journal_is_refused_before_paying(
            self, pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import dynscaling.journal

        # the threshold above what any disk has: the check itself runs for real (shutil.disk_usage)
        monkeypatch.setattr(dynscaling.journal, "MIN_FREE_BYTES", 1 << 62)
        with ReplayServer(pool) as server:
            result = solve(server.base_url, server.model, write_batch(pool, tmp_path / "in.jsonl"),
                           tmp_path / "out.jsonl", tmp_path / "j.sqlite")
            served = server.stats.snapshot()["requests"]
        assert result.exit_code == 2, result.output
        assert "database or disk is full" in result.output and "free some space" in result.output
        assert result.output.count("\n") == 1
        assert served == 0
