"""The journal's own contract, in process: which runs share samples and events, what ``fresh`` forgets, how a
resume that diverged cuts the event log, the failures and samples a run reads back, where the journal lives by
default, and the one-line advice for a journal that cannot be used."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from dynscaling import Sample, Usage
from dynscaling.errors import JournalError
from dynscaling.journal import Event, Journal, RunLog, default_journal_path, journal_error

SAMPLES = {"backend": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}, "seed": 0}
OTHER_MODEL = {"backend": {"base_url": "http://127.0.0.1:1/v1", "model": "other"}, "seed": 0}
BATCH = "sha256:batch-one"


def run_key(budget: int, batch: str = BATCH, strategy: str = "sc") -> dict[str, object]:
    return {"strategy": strategy, "budget": [budget, None, None], "questions": batch}


def answer(log: RunLog, question_id: str, index: int, text: str = "The answer is 1.", digest: str = "h") -> None:
    """One request and its result, as the live driver journals them."""
    log.record_request(question_id, index, digest)
    log.record_result(question_id, index, digest, Sample(text, None, Usage(3, 4), "stop"), None, new=True)


def kinds(log: RunLog) -> list[tuple[str, str, int]]:
    return [(e.kind, e.question_id, e.sample_index) for e in log.events()]


@pytest.fixture
def journal(tmp_path: Path):  # noqa: ANN201 (a generator fixture)
    with Journal(tmp_path / "j.sqlite") as opened:
        yield opened


class TestWhatRunsShare:
    def test_a_run_with_another_budget_reuses_the_samples_but_keeps_its_own_events(self, journal: Journal) -> None:
        small = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        answer(small, "a", 0, "The answer is 5.")
        large = journal.open_run(sample_key=SAMPLES, run_key=run_key(4))
        found = large.lookup("a", 0, "h")
        assert found is not None and (found.text, found.usage) == ("The answer is 5.", Usage(3, 4))
        assert large.events() == []
        assert kinds(small) == [("request", "a", 0), ("result", "a", 0)]
        assert large.run_key != small.run_key and large.sample_key == small.sample_key

    def test_another_model_never_sees_the_samples(self, journal: Journal) -> None:
        answer(journal.open_run(sample_key=SAMPLES, run_key=run_key(2)), "a", 0)
        other = journal.open_run(sample_key=OTHER_MODEL, run_key=run_key(2))
        assert other.lookup("a", 0, "h") is None
        assert other.samples_recorded() == 0
        assert other.events() == []

    def test_samples_recorded_counts_every_run_of_the_same_samples(self, journal: Journal) -> None:
        answer(journal.open_run(sample_key=SAMPLES, run_key=run_key(2)), "a", 0)
        answer(journal.open_run(sample_key=SAMPLES, run_key=run_key(4)), "a", 1)
        answer(journal.open_run(sample_key=OTHER_MODEL, run_key=run_key(4)), "a", 0)
        assert journal.open_run(sample_key=SAMPLES, run_key=run_key(8)).samples_recorded() == 2

    def test_the_keys_hash_scheme_is_stable_so_older_journals_still_resume(self, journal: Journal) -> None:
        # the scheme as written in journals on disk: a change here orphans every journal written before it
        def tagged(value: object) -> str:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]

        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        assert log.sample_key == tagged(SAMPLES)
        assert log.run_key == tagged({"samples": tagged(SAMPLES), **run_key(2)})
        # text beyond ASCII (a prompt in French) is hashed as UTF-8, not as \u escapes
        french = {**SAMPLES, "prompts": {"system": "Réponds brièvement."}}
        assert journal.open_run(sample_key=french, run_key=run_key(2)).sample_key == tagged(french)

    def test_a_run_key_may_hold_values_json_cannot(self, journal: Journal, tmp_path: Path) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key={**run_key(2), "prompts_file": tmp_path / "p.json"})
        answer(log, "a", 0)
        fresh = journal.open_run(sample_key=SAMPLES, run_key={**run_key(2), "prompts_file": tmp_path / "p.json"},
                                 fresh=True, question_ids=["a"])
        assert fresh.samples_recorded() == 0


class TestFresh:
    def test_fresh_forgets_the_questions_samples_and_every_run_over_the_same_batch(self, journal: Journal) -> None:
        two = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        answer(two, "a", 0)
        answer(two, "b", 0)
        four = journal.open_run(sample_key=SAMPLES, run_key=run_key(4, strategy="ucb"))
        answer(four, "a", 1)
        elsewhere = journal.open_run(sample_key=SAMPLES, run_key=run_key(2, batch="sha256:batch-two"))
        answer(elsewhere, "z", 0)
        other_model = journal.open_run(sample_key=OTHER_MODEL, run_key=run_key(2))
        answer(other_model, "a", 0)

        again = journal.open_run(sample_key=SAMPLES, run_key=run_key(4), fresh=True, question_ids=["a", "b"])
        assert again.lookup("a", 0, "h") is None and again.lookup("b", 0, "h") is None
        assert again.lookup("a", 1, "h") is None  # paid by another run (budget, strategy) of the batch: gone too
        assert two.events() == [] and four.events() == []
        # another batch and another model keep what they paid for
        assert again.lookup("z", 0, "h") is not None
        assert kinds(elsewhere) == [("request", "z", 0), ("result", "z", 0)]
        assert other_model.lookup("a", 0, "h") is not None and len(other_model.events()) == 2

    def test_fresh_without_the_question_ids_forgets_only_this_runs_own(self, journal: Journal) -> None:
        mine = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        answer(mine, "a", 0)
        theirs = journal.open_run(sample_key=SAMPLES, run_key=run_key(4))
        answer(theirs, "a", 1)
        again = journal.open_run(sample_key=SAMPLES, run_key=run_key(2), fresh=True)
        assert again.events() == [] and again.lookup("a", 0, "h") is None
        assert again.lookup("a", 1, "h") is not None and len(theirs.events()) == 2

    def test_fresh_over_a_run_key_without_a_batch_forgets_the_samples_only(self, journal: Journal) -> None:
        keyless = {"strategy": "sc", "budget": [2, None, None]}
        first = journal.open_run(sample_key=SAMPLES, run_key=keyless)
        answer(first, "a", 0)
        other = journal.open_run(sample_key=SAMPLES, run_key=run_key(4))
        answer(other, "b", 0)
        again = journal.open_run(sample_key=SAMPLES, run_key=keyless, fresh=True, question_ids=["a", "b"])
        assert again.samples_recorded() == 0
        assert again.events() == [] and len(other.events()) == 2


class TestEventsAfterADivergedResume:
    def three_samples(self, journal: Journal) -> RunLog:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(3))
        for index in range(3):
            answer(log, "a", index)
        return log

    def test_truncating_keeps_the_first_events_and_appends_after_them(self, journal: Journal) -> None:
        log = self.three_samples(journal)
        log.truncate_events(3)
        answer(log, "b", 0)
        expected = [("request", "a", 0), ("result", "a", 0), ("request", "a", 1), ("request", "b", 0),
                    ("result", "b", 0)]
        assert kinds(log) == expected
        assert kinds(journal.open_run(sample_key=SAMPLES, run_key=run_key(3))) == expected  # committed

    def test_truncating_to_nothing_starts_the_log_over(self, journal: Journal) -> None:
        log = self.three_samples(journal)
        log.truncate_events(0)
        assert log.events() == []
        answer(log, "b", 0)
        assert kinds(log) == [("request", "b", 0), ("result", "b", 0)]

    def test_truncating_a_log_with_no_events_yet_is_harmless(self, journal: Journal) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(3))
        log.truncate_events(0)
        answer(log, "a", 0)
        assert kinds(log) == [("request", "a", 0), ("result", "a", 0)]

    def test_truncating_at_or_past_the_end_removes_nothing(self, journal: Journal) -> None:
        log = self.three_samples(journal)
        log.truncate_events(6)
        log.truncate_events(50)
        answer(log, "b", 0)
        assert len(log.events()) == 8 and kinds(log)[-2:] == [("request", "b", 0), ("result", "b", 0)]

    def test_truncating_a_reopened_log_continues_after_what_it_kept(self, journal: Journal) -> None:
        self.three_samples(journal)
        reopened = journal.open_run(sample_key=SAMPLES, run_key=run_key(3))
        reopened.truncate_events(4)
        answer(reopened, "b", 0)
        assert kinds(reopened)[3:] == [("result", "a", 1), ("request", "b", 0), ("result", "b", 0)]

    def test_truncating_drops_requests_not_yet_written(self, journal: Journal) -> None:
        log = self.three_samples(journal)
        log.record_request("a", 3, "h")  # buffered until the next result or failure
        log.truncate_events(6)
        log.record_failure("b", 0, "h", "timeout")
        assert kinds(log)[-1] == ("failure", "b", 0) and len(log.events()) == 7


class TestWhatARunReadsBack:
    def test_a_failure_is_written_with_its_kind_after_the_requests_before_it(self, journal: Journal,
                                                                            tmp_path: Path) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        log.record_request("a", 0, "h0")
        log.record_request("b", 0, "h1")
        log.record_failure("a", 0, "h0", "rate_limit")
        expected = [Event("request", "a", 0, "h0"), Event("request", "b", 0, "h1"),
                    Event("failure", "a", 0, "h0", "rate_limit")]
        assert log.events() == expected
        journal.close()
        with Journal(tmp_path / "j.sqlite") as reopened:  # committed, not only buffered
            assert reopened.open_run(sample_key=SAMPLES, run_key=run_key(2)).events() == expected

    def test_a_run_goes_on_after_a_failure(self, journal: Journal) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        log.record_request("a", 0, "h")
        log.record_failure("a", 0, "h", "timeout")
        answer(log, "a", 1)
        assert kinds(log) == [("request", "a", 0), ("failure", "a", 0), ("request", "a", 1), ("result", "a", 1)]

    def test_iter_samples_yields_this_runs_samples_in_arrival_order(self, journal: Journal) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        log.record_result("b", 0, "h", Sample("B zero", None, Usage(1, 2, 3, 4, 0.5), "length"), None, new=True)
        log.record_result("a", 0, "h", Sample("A zero", None, Usage(5, 6), "stop"), None, new=True)
        answer(journal.open_run(sample_key=SAMPLES, run_key=run_key(4)), "c", 0)
        assert list(log.iter_samples()) == [("b", 0, Sample("B zero", None, Usage(1, 2, 3, 4, 0.5), "length")),
                                             ("a", 0, Sample("A zero", None, Usage(5, 6), "stop"))]

    def test_the_migrations_are_listed_in_the_order_they_were_applied(self, journal: Journal) -> None:
        assert journal.migrations() == ["m001_initial", "m002_sample_logprob"]


class TestWhereTheJournalLives:
    def test_under_dynscaling_home_when_set(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("DYNSCALING_HOME", str(tmp_path / "state"))
        assert default_journal_path() == tmp_path / "state" / "journal.sqlite"

    def test_in_the_home_folder_otherwise(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.delenv("DYNSCALING_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        assert default_journal_path() == tmp_path / ".dynscaling" / "journal.sqlite"


class TestAdviceForAJournalThatCannotBeUsed:
    PATH = Path("/data/j.sqlite")

    @pytest.mark.parametrize(("error", "advice"), [
        (sqlite3.OperationalError("database is locked"),
         "another run is using this journal (one writer at a time): wait for it to finish, or pass another "
         "--journal"),
        (sqlite3.DatabaseError("file is not a database"),
         "this file is not a dynscaling journal (not SQLite): move it away, or pass another --journal"),
        (sqlite3.OperationalError("database or disk is full"),
         "cannot write the journal (database or disk is full): free some space and run the same command again; "
         "every sample journaled so far is kept"),
        (sqlite3.OperationalError("attempt to write a readonly database"),
         "cannot write the journal (attempt to write a readonly database): make it writable, or pass another "
         "--journal"),
        (OSError(30, "read-only file system"),
         "cannot write the journal ([Errno 30] read-only file system): make it writable, or pass another "
         "--journal"),
        (PermissionError(13, "Permission denied"),
         "cannot write the journal ([Errno 13] Permission denied): make it writable, or pass another --journal"),
        (sqlite3.OperationalError("unable to open database file"),
         "cannot write the journal (unable to open database file): make it writable, or pass another --journal"),
        (sqlite3.OperationalError("no such table: samples"), "cannot use the journal: no such table: samples"),
    ])
    def test_one_line_naming_the_file_and_what_to_do(self, error: BaseException, advice: str) -> None:
        assert str(journal_error(self.PATH, error)) == f"{self.PATH}: {advice}"

    def test_locked_is_only_advice_about_another_run_for_sqlite_errors(self) -> None:
        text = str(journal_error(self.PATH, OSError("resource locked by the OS")))
        assert text == f"{self.PATH}: cannot use the journal: resource locked by the OS"


class TestOpening:
    def test_an_in_memory_journal_needs_no_room_on_any_disk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import dynscaling.journal

        # the threshold above what any disk has: a file journal is refused (tests/test_journal_safety.py)
        monkeypatch.setattr(dynscaling.journal, "MIN_FREE_BYTES", 1 << 62)
        with Journal(":memory:") as in_memory:
            answer(in_memory.open_run(sample_key=SAMPLES, run_key=run_key(2)), "a", 0)
            assert in_memory.open_run(sample_key=SAMPLES, run_key=run_key(4)).samples_recorded() == 1

    def test_by_default_a_journal_does_not_wait_for_another_writer(self, tmp_path: Path) -> None:
        with Journal(tmp_path / "now.sqlite") as now, Journal(tmp_path / "later.sqlite", wait=2.5) as later:
            assert now.db.execute("PRAGMA busy_timeout").fetchone()[0] == 0
            assert later.db.execute("PRAGMA busy_timeout").fetchone()[0] == 2500

    def test_a_journal_in_folders_that_do_not_exist_yet_creates_them(self, tmp_path: Path) -> None:
        path = tmp_path / "runs" / "2026" / "j.sqlite"
        with Journal(path) as journal:
            answer(journal.open_run(sample_key=SAMPLES, run_key=run_key(2)), "a", 0)
        assert path.is_file()

    def test_a_journal_that_cannot_be_opened_is_one_line_naming_the_file(self, tmp_path: Path) -> None:
        folder = tmp_path / "a-folder.sqlite"
        folder.mkdir()
        with pytest.raises(JournalError) as raised:
            Journal(folder)
        assert str(raised.value).startswith(f"{folder}: ")
        assert "\n" not in str(raised.value)


class TestWhatASampleKeeps:
    def test_a_reused_sample_comes_back_as_it_was_recorded(self, journal: Journal) -> None:
        # a cut-off sample must stay cut off on reuse, or its last number would count as its answer
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        recorded = Sample("Counting: 3, 4, 5", None, Usage(9, 96, 2, 1, 0.003), "length", -0.25)
        log.record_result("a", 0, "h", recorded, None, new=True)
        assert journal.open_run(sample_key=SAMPLES, run_key=run_key(4)).lookup("a", 0, "h") == recorded

    def test_the_messages_that_produced_a_sample_are_kept_as_readable_json(self, journal: Journal) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        messages = [{"role": "user", "content": "Combien font 6 × 7 ?"}]
        log.record_result("a", 0, "h", Sample("42", None), messages, new=True)
        log.record_result("a", 1, "h", Sample("42", None), None, new=True)
        rows = journal.db.execute("SELECT sample_index, messages FROM samples ORDER BY sample_index").fetchall()
        assert rows == [(0, '[{"role": "user", "content": "Combien font 6 × 7 ?"}]'), (1, None)]

    def test_each_run_is_described_by_its_sample_key_and_run_key(self, journal: Journal) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        [(description,)] = journal.db.execute("SELECT description FROM runs WHERE run_key = ?", (log.run_key,))
        assert json.loads(description) == {"samples": SAMPLES, "run": run_key(2)}


class TestMigrationsAndFailures:
    def test_a_journal_from_before_a_migration_gets_it_on_open(self, tmp_path: Path) -> None:
        from dynscaling.journal import MIGRATIONS

        path = tmp_path / "old.sqlite"
        old = sqlite3.connect(path)
        old.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        name, first = MIGRATIONS[0]
        first(old)
        old.execute("INSERT INTO migrations VALUES (?, 0)", (name,))
        old.commit()
        old.close()
        with Journal(path) as journal:
            assert journal.migrations() == [name for name, _ in MIGRATIONS]
            log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
            log.record_result("a", 0, "h", Sample("x", None, mean_logprob=-1.5), None, new=True)
            assert log.lookup("a", 0, "h").mean_logprob == -1.5

    def test_a_run_that_cannot_be_opened_is_one_line_naming_the_file(self, tmp_path: Path) -> None:
        journal = Journal(tmp_path / "j.sqlite")
        journal.close()
        with pytest.raises(JournalError) as raised:
            journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        path = tmp_path / "j.sqlite"
        assert str(raised.value) == f"{path}: cannot use the journal: Cannot operate on a closed database."

    def test_a_failure_inside_a_write_rolls_it_back_and_the_journal_stays_usable(self, journal: Journal) -> None:
        log = journal.open_run(sample_key=SAMPLES, run_key=run_key(2))
        answer(log, "a", 0)
        journal.db.execute("UPDATE runs SET description = 'not json' WHERE run_key = ?", (log.run_key,))
        with pytest.raises(json.JSONDecodeError):  # fresh reads every run's description after deleting
            journal.open_run(sample_key=SAMPLES, run_key=run_key(2), fresh=True, question_ids=["a"])
        assert log.lookup("a", 0, "h") is not None and len(log.events()) == 2  # the deletes were undone
        answer(journal.open_run(sample_key=SAMPLES, run_key=run_key(4)), "b", 0)  # no transaction left open
