"""``nbcost report``: its options, their help, and running it."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from ..errors import NbcostError

__all__ = ["add_parser", "check_output", "output_format", "refuse_inputs", "refuse_spend_log",
           "run", "writing"]

DESCRIPTION = """\
Sum what notebooks cost, from spend logs (JSONL), exports (CSV, JSONL, Parquet from
`nbcost export` / `%cost export`) and saved notebooks (their cells' cost records), grouped by
any key or keys. Paths may be files, folders (searched recursively), globs or s3:// URLs (with
s3fs installed). A session seen twice (its log and its export, or the notebook that carries it)
counts once. Unreadable lines are skipped and summed up on one line; the exit status is 2 when
nothing readable was found.
"""

EPILOG = """\
examples:
  nbcost report                                   your own spend, by notebook
  nbcost report /shared/team-spend --by user,project
  nbcost report logs/ exports/*.parquet --by model --since 2026-11-01 --until 2026-12-01
  nbcost report logs/ --by tag:experiment --user ann --format markdown -o spend.md
  nbcost report s3://bucket/spend/ --by day --columns gpu
  nbcost report analysis.ipynb --top 10
  nbcost report logs/ --by team,month --format parquet -o by-team.parquet

grouping keys (--by, comma-separated for several):
  user, team, project   who spent it (from NBCOST_USER, NBCOST_TEAM, NBCOST_PROJECT)
  notebook              one row per notebook however it ran (its id, else its path)
  cell                  one row per cell of each notebook (label, else cell id)
  label                 %%cost --label / track("label")
  model, provider       LLM spend per model or provider; GPU time is no model's and has a
                        row of its own, so the rows still add up to the total
  gpu                   the GPU model held (e.g. NVIDIA H200)
  status                ok, error, interrupted (the kernel died in the cell)
  day, week, month      of the window's start, in UTC (week: ISO week, 2026-W48)
  session               the kernel session
  tag                   every key=value tag (a cell with two tags is in two rows; the notes
                        say how much that counts twice); untagged spend is "(untagged)"
  tag:KEY               the value of one tag; spend without it is "(no KEY tag)"

columns (--columns; machine formats always carry them all):
  presets default, gpu, llm, all, or names: cells, sessions, cost_usd, llm_cost_usd,
  gpu_cost_usd, other_cost_usd, wall_s, gpu_held_s, gpu_busy_s, gpu_idle_between_s,
  gpu_stall_s, gpu_underfill_s, gpu_idle_between_usd, gpu_stall_usd, gpu_underfill_usd,
  gpu_waste_usd, llm_calls, llm_input_tokens, llm_cache_read_tokens, llm_cache_write_tokens,
  llm_output_tokens, llm_reasoning_tokens, cache_saved_usd (cache reads priced at the input
  price minus what they cost), unpriced_cells, unpriced_share, estimated_calls,
  estimated_share, llm_errors, failed_cells
"""


def _listed(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def _tags(values: list[str] | None) -> dict[str, str | None]:
    tags: dict[str, str | None] = {}
    for value in values or ():
        key, sep, wanted = value.partition("=")
        if not key:
            raise NbcostError(f"--tag takes KEY=VALUE (or KEY: has the tag); got {value!r}")
        tags[key] = wanted if sep else None
    return tags


def add_parser(sub) -> argparse.ArgumentParser:
    from .render import FORMATS

    p = sub.add_parser("report", help="sum spend logs, exports and notebooks by any key",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="spend logs, exports, notebooks, folders, globs or s3:// URLs "
                        "(default: your own spend logs, in nbcost's data dir)")
    p.add_argument("--by", default="notebook", metavar="KEY[,KEY...]",
                   help="group by these keys, e.g. --by user,project (default: notebook)")
    p.add_argument("--since", metavar="WHEN",
                   help="only windows that started at or after this UTC date or ISO time, "
                        "e.g. --since 2026-11-01")
    p.add_argument("--until", metavar="WHEN",
                   help="only windows that started before this UTC date or time, "
                        "e.g. --until 2026-12-01 (November, with --since 2026-11-01)")
    for name, example in (("user", "ann"), ("team", "ml"), ("project", "search")):
        p.add_argument(f"--{name}", action="append", metavar=name.upper(),
                       help=f"only this {name}'s spend; repeat or comma-separate for several, "
                            f"e.g. --{name} {example}")
    p.add_argument("--notebook", action="append", metavar="PATH",
                   help="only this notebook: its path (absolute, relative or its end), a glob "
                        "or its id, e.g. --notebook 'experiments/*.ipynb'")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE",
                   help="only windows with this tag (KEY alone: with any value); repeat to "
                        "need several, e.g. --tag experiment=ablation")
    p.add_argument("--model", action="append", metavar="MODEL",
                   help="only LLM spend on this model (GPU time is left out), e.g. "
                        "--model gpt-4o-mini")
    p.add_argument("--format", choices=FORMATS,
                   help="table (default), csv, json, parquet (needs -o), markdown or html; "
                        "default with -o: from its extension, e.g. -o spend.md")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of the terminal, in the format its extension "
                        "names (.csv, .json, .parquet, .md, .html; .txt or none: the table), "
                        "e.g. -o spend.csv")
    p.add_argument("--top", type=int, metavar="N",
                   help="list the N most expensive cell executions instead of groups, "
                        "e.g. --top 20")
    p.add_argument("--columns", metavar="LIST",
                   help="figures a table, Markdown or HTML shows: default, gpu, llm, all or "
                        "names (below), e.g. --columns cells,cost_usd,gpu_waste_usd")
    p.add_argument("--local", nargs="?", const="", metavar="MODEL",
                   help="self-hosted models (transformers, vLLM, local servers) at their "
                        "measured GPU price per million tokens, against API prices, with the "
                        "break-even GPU utilisation; MODEL: the local model that prices the "
                        "API calls (spend logs only); the filters apply (--model: those "
                        "models, local or API), e.g. nbcost report logs/ --local --tag "
                        "experiment=ablation")
    p.add_argument("--no-cache", action="store_true",
                   help="read every log afresh and keep no digest of it (digests of unchanged "
                        "logs make the next report fast; NBCOST_CACHE_DIR says where), e.g. "
                        "nbcost report logs/ --no-cache")
    p.set_defaults(func=run)
    return p


def check_output(output: Path, example: str = "spend.csv") -> None:
    """Refuse an ``-o`` the command could never write, before reading any spend."""
    if output.is_dir():
        raise NbcostError(f"-o {output} is a folder: give a file name, such as "
                          f"{output / example}")
    parent = output.parent
    if not parent.is_dir():
        raise NbcostError(f"cannot write {output}: the folder {parent} does not exist"
                          if not parent.exists() else
                          f"cannot write {output}: {parent} is not a folder")
    if output.exists() and not os.access(output, os.W_OK):
        raise NbcostError(f"cannot write {output}: permission denied (give another -o)")
    refuse_spend_log(output)


def refuse_spend_log(output: Path) -> None:
    """nbcost never writes over a spend log: refuse an ``-o`` in nbcost's spend log folder, or
    onto a file that is a spend log (a copy of one, a colleague's)."""
    from ..config import load_settings, profile_config
    from .sources import is_spend_log

    spend = Path(os.path.abspath(load_settings(profile_config(), problems=[]).data_dir / "spend"))
    target = Path(os.path.abspath(output))
    try:
        inside = target.is_relative_to(spend) or target.resolve().is_relative_to(spend.resolve())
    except (OSError, RuntimeError):
        inside = False
    if inside:
        raise NbcostError(f"-o {output} is inside nbcost's spend log folder {spend}; write to a "
                          "file outside it")
    if is_spend_log(output):
        raise NbcostError(f"-o {output} is a spend log; writing there would destroy it: give "
                          "another file")


def refuse_inputs(output: Path, inputs) -> None:
    """Refuse an ``-o`` onto one of the local files the command reads (``inputs``: paths)."""
    if not output.exists():
        return
    for given in inputs:
        try:
            same = os.path.samefile(output, given)
        except (OSError, ValueError):
            same = False
        if same:
            raise NbcostError(f"-o {output} is one of the files this command reads; writing "
                              "there would destroy it: give another file")


#: The report format an ``-o`` extension names (none or .txt: the terminal table).
_EXTENSIONS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet",
               ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html",
               "": "table", ".txt": "table"}


def output_format(given: str | None, output: Path | None) -> str:
    """The report's format: ``--format`` as given, else ``-o``'s extension, else the table.
    An extension that names no format, or another format than ``--format``, is refused."""
    if output is None:
        return given or "table"
    named = _EXTENSIONS.get(output.suffix.lower())
    if given is None and named is None:
        raise NbcostError(f"cannot tell which format -o {output.name} wants: nbcost report "
                          "writes table (.txt), csv (.csv), json (.json), parquet (.parquet), "
                          "markdown (.md) or html (.html); name the file so, or add --format")
    if given is not None and named not in (None, "table", given):
        raise NbcostError(f"--format {given} but -o {output.name} names {named}; give -o a "
                          "name that matches, or leave out --format")
    return given or named


@contextlib.contextmanager
def writing(output: Path):
    """Around writing ``output``: an error is one line naming the file."""
    try:
        yield
    except OSError as exc:
        raise NbcostError(f"cannot write {output}: {exc.strerror or exc}") from None


def _default_paths() -> list[str]:
    from ..config import load_settings, profile_config

    folder = load_settings(profile_config()).data_dir / "spend"
    if not folder.exists():
        raise NbcostError(f"no spend logs yet at {folder}: run a notebook with %load_ext nbcost, "
                          f"or give the logs, exports or notebooks to report on")
    return [str(folder)]


def _filter_words(args) -> list[str]:
    """The filters given, as typed: ``--notebook a.ipynb --model gpt2``."""
    words = [f"--{name} {value}" for name in ("since", "until")
             if (value := getattr(args, name)) is not None]
    for name in ("user", "team", "project", "notebook", "tag", "model"):
        words += [f"--{name} {value}" for value in getattr(args, name) or ()]
    return words


def _run_local(args, spend, output: Path | None) -> int:
    """``nbcost report --local``: the spend logs' self-hosted generation against API prices
    (docs/local-models.md), filtered as every report is."""
    from ..config import load_settings, profile_config
    from ..meters.selfhosted.compare import local_summary, summary_compare_report
    from .local_models import local_window_events, spend_local_summary

    summary = spend_local_summary(spend, args.local or None)
    filters = _filter_words(args)
    nothing = ("No self-hosted generation in these spend logs (transformers generate(), vLLM, "
               "or a local OpenAI-compatible server): nothing to compare.")
    if not summary.models and filters:
        everywhere = sorted(local_summary(local_window_events(spend, filtered=False)).models)
        nothing = (f"No self-hosted generation in these spend logs matches {' '.join(filters)}"
                   + (f"; without those filters: {', '.join(everywhere)}." if everywhere else
                      " (there is none without them either)."))
    text, _ = summary_compare_report(summary, None, args.local or None,
                                     load_settings(profile_config(), problems=[]), nothing)
    with writing(output or Path(os.devnull)):
        if output is not None:
            output.write_text(text + "\n", encoding="utf-8")
    if output is None:
        print(text)
    return 0


def run(args) -> int:
    from .engine import Filters, load_spend
    from .query import build, parse_by, parse_columns
    from .render import render, sheet_of_report, sheet_of_top

    by = parse_by(args.by)
    columns = parse_columns(args.columns)
    if args.top is not None and args.top < 1:
        raise NbcostError(f"--top takes a positive number; got {args.top}")
    models = _listed(args.model)
    if models and args.local:  # the local model that prices the API calls is read too
        models.append(args.local)
    filters = Filters(users=_listed(args.user), teams=_listed(args.team),
                      projects=_listed(args.project), notebooks=args.notebook or (),
                      tags=_tags(args.tag), models=models)
    paths = args.paths or _default_paths()
    output = Path(args.output) if args.output else None
    if output is not None:
        check_output(output)
    fmt = output_format(args.format, output)
    if args.local is not None and fmt != "table":
        fix = ("leave out --format (or use --format table)" if args.format else
               f"give -o a .txt name, not {output.name}")
        raise NbcostError(f"--local writes a text comparison; {fix}")
    import duckdb

    try:
        spend = load_spend(paths, since=args.since, until=args.until, filters=filters,
                           cache=not args.no_cache)
    except (duckdb.Error, OSError) as exc:  # a file that vanished or cannot be opened
        raise NbcostError(f"cannot read {', '.join(map(str, paths))}: {exc}") from None
    with spend:
        summary = spend.skipped.summary()
        if summary:
            print(f"nbcost report: {summary}", file=sys.stderr)
        if not spend.readable:
            raise NbcostError(f"nothing readable in {', '.join(map(str, paths))}: give spend "
                              f"logs (.jsonl), exports (.csv, .jsonl, .parquet) or notebooks")
        if output is not None:
            refuse_inputs(output, [i.url for i in spend.inputs if not i.remote])
        if args.local is not None:
            return _run_local(args, spend, output)
        if args.top is not None:
            sheet = sheet_of_top(spend, args.top)
        else:
            sheet = sheet_of_report(build(spend, by), columns)
        with writing(output):
            text = render(sheet, fmt, output)
    if text is not None:
        sys.stdout.write(text)
        if fmt == "csv" and sheet.notes:  # a CSV has no place for them
            for note in sheet.notes:
                print(f"nbcost report: {note}", file=sys.stderr)
    return 0
