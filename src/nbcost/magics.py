"""``%%cost`` and ``%cost``: the magics.

Examples
--------
::

    In [1]: %load_ext nbcost

    In [2]: %%cost --label "fine-tune" --tag run=7 --budget 5
       ...: train()

    In [3]: %cost                      # the session's cells and total
    In [4]: %cost budget 20 --hard     # refuse LLM calls once $20 is spent
    In [5]: %cost export spend.parquet
"""

from __future__ import annotations

import ast
import shlex
from decimal import Decimal
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display

from .config import parse_money, parse_tags
from .display import live_panel
from .display.summary import SessionSummary, format_usd
from .errors import ConfigError
from .export import FORMATS as EXPORT_FORMATS

__all__ = ["CostMagics"]

SUBCOMMANDS = ("budget", "export", "prices", "gpu-rate", "compare", "estimate", "off", "on",
               "reset")


class _Parser(MagicArgumentParser):
    """argparse whose errors are UsageErrors that show the usage line and what was wrong."""

    def error(self, message: str):
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _money(text: str) -> Decimal:
    try:
        return parse_money(text, "the amount")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


_money.__name__ = "amount in USD"  # argparse names the type in its error message


def _cell_parser() -> _Parser:
    p = _Parser(prog="%%cost", description="Run the cell and show what it cost.")
    p.add_argument("--label", help="a name for this cell in tables and exports")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="a tag for allocation (repeatable)")
    p.add_argument("--budget", type=_money, metavar="USD", help="warn at 80%% and 100%% of USD")
    p.add_argument("--hard", action="store_true",
                   help="with --budget: refuse LLM calls once the budget is spent")
    p.add_argument("--quiet", action="store_true", help="record only; show no panel or summary")
    return p


def _sub_parsers() -> dict[str, _Parser]:
    budget = _Parser(prog="%cost budget", description="Set, show or clear the session budget.")
    budget.add_argument("amount", nargs="?", help="USD, or 'off' to clear")
    budget.add_argument("--hard", action="store_true",
                        help="refuse LLM calls that would start after the budget is spent")
    export = _Parser(prog="%cost export", description="Write the session's spend log as a table.")
    export.add_argument("path", help="the file to write")
    export.add_argument("--format", choices=EXPORT_FORMATS,
                        help="default: from the file's extension")
    prices = _Parser(prog="%cost prices", description="Show the prices in effect.")
    prices.add_argument("model", nargs="?", help="an LLM model name")
    rate = _Parser(prog="%cost gpu-rate", description="Override the GPU hourly rate.")
    rate.add_argument("usd_per_gpu_hour", nargs="?", type=_money, metavar="USD_PER_GPU_HOUR")
    rate.add_argument("--model", help="only for this GPU model (e.g. H100); default: every GPU")
    compare = _Parser(prog="%cost compare",
                      description="What the session's LLM usage would cost on other models.")
    compare.add_argument("--models", help="comma-separated model names")
    compare.add_argument("--cell", type=int, metavar="N", help="only cell [N]'s usage")
    estimate = _Parser(prog="%cost estimate", description="Estimate a prompt's tokens and cost.")
    estimate.add_argument("text", help="the prompt text (quoted)")
    estimate.add_argument("--model", required=True)
    bare = {name: _Parser(prog=f"%cost {name}") for name in ("off", "on", "reset")}
    return {"budget": budget, "export": export, "prices": prices, "gpu-rate": rate,
            "compare": compare, "estimate": estimate, **bare}


@magics_class
class CostMagics(Magics):
    """The ``cost`` magic, line and cell."""

    def __init__(self, shell, extension) -> None:
        super().__init__(shell)
        self.extension = extension
        self.parsers = _sub_parsers()
        self.cell_parser = _cell_parser()

    @property
    def session(self):
        return self.extension.session

    @needs_local_scope
    @line_cell_magic
    def cost(self, line: str, cell: str | None = None, local_ns=None):
        """Show or manage what this notebook costs.

        ``%%cost [--label TEXT] [--tag KEY=VALUE ...] [--budget USD [--hard]] [--quiet]``
        runs the cell with a live panel and a final summary.

        ``%cost`` shows the session's cells and total. Sub-commands::

            %cost budget USD [--hard] | off     %cost export PATH [--format csv|jsonl|parquet]
            %cost prices [MODEL]                %cost gpu-rate USD_PER_GPU_HOUR [--model GPU]
            %cost compare [--models A,B]        %cost estimate "TEXT" --model M
            %cost off | on | reset
        """
        if cell is not None:
            return self._run_cell(line, cell, local_ns)
        words = _split(line)
        if not words:
            display(SessionSummary(self.session))
            return None
        name, rest = words[0], words[1:]
        if name not in self.parsers:
            raise UsageError(f"unknown sub-command {name!r} of %cost; choose one of: "
                             f"{', '.join(SUBCOMMANDS)} (or none for the session summary)")
        args = self.parsers[name].parse_args(rest)
        return getattr(self, "_" + name.replace("-", "_"))(args)

    # -- %%cost ---------------------------------------------------------------------------

    def _run_cell(self, line: str, cell: str, local_ns):
        args = self.cell_parser.parse_args(_split(line))
        tags = self._tags(args.tag)
        if args.hard and args.budget is None:
            raise UsageError("--hard needs --budget USD")
        code = self._compile(cell)
        session = self.session
        window_id = self.extension.cell_window_id
        own_window = window_id is None  # off, or run outside a recorded cell
        if own_window:
            window_id = session.open_window(
                "cell", execution_count=self.extension.running_count(store_history=True)).id
        info = session.annotate_window(window_id, label=args.label, tags=tags,
                                       budget_usd=args.budget, budget_hard=args.hard)
        panel = session.run_safely("the live panel",
                                lambda: live_panel(self.shell, session, info, args.quiet))
        status = "ok"
        try:
            return _execute(code, self.shell.user_ns, local_ns)
        except BaseException:
            status = "error"
            raise
        finally:
            record = (session.close_window(window_id, status) if own_window
                      else self.extension.close_cell_window(status))
            if panel is not None and record is not None:
                session.run_safely("the summary", lambda: panel.finish(record))

    def _compile(self, cell: str):
        tree = ast.parse(self.shell.transform_cell(cell))  # a SyntaxError shows as usual
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = ast.Expression(tree.body.pop().value)
        name = self.shell.compile.cache(cell)  # tracebacks show the cell's own lines
        body = self.shell.compile(tree, name, "exec")
        return body, (self.shell.compile(last_expr, name, "eval") if last_expr else None)

    @staticmethod
    def _tags(items: list[str]) -> dict[str, str]:
        try:
            return parse_tags(items, "--tag")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None

    # -- sub-commands ---------------------------------------------------------------------

    def _budget(self, args):
        settings = self.session.settings
        if args.amount is None:
            if settings.budget_usd is None:
                print("No session budget. Set one with `%cost budget USD [--hard]`.")
            else:
                kind = "hard" if settings.budget_hard else "soft"
                print(f"Session budget: ${settings.budget_usd} ({kind}); "
                      f"spent {format_usd(self.session.total_usd, self.session.unpriced)}.")
            return
        if args.amount.lower() == "off":
            settings.budget_usd, settings.budget_hard = None, False
            self.session.log("budget", {"action": "cleared", "scope": "session"})
            print("Session budget cleared.")
            return
        amount = self._parse_money(args.amount, "%cost budget")
        settings.budget_usd, settings.budget_hard = amount, args.hard
        self.session.log("budget", {"action": "set", "scope": "session", "budget_usd": str(amount),
                                    "hard": args.hard})
        self.session._budget_warned.clear()
        print(f"Session budget: ${amount} ({'hard: LLM calls refused beyond it' if args.hard else 'soft: warnings at 80% and 100%'}).")

    def _export(self, args):
        from .export import export_session

        path = Path(args.path).expanduser()
        try:
            written, rows = export_session(self.session, path, args.format)
        except (ConfigError, OSError) as exc:
            raise UsageError(f"%cost export: {exc}") from None
        print(f"Wrote {rows} row{'s' * (rows != 1)} to {written}.")

    def _prices(self, args):
        from .pricing.describe import describe_prices

        print(describe_prices(self.session, args.model))

    def _gpu_rate(self, args):
        settings = self.session.settings
        if args.usd_per_gpu_hour is None:
            from .pricing.describe import describe_gpu_rates

            print(describe_gpu_rates(self.session))
            return
        if args.model:
            settings.gpu_rates[args.model] = args.usd_per_gpu_hour
            scope = f"{args.model} GPUs"
        else:
            settings.gpu_rate_usd_per_hour = args.usd_per_gpu_hour
            scope = "every GPU"
        self.session.log("rate_override", {"meter": "gpu", "scope": args.model or "all",
                                           "usd_per_hour": str(args.usd_per_gpu_hour)})
        print(f"GPU rate: ${args.usd_per_gpu_hour}/GPU-hour for {scope} in this session.")

    def _compare(self, args):
        usages = [u for u in self.session.usages if u.meter == "llm"]
        if args.cell is not None:
            spans = [(r.info.start, r.info.end) for r in self.session.records
                     if r.info.kind == "cell" and r.info.execution_count == args.cell]
            if not spans:
                raise UsageError(f"%cost compare: no recorded cell [{args.cell}] in this session")
            usages = [u for u in usages
                      if any(start <= u.at.timestamp() <= end for start, end in spans)]
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        from .meters.llm.whatif import compare_report

        text, html = compare_report(usages, models, self.session.settings)
        display({"text/plain": text, "text/html": html}, raw=True)

    def _estimate(self, args):
        from .meters.llm.whatif import estimate_report

        print(estimate_report(args.text, args.model, self.session.settings))

    def _off(self, args):
        self.session.enabled = False
        print("nbcost: cells are no longer recorded (LLM and GPU spend still is). `%cost on` resumes.")

    def _on(self, args):
        self.session.enabled = True
        print("nbcost: recording cells again.")

    def _reset(self, args):
        old = self.session.ledger_path
        self.session.reset()
        print(f"nbcost: started a new session {self.session.id[:8]}; the old one's log stays at {old}.")

    @staticmethod
    def _parse_money(text: str, what: str) -> Decimal:
        try:
            return parse_money(text, what)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None


def _split(line: str) -> list[str]:
    """Words of a magic's line, shell-quoted: ``--label "prepare data"`` is two words."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments ({exc}); check the quotes") from None


def _execute(code, user_ns, local_ns):
    body, last_expr = code
    namespace = local_ns if local_ns is not None else user_ns
    exec(body, user_ns, namespace)
    if last_expr is not None:
        return eval(last_expr, user_ns, namespace)
    return None
