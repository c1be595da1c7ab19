"""Running a command's jobs: in this process or in worker processes (``-j N``), reporting each
file in input order, a progress bar on terminals, and the exit code of the whole."""

from __future__ import annotations

import sys
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .exits import CliError, ExitCode, classify, error, one_line, warn
from .inputs import Job
from .outputs import write_output
from .runtime import start_worker, worker_threads

#: Jobs handed to the workers ahead of the one reported next, per worker: enough to keep them
#: busy, few enough that finished outputs waiting for a slow file do not pile up in memory.
AHEAD_PER_WORKER = 2


@dataclass
class Result:
    """What one successful job reports for the summary."""

    in_bytes: int
    out_bytes: int
    bpp: float


@dataclass
class Coded:
    """What handling one file produced: the output's bytes (None: nothing to write), the
    per-file report line ("" for none) and the figures for the summary."""

    data: bytes | None
    line: str
    result: Result


@dataclass
class Outcome:
    """A job's end, as it travels back from a worker: the warnings, then a success or a
    failure (message, exit code)."""

    warnings: list[str]
    coded: Coded | None = None
    failure: tuple[str, ExitCode] | None = None


Work = Callable[[Job], Coded]


def no_work(job: Job) -> Coded:
    """The work of a run whose every job failed before any (so that they are reported)."""
    raise AssertionError(f"{job.label}: no work to do")


def _ours(item: warnings.WarningMessage) -> bool:
    """Warnings about the user's data: raised by lqz, the CLI or Pillow (not by torch & co)."""
    path = Path(item.filename).resolve().parts
    return any(part in ("lqz", "codec", "cli", "PIL") for part in path[-3:-1])


def attempt(work: Work, job: Job, stage_code: ExitCode, debug: bool) -> Outcome:
    """Run ``work`` on ``job``, catching its warnings (library chatter only with ``debug``) and
    turning a failure into a message and an exit code. Runs in workers too."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coded: Coded | None = None
        failure: tuple[str, ExitCode] | None = None
        try:
            if job.failure is not None:
                raise job.failure
            coded = work(job)
        except Exception as exc:
            if debug:
                traceback.print_exc()
            message, code = classify(exc, stage_code)
            if not isinstance(exc, CliError) and not message.startswith(job.label):
                message = f"{job.label}: {message}"
            failure = (message, code)
        texts: list[str] = []
        for item in caught:
            text = one_line(item.message)
            if text not in texts and (debug or _ours(item)):
                texts.append(text)
    return Outcome(texts, coded, failure)


@dataclass
class Batch:
    """Runs jobs with a progress bar (TTY only), per-file lines and a closing summary."""

    verb: str
    quiet: bool
    debug: bool
    batch: bool
    stage_code: ExitCode
    force: bool = False
    results: list[Result] = field(default_factory=list)
    failures: list[ExitCode] = field(default_factory=list)

    def run(
        self, jobs: list[Job], work: Work, workers: int = 1, threads: int | None = None
    ) -> ExitCode:
        """Handle every job (``workers`` processes of ``threads`` threads each when more than
        one: ``work`` must then pickle) and report them in input order."""
        start = time.perf_counter()
        bar = self._bar(len(jobs))
        outcomes = self._outcomes(jobs, work, workers, threads)
        try:
            for job, outcome in outcomes:
                if bar is not None:
                    bar.set_postfix_str(job.label[-40:], refresh=False)
                self._finish(job, outcome)
                if bar is not None:
                    bar.update()
        finally:
            outcomes.close()  # stops the workers now if we stop early (Ctrl-C, SIGTERM)
            if bar is not None:
                bar.close()
        if self.batch and not self.quiet:
            click.echo(self.summary(time.perf_counter() - start), err=True)
        if not self.failures:
            return ExitCode.OK
        if not self.results and len(set(self.failures)) == 1:
            return self.failures[0]  # nothing done, for one reason: that reason's code
        return ExitCode.PARTIAL

    def _outcomes(
        self, jobs: list[Job], work: Work, workers: int, threads: int | None
    ) -> Generator[tuple[Job, Outcome], None, None]:
        todo = [job for job in jobs if job.failure is None]
        workers = min(workers, len(todo))
        if workers <= 1:
            for job in jobs:
                yield job, attempt(work, job, self.stage_code, self.debug)
            return
        with _Pool(workers, worker_threads(workers, threads), self.debug) as pool:
            pending: deque[Any] = deque()
            queue = iter(todo)
            for job in jobs:
                if job.failure is not None:
                    yield job, attempt(work, job, self.stage_code, self.debug)
                    continue
                while len(pending) < AHEAD_PER_WORKER * workers:
                    queued = next(queue, None)
                    if queued is None:
                        break
                    pending.append(pool.submit(attempt, work, queued, self.stage_code, self.debug))
                yield job, pool.outcome(job, pending.popleft())

    def _finish(self, job: Job, outcome: Outcome) -> None:
        for text in outcome.warnings:
            warn(f"{job.label}: {text}")
        if outcome.failure is not None:
            message, code = outcome.failure
            error(message)
            self.failures.append(code)
            return
        coded = outcome.coded
        assert coded is not None
        if coded.data is not None:
            try:
                write_output(job.dest, coded.data, self.force)
            except CliError as exc:
                error(str(exc))
                self.failures.append(exc.exit_code)
                return
        if coded.line:
            self.say(coded.line)
        self.results.append(coded.result)

    def _bar(self, total: int) -> Any:
        if self.quiet or not self.batch or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=total, unit="file", desc=self.verb, file=sys.stderr, leave=False)

    def say(self, line: str) -> None:
        """A per-file line on stderr (above the progress bar), unless --quiet."""
        if self.quiet:
            return
        if self.batch and sys.stderr.isatty():
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    def summary(self, seconds: float) -> str:
        done = len(self.results)
        total_in = sum(r.in_bytes for r in self.results)
        total_out = sum(r.out_bytes for r in self.results)
        mean_bpp = sum(r.bpp for r in self.results) / done if done else 0.0
        failed = f", {len(self.failures)} failed" if self.failures else ""
        return (
            f"{self.verb} {done} file{'s' if done != 1 else ''}{failed}: "
            f"{total_in:,} -> {total_out:,} bytes, mean {mean_bpp:.4f} bpp, {seconds:.2f} s"
        )


class _Pool:
    """Worker processes, each with its own model and ``threads`` threads.

    Started with ``spawn``: torch's and numba's thread pools do not survive a fork. On any
    exit other than the normal one (Ctrl-C, SIGTERM, an error) the workers are killed rather
    than waited for; they write nothing, the parent writes every output.
    """

    def __init__(self, workers: int, threads: int, debug: bool) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(threads, debug),
        )

    def __enter__(self) -> _Pool:
        return self

    def submit(self, *args: Any) -> Any:
        from concurrent.futures import Future

        try:
            return self._executor.submit(*args)
        except Exception as exc:  # the pool broke: a worker died
            failed: Future[Outcome] = Future()
            failed.set_exception(exc)
            return failed

    def outcome(self, job: Job, future: Any) -> Outcome:
        """The job's outcome. A worker that dies (killed, out of memory) breaks the pool: the
        jobs not done by then fail."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            reason = "a worker process died (killed, or out of memory)"
        except Exception as exc:
            reason = f"worker process failed: {one_line(exc) or type(exc).__name__}"
        return Outcome([], failure=(f"{job.label}: not coded: {reason}", ExitCode.ERROR))

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        executor, self._executor = self._executor, None
        if kind is not None:
            processes = list((getattr(executor, "_processes", None) or {}).values())
            executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=5)
        # joined and dropped here, so that its queues' semaphores are released before lqz exits
        # (it skips the interpreter's clean-up, and multiprocessing's tracker would warn)
        executor.shutdown(wait=True)
        del executor
