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
