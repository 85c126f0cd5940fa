"""The ``nbcost`` command: run notebooks with tracking, report on spend, show prices."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from . import __version__
from .errors import NbcostError

__all__ = ["main"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _for(stream, text: str) -> str:
    """``text`` without ANSI colour codes unless ``stream`` is a terminal that wants colour
    (kernel tracebacks arrive coloured; a pipe, a file or NO_COLOR gets plain text)."""
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return _ANSI.sub("", text)
    return text


def _cmd_run(args) -> int:
    from .runner import run_notebook

    output = Path(args.output) if args.output else None
    result = run_notebook(Path(args.notebook), output, kernel_name=args.kernel,
                          timeout=args.timeout, allow_errors=args.allow_errors)
    for warning in result.warnings:
        print(f"nbcost: {warning}", file=sys.stderr)
    status = 0
    if result.ledger_paths:
        print(_for(sys.stdout, repr(result.table())))
        if output and output.exists():
            print(f"\nExecuted notebook with its cost record: {output}")
        for log in result.ledger_paths:
            print(f"Spend log: {log}")
    else:  # an empty table would read as "it cost nothing"
        print("nbcost run: the kernel wrote no spend log, so this run has no cost record (is "
              "nbcost importable in the kernel's Python?)", file=sys.stderr)
        status = 1
    if result.error:
        print(_for(sys.stderr, f"nbcost run: {result.error}"), file=sys.stderr)
        status = 130 if result.interrupted else 1
    return status


def _seconds(text: str) -> int:
    """``--timeout``: a whole number of seconds above zero (nbclient reads 0 as "no limit")."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"give whole seconds above 0, such as 600; got {text!r}")
    return value


def _cmd_export(args) -> int:
    from .config import load_settings, profile_config
    from .ledger import find_logs, read_logs
    from .report.command import check_output, refuse_inputs, writing

    if args.format != "otlp" and not args.output:
        raise NbcostError(f"--format {args.format} needs -o FILE")
    if urls := [p for p in args.paths if "://" in p]:
        raise NbcostError(f"{urls[0]}: export reads local spend logs only; copy them here first "
                          "(e.g. aws s3 sync) and export the copy, or use nbcost report, which "
                          "reads s3:// URLs")
    if args.format != "otlp":
        check_output(Path(args.output))
    if args.format == "focus":
        from .focus import check_path

        check_path(Path(args.output))  # before reading a team's logs
    paths = [Path(p) for p in args.paths] or [load_settings(profile_config()).data_dir / "spend"]
    if args.format != "otlp":
        refuse_inputs(Path(args.output), find_logs(paths))
    contents = read_logs(paths)
    for warning in contents.warnings:
        print(f"nbcost: {warning}", file=sys.stderr)
    if not contents.events:
        raise NbcostError(f"no spend-log events in {', '.join(map(str, paths))}")
    if args.format == "otlp":
        from .otel import replay

        if not args.endpoint:
            raise NbcostError("--format otlp needs --endpoint URL (an OTLP/HTTP collector, "
                              "e.g. http://localhost:4318)")
        sent = replay(contents.events, args.endpoint, service_name=args.service_name)
        print(f"Sent {sent.spans} spans and the spend metrics to {args.endpoint}.")
        return 0
    output = Path(args.output)
    if args.format == "focus":
        from .focus import focus_table, write_focus

        focus = focus_table(contents.events, args.billing_account, args.gpu_provider)
        for warning in focus.warnings:
            print(f"nbcost: {warning}", file=sys.stderr)
        with writing(output):
            write_focus(focus, output)
        rows = len(focus.rows)
    else:
        from .export import export_rows
        from .rows import rows_from_events

        table = rows_from_events(contents.events)
        with writing(output):
            export_rows(table, output, args.format)
        rows = len(table)
    print(f"Wrote {rows} row{'s' * (rows != 1)} to {output}.")
    return 0


_EXPORT_EXAMPLES = """\
examples:
  nbcost export --format focus -o focus.csv              # your own spend logs, FOCUS 1.2 CSV
  nbcost export --format focus team/spend/ -o q4.parquet --billing-account acme-ml
  nbcost export --format parquet team/spend/ -o windows.parquet   # the flat table
  nbcost export --format otlp --endpoint http://localhost:4318 team/spend/
"""


def _cmd_audit(args) -> int:
    from .config import load_settings, profile_config
    from .report import load_spend, parse_time
    from .report.audit import AuditOptions, write_audit
    from .report.command import check_output, refuse_inputs, writing

    settings = load_settings(profile_config())
    paths = list(args.paths) or [str(settings.data_dir / "spend")]
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if args.top < 1:
        raise NbcostError(f"--top takes a number of cells of at least 1; got {args.top}")
    models = [m.strip() for m in (args.compare_models or "").split(",") if m.strip()] or None
    output = Path(args.output)
    check_output(output, "audit.html")
    if output.suffix.lower() not in ("", ".html", ".htm"):
        raise NbcostError(f"-o {output.name}: the audit is one HTML page; give a .html name, "
                          "e.g. -o audit.html")
    with load_spend(paths, since=since, until=until) as spend:
        if (summary := spend.skipped.summary()) is not None:
            print(f"nbcost: {summary}", file=sys.stderr)
        if not spend.readable:
            raise NbcostError(f"nothing readable in {', '.join(paths)}: give spend logs "
                              f"(*.jsonl), exports or notebooks")
        refuse_inputs(output, [i.url for i in spend.inputs if not i.remote])
        with writing(output):
            write_audit(spend, output, AuditOptions(compare_models=models, top=args.top,
                                                    since=since, until=until, sources=paths,
                                                    settings=settings))
    print(f"Audit written to {output} ({output.stat().st_size / 1e6:.1f} MB, one file: open it "
          f"in any browser, no network needed)")
    return 0


_AUDIT_EXAMPLES = """\
examples:
  nbcost audit -o audit.html                     your own spend logs
  nbcost audit /shared/team/spend /shared/team/notebooks -o team-november.html \\
      --since 2026-11-01 --until 2026-12-01
  nbcost audit 's3://bucket/spend/**/*.jsonl' -o audit.html     (needs s3fs)
  nbcost audit logs/ --compare-models gpt-4o-mini,claude-haiku-4-5 --top 50

The page shows the period, currency and price data; spend over time (GPU and LLM stacked,
budget warnings and refusals, cumulative burn); spend by person, team and project; by model,
with what the cheapest acceptable model would have cost; GPU held vs busy vs idle with the
dollars wasted, worst notebooks first; the most expensive cells; budget events; unpriced and
estimated usage; and cells that ran without a record (give the notebooks too). See docs/audit.md.
"""


def _cmd_prices(args) -> int:
    from .pricing.describe import describe_prices

    print(describe_prices(None, args.model))
    return 0


def parser() -> argparse.ArgumentParser:
    from .report.command import add_parser as add_report

    p = argparse.ArgumentParser(prog="nbcost", description=__doc__)
    p.add_argument("--version", action="version", version=f"nbcost {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="execute a notebook headless with tracking; print its costs",
        description="Execute a notebook with nbcost loaded, write each cell's cost record into\n"
                    "the executed notebook and print the cost per cell. A failing cell, a dead\n"
                    "kernel or --timeout stops the run; what ran is still written, that cell\n"
                    "marked, and the exit status is 1.",
        epilog="examples:\n  nbcost run train.ipynb -o train.out.ipynb\n"
               "  nbcost run sweep.ipynb --timeout 600 --allow-errors",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("notebook", help="the .ipynb file to run")
    run.add_argument("-o", "--output", help="write the executed notebook, with its cost record")
    run.add_argument("--kernel", help="kernel name (default: the notebook's)")
    run.add_argument("--timeout", type=_seconds, default=None,
                     help="interrupt a cell that runs longer than this many seconds, and stop "
                          "there (default: no limit)")
    run.add_argument("--allow-errors", action="store_true",
                     help="keep going after a failing or timed-out cell")
    run.set_defaults(func=_cmd_run)

    add_report(sub)

    export = sub.add_parser(
        "export", help="write spend logs as FOCUS, a flat table, or OTLP spans and metrics",
        description="Write spend logs in another format: a FOCUS 1.2 cost and usage file for "
                    "FinOps tools (docs/focus.md), the flat table (docs/schema.md), or "
                    "OpenTelemetry spans and metrics sent to an OTLP/HTTP endpoint.",
        epilog=_EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("paths", nargs="*", help="spend logs or folders (default: your data dir)")
    export.add_argument("--format", required=True,
                        choices=("focus", "csv", "jsonl", "parquet", "otlp"),
                        help="focus: FOCUS 1.2 (.csv or .parquet by -o's extension); csv, jsonl, "
                             "parquet: the flat table; otlp: spans and metrics to --endpoint")
    export.add_argument("-o", "--output", help="the file to write (not for otlp)")
    export.add_argument("--billing-account", default="nbcost",
                        help="FOCUS BillingAccountId/Name (default: nbcost)")
    export.add_argument("--gpu-provider", default="Self-hosted",
                        help="FOCUS ProviderName of GPU rows, e.g. AWS (default: Self-hosted)")
    export.add_argument("--endpoint", help="OTLP/HTTP base URL, e.g. http://localhost:4318")
    export.add_argument("--service-name", default="nbcost",
                        help="OpenTelemetry service.name (default: nbcost)")
    export.set_defaults(func=_cmd_export)

    audit = sub.add_parser(
        "audit", help="one offline HTML file for a manager: where the money and the waste went",
        description="Write one self-contained HTML audit of spend logs, exports and notebooks: "
                    "charts and tables that open in any browser without a network.",
        epilog=_AUDIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    audit.add_argument("paths", nargs="*", metavar="PATH",
                       help="spend logs, exports (csv/jsonl/parquet), notebooks, folders, globs "
                            "or s3:// URLs (default: your data dir's spend logs)")
    audit.add_argument("-o", "--output", default="audit.html",
                       help="the HTML file to write (default: audit.html)")
    audit.add_argument("--since", help="only spend from this date (2026-11-01) or ISO time on")
    audit.add_argument("--until", help="only spend before this date or ISO time (exclusive)")
    audit.add_argument("--compare-models", metavar="A,B,...",
                       help="the models acceptable instead of those used, for the what-if "
                            "(default: nbcost's what-if list, as %%cost compare)")
    audit.add_argument("--top", type=int, default=20, metavar="N",
                       help="how many of the most expensive cells and notebooks to list "
                            "(default: 20)")
    audit.set_defaults(func=_cmd_audit)

    prices = sub.add_parser("prices", help="show GPU hourly rates, or an LLM model's prices")
    prices.add_argument("model", nargs="?")
    prices.set_defaults(func=_cmd_prices)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure ends in one line on stderr and a non-zero status:
    2 for what the user can fix (the message says how), 1 for a run that stopped early or
    output nobody reads (a closed pipe: quietly), 3 for nbcost's own bug."""
    args = parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        # `nbcost ... | head`: the reader left. Python's documented idiom: point stdout at
        # devnull so the exit flush does not fail again, and stop without a word.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except NbcostError as exc:
        _say(args, str(exc))
        return 2
    except KeyboardInterrupt:
        _say(args, "interrupted")
        return 130
    except OSError as exc:  # a path the command could not read or write
        where = f"{exc.filename}: " if exc.filename else ""
        _say(args, f"{where}{exc.strerror or exc}")
        return 2
    except Exception as exc:
        if os.environ.get("NBCOST_DEBUG"):
            raise
        _say(args, f"internal error ({type(exc).__name__}: {exc}). This is a bug in nbcost: "
                   "rerun with NBCOST_DEBUG=1 for the traceback and report it.")
        return 3


def _say(args, message: str) -> None:
    try:
        print(f"nbcost {args.command}: {message}", file=sys.stderr)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
