"""`driftwarden bench`: the command, its result table and files (the work is in `stream.bench.run`)."""

from __future__ import annotations

import contextlib
import signal
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stream.cli import output
from stream.errors import UserError

console = output.stdout()
err = output.stderr()


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _check(value: float | None, target: float) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}  ({'meets' if value >= target else 'below'} target >= {target:g})"


def render(result: dict[str, Any]) -> list[Table]:
    """The figures table and the stage split table of a bench result."""
    ev, dw, naive, stages, ratios = (result["events"], result["driftwarden"], result["naive"], result["stages"],
                                     result["ratios"])
    figures = Table(title=f"driftwarden bench: {ev['predictions']:,} predictions + {ev['labels']:,} labels "
                          f"({result['machine']['cpus']} CPUs)", title_justify="left")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    figures.add_row("1  ceiling (aiokafka consume + orjson decode), events/s", _rate(result["ceiling"]["events_per_s"]))
    if naive is None:
        figures.add_row("2  naive Faust pipeline, events/s", "skipped")
    else:
        note = "" if naive["finished"] else f" (partial: {naive['events']:,} in {naive['time_limit_s']:.0f} s)"
        figures.add_row("2  naive Faust pipeline, events/s" + note, _rate(naive["events_per_s"]))
        figures.add_row("   naive CPU s per 1,000 events", f"{naive['cpu_seconds_per_1k_events']:.3f}")
    figures.add_row("3  Driftwarden end to end, events/s" + ("" if dw["finished"] else " (did not finish)"),
                    _rate(dw["events_per_s"]))
    figures.add_row("   including startup", _rate(dw["events_per_s_with_startup"]))
    figures.add_row("   startup until the first event, s", f"{dw['startup_seconds']:.1f}")
    figures.add_row("   CPU s per 1,000 events (worker process)", f"{dw['cpu_seconds_per_1k_events']:.3f}")
    figures.add_row("   peak RSS (VmHWM)", _mib(dw["peak_rss_bytes"]))
    figures.add_row("   join: bytes per waiting prediction", f"{dw['join_bytes_per_waiting_prediction']:.0f}")
    figures.add_row("   pure stages in-process, events/s", _rate(stages["events_per_s"]))
    figures.add_row("   pure stages CPU s per 1,000 events", f"{stages['cpu_seconds_per_1k_events']:.3f}")
    figures.add_row("ratio 3/1", _check(ratios["driftwarden_over_ceiling"], ratios["driftwarden_over_ceiling_target"]))
    figures.add_row("ratio 3/2", _check(ratios["driftwarden_over_naive"], ratios["driftwarden_over_naive_target"]))

    split = Table(title=f"cost by stage (in-process pass; dominant: {stages['dominant']})", title_justify="left")
    for name, justify in (("stage", "left"), ("seconds", "right"), ("share", "right"), ("µs/event", "right")):
        split.add_column(name, justify=justify)  # type: ignore[arg-type]
    for stage, seconds in stages["seconds"].items():
        split.add_row(stage, f"{seconds:.3f}", f"{stages['share'][stage]:.1%}", f"{stages['us_per_event'][stage]:.1f}")
    return [figures, split]


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the children are stopped by the bench's cleanup."""
    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def bench_command(
    events: Annotated[int | None, typer.Option("--events", help="predictions to produce (labels: about 0.9 x); "
                                               "default 200000, 20000 with --quick")] = None,
    skip_naive: Annotated[bool, typer.Option("--skip-naive", help="do not run the naive Faust baseline")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="a short run (20000 predictions, naive limited to 30 s); "
                                        "written as bench-<date>-quick.json, latest.json is left alone")] = False,
    naive_time_limit: Annotated[float | None, typer.Option(help="seconds the naive pipeline may run "
                                                           "(default 120, 30 with --quick)")] = None,
    results_dir: Annotated[Path, typer.Option(help="where result files go")] = Path("benchmarks/results"),
    seed: Annotated[int, typer.Option(help="seed of the synthetic events")] = 1,
    profile_worker: Annotated[bool, typer.Option("--profile-worker", help="run the worker under cProfile and "
                                                 "list its hottest functions (slows it: rates not comparable)")]
    = False,
) -> None:
    """Measure throughput end to end: the raw Kafka ceiling, a naive Faust pipeline and Driftwarden's worker.

    Starts its own embedded broker and child processes on 127.0.0.1 and stops them all at the end. Prints the
    figures and the cost split by stage, and writes `benchmarks/results/bench-<date>.json` (and `latest.json`).

    Example: `driftwarden bench --quick`
    """
    from stream.bench.run import Bench, resolve_options, write_results

    options = resolve_options(events, quick, skip_naive, naive_time_limit, seed=seed, results_dir=results_dir,
                              profile_worker=profile_worker)

    def say(line: str) -> None:
        err.print(f"bench: {line}", markup=False)

    with _sigterm_as_interrupt():
        result = Bench(options, say).run()
    for table in render(result):
        console.print(table)
    top = result["stages"]["top_functions"]
    if top:
        console.print("hottest functions (own time, cProfile pass):")
        for row in top[:10]:
            console.print(f"  {row['own_s']:8.3f} s  {row['calls']:>9,}  {row['function']}", markup=False,
                          highlight=False)
    worker_top = result["driftwarden"].get("top_functions")
    if worker_top:
        console.print("worker under cProfile, hottest functions (own time):")
        for row in worker_top[:15]:
            console.print(f"  {row['own_s']:8.3f} s  {row['calls']:>9,}  {row['function']}", markup=False,
                          highlight=False)
    suffix = "-quick" if options.quick else "-profiled" if options.profile_worker else ""
    for path in write_results(result, options.results_dir, suffix, latest=not suffix):
        console.print(f"wrote {path}")


def main() -> None:
    """``python -m stream.cli.bench``: the command on its own, with the same one-line errors as the CLI."""
    try:
        typer.run(bench_command)
    except UserError as exc:
        err.print(f"error: {exc}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
