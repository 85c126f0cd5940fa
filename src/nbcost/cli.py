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

    path = Path(args.notebook)
    if not path.exists():
        raise NbcostError(f"no notebook at {path}")
    output = Path(args.output) if args.output else None
    result = run_notebook(path, output, kernel_name=args.kernel, timeout=args.timeout,
                          allow_errors=args.allow_errors)
    print(_for(sys.stdout, repr(result.table())))
    if output:
        print(f"\nExecuted notebook with its cost record: {output}")
    if result.ledger_path:
        print(f"Spend log: {result.ledger_path}")
    else:
        print("nbcost: the kernel wrote no spend log (was nbcost importable in it?)", file=sys.stderr)
        return 1
    if result.error:
        print(_for(sys.stderr, f"nbcost run: a cell failed: {result.error}"), file=sys.stderr)
        return 1
    return 0


def _cmd_audit(args) -> int:
    from .config import load_settings, profile_config
    from .report import load_spend, parse_time
    from .report.audit import AuditOptions, write_audit

    settings = load_settings(profile_config())
    paths = list(args.paths) or [str(settings.data_dir / "spend")]
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if args.top < 1:
        raise NbcostError(f"--top takes a number of cells of at least 1; got {args.top}")
    models = [m.strip() for m in (args.compare_models or "").split(",") if m.strip()] or None
    output = Path(args.output)
    if not output.parent.is_dir():
        raise NbcostError(f"the folder {output.parent} does not exist")
    with load_spend(paths, since=since, until=until) as spend:
        if (summary := spend.skipped.summary()) is not None:
            print(f"nbcost: {summary}", file=sys.stderr)
        if not spend.readable:
            raise NbcostError(f"nothing readable in {', '.join(paths)}: give spend logs "
                              f"(*.jsonl), exports or notebooks")
        write_audit(spend, output, AuditOptions(compare_models=models, top=args.top, since=since,
                                                until=until, sources=paths, settings=settings))
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

    run = sub.add_parser("run", help="execute a notebook headless with tracking; print its costs")
    run.add_argument("notebook")
    run.add_argument("-o", "--output", help="write the executed notebook, with its cost record")
    run.add_argument("--kernel", help="kernel name (default: the notebook's)")
    run.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    run.add_argument("--allow-errors", action="store_true", help="keep going after a failing cell")
    run.set_defaults(func=_cmd_run)

    add_report(sub)

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
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except NbcostError as exc:
        print(f"nbcost {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
