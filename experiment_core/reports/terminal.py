"""Terminal output for a person watching, and static lines for pre-commit and pipes.

* :func:`mode` — ``"rich"`` when stdout is a terminal (tables, colour, live progress bars), ``"static"`` under
  pre-commit (``PRE_COMMIT=1``) or in a pipe. Colour also honours ``NO_COLOR`` (https://no-color.org).
* :func:`static_line` — one line per experiment in pre-commit's own ``name.....Passed`` rhythm (79 columns).
* :func:`print_status_table` — the status table (plain text and ANSI colours: rich's import alone costs more
  than the whole answer).
* :func:`progress` — a context manager for ``run`` / ``demo``: a live bar on a terminal, one static line at the
  end otherwise.

rich is imported only by :func:`progress`'s live bar (``run``, ``demo``), never at module import.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

from experiment_core.reports.report import change_with_ci, num, pvalue, verdict_word
from experiment_core.reports.report import progress as progress_counts

WIDTH = 79  # pre-commit pads every hook line to 79 columns
STYLE = {
    "promote": "bold green",
    "rollback": "bold red",
    "hold": "bold magenta",
    "expire": "bold yellow",
    "continue": "bold cyan",
}


def is_static(stream: IO[str] | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True under pre-commit or when the stream is not a terminal: no colour, no live redraws."""
    env = os.environ if env is None else env
    stream = sys.stdout if stream is None else stream
    if env.get("PRE_COMMIT") == "1":
        return True
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def colour_enabled(stream: IO[str] | None = None, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return not is_static(stream, env) and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def mode(stream: IO[str] | None = None, env: Mapping[str, str] | None = None) -> str:
    return "static" if is_static(stream, env) else "rich"


def static_line(name: str, result: str, width: int = WIDTH) -> str:
    """``name.....result`` padded with dots to ``width`` columns, as pre-commit prints its hooks."""
    dots = max(width - len(name) - len(result), 3)
    return f"{name}{'.' * dots}{result}"


def short_result(analysis: Mapping[str, Any], status: str = "running", sample_size: int | None = None) -> str:
    """The right-hand word of a static line: ``Promote``, ``Collecting (7/10)``, ``Inconclusive``, ``Promoted``."""
    if status != "running":
        return {"promoted": "Promoted", "rolled_back": "Rolled back", "expired": "Expired"}.get(status, status)
    word = verdict_word(analysis).split(" (")[0].capitalize()
    if word == "Collecting" and sample_size:
        n, needed, open_ended = progress_counts(analysis, sample_size)
        word = f"Collecting ({n}/{needed}{'+' if open_ended else ''})"
    return word


def experiment_line(row: Mapping[str, Any], width: int = WIDTH) -> str:
    """A status row (``status --json``'s ``experiments[i]``) as one static line."""
    name = f"{row['id']} {row.get('name', '')}".strip()
    result = short_result(row["analysis"], str(row.get("status", "running")), row.get("sample_size"))
    room = width - len(result) - 3
    if len(name) > room:
        name = name[: max(room - 1, 8)] + "…"
    return static_line(name, result, width)


def _console(stream: IO[str] | None = None) -> Any:
    from rich.console import Console

    no_colour = not colour_enabled(stream)
    return Console(file=stream or sys.stdout, no_color=no_colour, highlight=False, soft_wrap=False)


_ANSI = {"bold": "1", "dim": "2", "green": "32", "red": "31", "magenta": "35", "yellow": "33", "cyan": "36"}
COLUMNS = (("verdict", "<"), ("experiment", "<"), ("progress", "<"), ("control", ">"), ("treatment", ">"),
           ("change (95 % CI)", ">"), ("p", ">"))  # fmt: skip


def styled(text: str, style: str, colour: bool) -> str:
    """``text`` in an ANSI style such as ``"bold green"`` (plain without colour)."""
    codes = ";".join(_ANSI[w] for w in style.split() if w in _ANSI)
    return f"\x1b[{codes}m{text}\x1b[0m" if colour and codes else text


def status_cells(row: Mapping[str, Any]) -> tuple[str, list[list[str]]]:
    """(the row's action, its cells as lines: the experiment's name under its id)."""
    a = row["analysis"]
    action = str((a.get("decision") or {}).get("action", "continue"))
    unit = str(row.get("unit", ""))
    n, needed, open_ended = progress_counts(a, int(row.get("sample_size") or 1))
    filled = round(min(n / needed, 0.9 if open_ended else 1.0) * 10)
    verdict = verdict_word(a) if row.get("status") == "running" else str(row.get("status", "")).upper()
    cells = [[verdict], [str(row["id"]), str(row.get("name", ""))],
             [f"{'█' * filled}{'░' * (10 - filled)} {n}/{needed}{'+' if open_ended else ''}"],
             [f"{num((a.get('control') or {}).get('mean'))} {unit}"],
             [f"{num((a.get('treatment') or {}).get('mean'))} {unit}"],
             [change_with_ci(a.get("improvement_pct"), a.get("relative_ci95"))],
             [pvalue(a.get("p_value"))]]  # fmt: skip
    return action, cells


def status_table(rows: Sequence[Mapping[str, Any]], colour: bool = False) -> list[str]:
    """The status table as lines: one row per experiment, verdict column first, columns two spaces apart (plain
    text and ANSI colours: drawing it must not cost more than the answer)."""
    body = [status_cells(row) for row in rows]
    widths = [max([len(title)] + [len(line) for _, cells in body for line in cells[i]])
              for i, (title, _) in enumerate(COLUMNS)]  # fmt: skip

    def line(texts: Sequence[str], styles: Sequence[str]) -> str:
        cols = zip(texts, COLUMNS, widths, styles, strict=True)
        out = [styled(f"{t:{j}{w}}", st, colour) for t, (_, j), w, st in cols]
        return "  ".join(out).rstrip()

    lines = [line([t for t, _ in COLUMNS], ["bold"] * len(COLUMNS))]
    lines.append("  ".join("━" * w for w in widths))
    for action, cells in body:
        for k in range(max(len(c) for c in cells)):
            texts = [c[k] if k < len(c) else "" for c in cells]
            styles = [STYLE.get(action, "") if k == 0 else "", "" if k == 0 else "dim"] + [""] * (len(COLUMNS) - 2)
            lines.append(line(texts, styles))
    return lines


def print_status_table(rows: Sequence[Mapping[str, Any]], warnings_by_exp: Mapping[str, Sequence[str]],
                       summary_line: str, stream: IO[str] | None = None) -> None:  # fmt: skip
    """Verdict lines, the table, then warnings, then the summary (for a person at a terminal)."""
    from experiment_core.reports.report import verdict_line

    out = stream or sys.stdout
    colour = colour_enabled(out)
    for row in rows:  # verdict first, one line each
        a = row["analysis"]
        action = str((a.get("decision") or {}).get("action", "continue"))
        running = row.get("status") == "running"
        line = verdict_line(str(row["id"]), a) if running else f"{str(row.get('status', '')).upper()} {row['id']}"
        print(styled(line, STYLE.get(action, "") if running else "bold", colour), file=out)
    for line in status_table(rows, colour):
        print(line, file=out)
    for exp_id, found in warnings_by_exp.items():
        for w in found:
            print(styled(f"⚠ {exp_id}: {w}", "yellow", colour), file=out)
    print(summary_line, file=out, flush=True)


@contextlib.contextmanager
def progress(label: str, total: int, stream: IO[str] | None = None) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(description)``: a live bar on a terminal; in static mode one line per call is not printed,
    only ``label.....done k/N`` at the end (pre-commit's rhythm)."""
    done = 0
    if is_static(stream):

        def advance_static(_description: str = "") -> None:
            nonlocal done
            done += 1

        try:
            yield advance_static
        finally:
            print(static_line(label, f"{done}/{total}"), file=stream or sys.stdout, flush=True)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(stream), transient=False) as bar:  # fmt: skip
        task = bar.add_task(label, total=total)

        def advance(description: str = "") -> None:
            nonlocal done
            done += 1
            bar.update(task, advance=1, description=f"{label} {description}".rstrip())

        yield advance
