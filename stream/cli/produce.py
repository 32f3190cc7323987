"""`driftwarden produce predictions|ground-truth FILE.jsonl`: validate JSON lines and publish the valid ones.

Lines are read in chunks and validated in bulk (`stream.contracts.events.decode_predictions`); blank lines are
skipped, every other bad line is rejected with its line number and reason. Exit code 0 when every line was
sent, 1 when any line was rejected or not delivered, 2 on usage errors.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from stream.client import DeliveryError, Producer, resolve_bootstrap
from stream.config import Settings
from stream.contracts.events import (
    DEFAULT_LIMITS,
    ContractError,
    GroundTruthEvent,
    Limits,
    PredictionEvent,
    Reason,
    decode_ground_truth,
    decode_predictions,
)
from stream.errors import UserError
from stream.kafka.security import client_options

__all__ = ["LineError", "parse_jsonl", "produce_app"]

Kind = Literal["predictions", "ground_truth"]
Event = PredictionEvent | GroundTruthEvent

produce_app = typer.Typer(help="Validate and publish events from a JSON Lines file (or - for stdin).",
                          no_args_is_help=True, rich_markup_mode="markdown")

_BOM = b"\xef\xbb\xbf"
_REPORT_SECONDS = 5.0



def _say(console: Console, text: str) -> None:
    """Print plain text (no markup, highlighting or hard wrapping: it may hold user data and paths)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)

@dataclass(frozen=True, slots=True)
class LineError:
    """A rejected input line: 1-based line number, reason code and message."""

    line: int
    reason: Reason
    error: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.error}"


def parse_jsonl(
    lines: Iterable[bytes], kind: Kind, limits: Limits = DEFAULT_LIMITS, chunk: int = 2000
) -> Iterator[tuple[list[tuple[int, Event]], list[LineError]]]:
    """Validate JSON lines in chunks; yield ``(valid (line number, event) pairs, rejected lines)`` per chunk.

    Line numbers start at 1 and count blank lines, which are skipped. A UTF-8 byte order mark is ignored.

    Examples
    --------
    >>> lines = [b'{"prediction_id": "a", "label": 1, "timestamp": 0}', b"", b"{oops"]
    >>> [(ok, [str(e) for e in bad]) for ok, bad in parse_jsonl(lines, "ground_truth")]  # doctest: +ELLIPSIS
    [([(1, GroundTruthEvent(...))], ['line 3: not_json: message is not valid JSON: ...'])]
    """
    decode = decode_predictions if kind == "predictions" else decode_ground_truth
    numbers: list[int] = []
    raws: list[bytes] = []
    for number, line in enumerate(lines, start=1):
        raw = line.strip()
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):].strip()
        if not raw:
            continue
        numbers.append(number)
        raws.append(raw)
        if len(raws) >= chunk:
            yield _check(numbers, raws, decode, limits)
            numbers, raws = [], []
    if raws:
        yield _check(numbers, raws, decode, limits)


def _check(numbers: list[int], raws: list[bytes], decode: Any, limits: Limits) -> tuple[
    list[tuple[int, Event]], list[LineError]
]:
    events, rejections = decode(raws, limits)
    rejected = {r.index for r in rejections}
    valid = [n for i, n in enumerate(numbers) if i not in rejected]
    errors = [LineError(numbers[r.index], r.reason, r.error) for r in rejections]
    return list(zip(valid, events, strict=True)), errors


class _Report:
    """Progress on stderr (a rich bar on a terminal, a line every few seconds otherwise) and rejected lines."""

    def __init__(self, console: Console, total_bytes: int | None, max_errors: int, rejects: IO[str] | None) -> None:
        self.console = console
        self.max_errors = max_errors
        self.rejects = rejects
        self.sent = 0
        self.rejected = 0
        self.started = time.monotonic()
        self._next = self.started + _REPORT_SECONDS
        self.progress: Progress | None = None
        if console.is_terminal:
            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(),
                TextColumn("{task.fields[sent]} sent, {task.fields[rejected]} rejected"), TimeElapsedColumn(),
                console=console, transient=True,
            )
            self.task = self.progress.add_task("producing", total=total_bytes, sent=0, rejected=0)
            self.progress.start()

    def reject(self, errors: list[LineError]) -> None:
        for error in errors:
            self.rejected += 1
            if self.rejected <= self.max_errors:
                _say(self.console, str(error))
            if self.rejects is not None:
                self.rejects.write(f"{error}\n")

    def advance(self, sent: int, position: int) -> None:
        self.sent += sent
        if self.progress is not None:
            self.progress.update(self.task, completed=position, sent=self.sent, rejected=self.rejected)
            return
        now = time.monotonic()
        if now >= self._next:
            self._next = now + _REPORT_SECONDS
            rate = self.sent / (now - self.started)
            _say(self.console, f"{self.sent} sent, {self.rejected} rejected ({rate:.0f}/s)")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class _CountingLines:
    """Lines of a binary stream, keeping the number of bytes read so far."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.position = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self.stream:
            self.position += len(line)
            yield line


def produce_file(
    kind: Kind, path: str, max_errors: int = 20, rejects: Path | None = None, settings: Settings | None = None,
    console: Console | None = None, out: Console | None = None,
) -> tuple[int, int, int]:
    """Publish the valid lines of ``path`` (``-`` = stdin); return ``(sent, rejected, failed)``."""
    s = settings or Settings()
    from stream.cli import output

    err = console or output.stderr()
    out = out or output.stdout()
    from stream.runtime.service import ensure_topics

    bootstrap, embedded = resolve_bootstrap(s)
    stream: IO[bytes]
    if path == "-":
        stream, total = sys.stdin.buffer, None
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
        total = Path(path).stat().st_size
    try:
        reject_file = open(rejects, "w") if rejects is not None else None  # noqa: SIM115
    except OSError as exc:
        stream.close()
        raise UserError(f"cannot write {rejects}: {exc.strerror}") from None
    asyncio.run(ensure_topics(bootstrap, s, security=client_options(s, embedded)))
    lines = _CountingLines(stream)
    report = _Report(err, total, max_errors, reject_file)
    failed = 0
    try:
        with Producer(None if embedded else bootstrap, settings=s) as producer:  # security as ensure_topics
            send = producer.send_prediction if kind == "predictions" else producer.send_ground_truth
            for valid, errors in parse_jsonl(lines, kind):
                queued = 0
                for number, event in valid:
                    try:
                        send(event)  # type: ignore[arg-type]
                        queued += 1
                    except ContractError as exc:  # too large once re-encoded
                        errors.append(LineError(number, exc.reason, str(exc)))
                report.reject(sorted(errors, key=lambda e: e.line))
                report.advance(queued, lines.position)
            try:
                producer.flush()
            except DeliveryError as exc:
                _say(err, f"error: {exc}")
            failed = producer.failed
            sent = producer.sent
    finally:
        report.close()
        if stream is not sys.stdin.buffer:
            stream.close()
        if reject_file is not None:
            reject_file.close()
    hidden = report.rejected - min(report.rejected, max_errors)
    if hidden:
        where = f": all are in {rejects}" if rejects is not None else " (use --rejects FILE to keep them all)"
        _say(err, f"... {hidden} more rejected lines not shown{where}")
    noun = "predictions" if kind == "predictions" else "ground-truth events"
    summary = f"sent {sent} {noun} to {bootstrap}, rejected {report.rejected} lines"
    _say(out, summary + (f", {failed} not delivered" if failed else ""))
    return sent, report.rejected, failed


_MaxErrors = Annotated[int, typer.Option("--max-errors", min=0, help="show at most this many rejected lines")]
_Rejects = Annotated[Path | None, typer.Option("--rejects", help="write every rejected line's error to FILE")]
_File = Annotated[str, typer.Argument(metavar="FILE", help="JSON Lines file, or - for stdin")]


def _run(kind: Kind, file: str, max_errors: int, rejects: Path | None) -> None:
    from stream.cli.common import settings

    _, rejected, failed = produce_file(kind, file, max_errors, rejects, settings())
    raise typer.Exit(1 if rejected or failed else 0)


@produce_app.command("predictions")
def produce_predictions(file: _File, max_errors: _MaxErrors = 20, rejects: _Rejects = None) -> None:
    """Publish PredictionEvent lines to the predictions topic (bad lines are reported with their number).

    Example: `driftwarden produce predictions examples/predictions.jsonl`
    """
    _run("predictions", file, max_errors, rejects)


@produce_app.command("ground-truth")
def produce_ground_truth(file: _File, max_errors: _MaxErrors = 20, rejects: _Rejects = None) -> None:
    """Publish GroundTruthEvent lines to the ground-truth topic (bad lines are reported with their number).

    Example: `driftwarden produce ground-truth examples/labels.jsonl`
    """
    _run("ground_truth", file, max_errors, rejects)
