"""``%%cost`` and ``%cost``: the magics. Their help (``%cost?``) is generated from the one parser
below, so the usage text cannot drift from what is accepted.

``%%cost`` is a transparent wrapper: a cleanup input transformer (:func:`cost_cell_header`)
turns the ``%%cost ARGS`` first line into ``%cost cell ARGS``, which labels, tags and budgets the
running cell's window (opened in ``pre_run_cell``, closed in ``post_run_cell``) and puts the live
panel under it. The body then runs as the ordinary cell it is: AST transformers, a trailing
``;``, top-level ``await``, ``Out[n]`` and line numbers all behave as without ``%%cost``. Called
as a cell magic (``run_cell_magic``, or with another cell magic after it), ``%%cost`` does the
same and runs the body the way ``%%time`` does.

Examples
--------
::

    In [1]: %load_ext nbcost

    In [2]: %%cost --label "fine-tune" --tag run=7 --budget 5
       ...: train()

    In [3]: %cost                      # the session's cells and total
    In [4]: %cost budget 20 --hard     # refuse LLM calls once $20 is spent
    In [5]: %cost llm-price my-model --input 0.5 --output 1.5
    In [6]: %cost compare --local          # local models' measured $/Mtok against API prices
    In [7]: %cost compare --local --tag run=7   # only the cells run with %%cost --tag run=7
    In [8]: %cost export spend.parquet
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import (Magics, line_cell_magic, magics_class, needs_local_scope,
                                output_can_be_silenced)
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display

from .config import parse_money, parse_tags
from .display.format import format_usd
from .display.summary import SessionSummary
from .errors import ConfigError, LedgerError
from .export import FORMATS as EXPORT_FORMATS

__all__ = ["CellOptions", "CostMagics", "cost_cell_header", "help_text"]


class _Parser(MagicArgumentParser):
    """argparse whose errors are UsageErrors that show the usage line and what was wrong; its
    help is plain text (``%cost?`` prints it as is)."""

    def __init__(self, *args, **kwargs) -> None:
        # Never IPython's MagicHelpFormatter: it puts a "%" before the prog ("%%%cost").
        kwargs["formatter_class"] = argparse.RawDescriptionHelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def _money(text: str) -> Decimal:
    try:
        return parse_money(text, "the amount")
    except ConfigError as exc:  # argparse shows this message after the option's name
        raise argparse.ArgumentTypeError(str(exc)) from None


_money.__name__ = "amount in USD"  # argparse names the type in its error message


def _build_parser() -> _Parser:
    """``%cost COMMAND ...``; the ``cell`` command is ``%%cost``'s first line."""
    root = _Parser(prog="%cost", description="Show or manage what this notebook costs.")
    commands = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, description: str, **kwargs) -> _Parser:
        return commands.add_parser(name, description=description, help=description, **kwargs)

    cell = command("cell", "Run the cell with a live panel under it and show what it cost.",
                   prog="%%cost")
    cell.add_argument("--label", help="a name for this cell in tables and exports")
    cell.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                      help="a tag for allocation (repeatable)")
    cell.add_argument("--budget", type=_money, metavar="USD",
                      help="warn at 80%% and 100%% of USD, the moment the cell's spend gets there")
    cell.add_argument("--hard", action="store_true",
                      help="with --budget: refuse LLM calls once the budget is spent")
    cell.add_argument("--quiet", action="store_true", help="record only; show no panel or summary")

    budget = command("budget", "Set, show or clear the session budget.")
    budget.add_argument("amount", nargs="?", metavar="USD|off", help="USD, or 'off' to clear")
    budget.add_argument("--hard", action="store_true",
                        help="refuse LLM calls that would start after the budget is spent")
    export = command("export", "Write the session's spend log as a table.")
    export.add_argument("path", metavar="PATH", help="the file to write")
    export.add_argument("--format", choices=EXPORT_FORMATS,
                        help="default: from the file's extension; focus: a FOCUS 1.2 cost and "
                             "usage file (.csv or .parquet) for FinOps tools")
    prices = command("prices", "Show the prices in effect (GPU rates, or MODEL's LLM price).")
    prices.add_argument("model", nargs="?", metavar="MODEL", help="an LLM model name")
    rate = command("gpu-rate", "Show or override the GPU hourly rate for this session.")
    rate.add_argument("usd_per_gpu_hour", nargs="?", type=_money, metavar="USD_PER_GPU_HOUR")
    rate.add_argument("--model", help="only for this GPU model (e.g. H100); default: every GPU")
    llm_price = command("llm-price", "Price an LLM model for this session, in USD per million "
                                     "tokens (calls from now on).",
                        usage="%(prog)s MODEL --input USD --output USD [--cached USD]")
    llm_price.add_argument("model", metavar="MODEL", help="the model name as the API reports it")
    llm_price.add_argument("--input", type=_money, required=True, metavar="USD",
                           help="per million input tokens")
    llm_price.add_argument("--output", type=_money, required=True, metavar="USD",
                           help="per million output tokens")
    llm_price.add_argument("--cached", type=_money, metavar="USD",
                           help="per million cached input tokens (default: the input price)")
    compare = command("compare", "What the session's LLM usage would cost on other models.")
    compare.add_argument("--models", help="comma-separated model names")
    compare.add_argument("--cell", type=int, metavar="N", help="only cell [N]'s usage")
    compare.add_argument("--local", nargs="?", const="", metavar="MODEL",
                         help="self-hosted generation against API prices, at the measured GPU "
                              "cost; MODEL: the local model that prices the API calls")
    compare.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                         help="with --local: only windows run with this tag (%%%%cost --tag); "
                              "repeat to need several")
    estimate = command("estimate", "Estimate a prompt's tokens and cost.")
    estimate.add_argument("text", metavar="TEXT", help="the prompt text (quoted)")
    estimate.add_argument("--model", required=True, help="the model to price it as")
    command("off", "Stop recording cells (LLM and GPU spend is still logged).")
    command("on", "Record cells again.")
    command("reset", "End this session's log and start a new session.")
    return root


_PARSER = _build_parser()
_COMMANDS: dict[str, _Parser] = next(
    action.choices for action in _PARSER._actions if action.dest == "command")


def help_text() -> str:
    """``%cost?``: generated from the parser."""
    lines = ["Show or manage what this notebook costs.", "",
             _COMMANDS["cell"].format_help().rstrip(), "",
             "`%cost cell [OPTIONS]` on any line of a cell does what a %%cost first line does.",
             "", "usage: %cost [COMMAND]", "",
             "Without a command: the session's cells and total. Commands:"]
    for name, parser in _COMMANDS.items():
        if name == "cell":
            continue
        lines.append("  " + parser.format_usage().strip().removeprefix("usage: "))
        lines.append(f"      {parser.description}")
        lines += [f"      {', '.join(action.option_strings)}: {action.help % {}}"
                  for action in parser._actions if action.help and action.option_strings]
    if __doc__:  # the module's Examples (absent under python -OO)
        lines += ["", __doc__[__doc__.index("Examples"):].rstrip()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CellOptions:
    """What a ``%%cost`` line asks for."""

    label: str | None
    tags: dict[str, str]
    budget_usd: Decimal | None
    hard: bool
    quiet: bool


def _cell_options(args) -> CellOptions:
    if args.hard and args.budget is None:
        raise UsageError("--hard needs --budget USD\n" + _COMMANDS["cell"].format_usage().strip())
    try:
        tags = parse_tags(args.tag, "--tag")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return CellOptions(args.label, tags, args.budget, args.hard, args.quiet)


_CELL_HEADER = re.compile(r"%%cost(?=\s|$)")


def cost_cell_header(lines: list[str]) -> list[str]:
    """Cleanup input transformer: ``%%cost ARGS`` as a cell's first line becomes
    ``%cost cell ARGS`` (one line for one, so line numbers stay), and the body stays the cell.
    With another cell magic right after it, the cell is left to run ``%%cost`` as a cell magic."""
    if not lines or not _CELL_HEADER.match(lines[0]):
        return lines
    if len(lines) > 1 and lines[1].startswith("%%"):
        return lines
    args = lines[0][len("%%cost"):].strip()
    return [f"%cost cell {args}".rstrip() + "\n", *lines[1:]]


# IPython's check_complete skips transforms marked so: terminal IPython must still see a
# `%%cost` cell as a cell magic that waits for its body, not as a complete one-line command.
cost_cell_header.has_side_effects = True  # type: ignore[attr-defined]


@magics_class
class CostMagics(Magics):
    """The ``cost`` magic, line and cell."""

    def __init__(self, shell, extension) -> None:
        super().__init__(shell)
        self.extension = extension

    @property
    def session(self):
        return self.extension.session

    @needs_local_scope
    @line_cell_magic
    @output_can_be_silenced
    def cost(self, line: str, cell: str | None = None, local_ns=None):
        __tracebackhide__ = True  # IPython shows the user's frames, not nbcost's
        if cell is not None:
            return self._cell_magic(line, cell, local_ns)
        words = _split(line)
        if not words:
            display(SessionSummary(self.session))
            return None
        if words[0] in ("-h", "--help", "help"):
            print(help_text())
            return None
        if words[0] not in _COMMANDS:
            raise UsageError(f"unknown sub-command {words[0]!r} of %cost.\n\n{help_text()}")
        args = _parse(words[0], words[1:])
        if args is None:  # --help: printed
            return None
        return getattr(self, "_" + args.command.replace("-", "_"))(args)

    cost.__doc__ = help_text()

    # -- %%cost ---------------------------------------------------------------------------

    def _cell(self, args) -> None:
        """``%cost cell ARGS``: what the ``%%cost ARGS`` first line runs."""
        self.extension.cost_cell(_cell_options(args))

    def _cell_magic(self, line: str, cell: str, local_ns):
        """``%%cost`` run as a cell magic: the same annotation, and the body run as ``%%time``
        runs it (IPython's transform and compile path)."""
        __tracebackhide__ = True
        args = _parse("cell", _split(line))
        if args is None:  # --help: printed; run the body as it is
            return self._run_body(cell, local_ns)
        options = _cell_options(args)
        opened = self.extension.cost_cell(options)
        status = "ok"
        try:
            return self._run_body(cell, local_ns)
        except BaseException:
            status = "error"
            raise
        finally:
            if opened:  # no cell window was running for post_run_cell to close
                self.extension.finish_cell(status)

    def _run_body(self, cell: str, local_ns):
        __tracebackhide__ = True
        shell = self.shell
        source = shell.transform_cell(cell)
        name = shell.compile.cache(source)  # tracebacks show the cell's own lines
        tree = shell.transform_ast(shell.compile.ast_parse(source, filename=name))
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        namespace = local_ns if local_ns is not None else shell.user_ns
        exec(shell.compile(tree, name, "exec"), shell.user_ns, namespace)
        if last is not None:
            return eval(shell.compile(ast.Expression(last.value), name, "eval"), shell.user_ns,
                        namespace)
        return None

    # -- sub-commands ---------------------------------------------------------------------

    def _budget(self, args):
        settings = self.session.settings
        if args.amount is None and args.hard:
            current = (f" (to make the current {format_usd(settings.budget_usd)} budget hard: "
                       f"`%cost budget {settings.budget_usd} --hard`)"
                       if settings.budget_usd is not None else "")
            raise UsageError("--hard needs an amount: `%cost budget USD --hard` refuses LLM calls "
                             f"once USD is spent{current}.\n" + _usage("budget"))
        if args.amount is None:
            if settings.budget_usd is None:
                print("No session budget. Set one with `%cost budget USD [--hard]`.")
            else:
                kind = "hard" if settings.budget_hard else "soft"
                print(f"Session budget: {format_usd(settings.budget_usd)} ({kind}); "
                      f"spent {format_usd(self.session.total_usd, self.session.unpriced)}.")
            return
        if args.amount.lower() == "off":
            if args.hard:
                raise UsageError("`%cost budget off` clears the budget; it takes no --hard.\n"
                                 + _usage("budget"))
            settings.budget_usd, settings.budget_hard = None, False
            self.session.log("budget", {"action": "cleared", "scope": "session"})
            print("Session budget cleared.")
            return
        amount = _parse_money(args.amount, "%cost budget")
        settings.budget_usd, settings.budget_hard = amount, args.hard
        self.session.budgets.session_changed()
        self.session.log("budget", {"action": "set", "scope": "session", "budget_usd": str(amount),
                                    "hard": args.hard})
        effect = ("hard: LLM calls refused beyond it" if args.hard
                  else "soft: warnings at 80 % and 100 %")
        print(f"Session budget: {format_usd(amount)} ({effect}).")

    def _export(self, args):
        from .export import export_session

        path = Path(args.path).expanduser()
        _refuse_the_spend_logs(path, self.session)
        windows = self.session.records.appended + len(self.session.open_windows())
        try:
            written, rows = export_session(self.session, path, args.format)
        except LedgerError:  # the log itself could not be written (said when it happened)
            raise UsageError("%cost export: this session's spend log could not be written (see "
                             "the nbcost warning above), so there is nothing to export yet; "
                             "fix the folder or NBCOST_HOME, then export again.") from None
        except (ConfigError, OSError) as exc:
            raise UsageError(f"%cost export: {exc}") from None
        print(f"Wrote {rows} row{'s' * (rows != 1)} to {written}.")
        unsaved = self.session.unsaved_events
        if unsaved:
            print(f"nbcost: {unsaved} event{'s' * (unsaved != 1)} not yet in the spend log (it "
                  "cannot be written now) are missing from this export.")
        elif args.format != "focus" and (missing := windows - rows) > 0:  # a row per window
            print(f"nbcost: {missing} window{'s' * (missing != 1)} of this session "
                  f"{'are' if missing != 1 else 'is'} not in its spend log (deleted or moved "
                  "while the session ran) and missing from this export; `%cost` still counts "
                  "their cost in the session total.")

    def _prices(self, args):
        from .pricing.describe import describe_prices

        print(describe_prices(self.session, args.model))

    def _gpu_rate(self, args):
        settings = self.session.settings
        if args.model is not None and not args.model.strip():
            raise UsageError("--model needs a GPU model name, like H100; leave --model out to set "
                             "every GPU's rate.\n" + _usage("gpu-rate"))
        if args.usd_per_gpu_hour is None and args.model is not None:
            raise UsageError(f"give the rate for {args.model} GPUs: `%cost gpu-rate USD --model "
                             f"{args.model}` (`%cost gpu-rate` alone shows the rates).\n"
                             + _usage("gpu-rate"))
        if args.usd_per_gpu_hour is None:
            from .pricing.describe import describe_gpu_rates

            print(describe_gpu_rates(self.session))
            return
        if args.model is not None:
            args.model = args.model.strip()
            settings.gpu_rates[args.model] = args.usd_per_gpu_hour
            scope = f"{args.model} GPUs"
        else:
            settings.gpu_rate_usd_per_hour = args.usd_per_gpu_hour
            scope = "every GPU"
        self.session.log("rate_override", {"meter": "gpu", "scope": args.model or "all",
                                           "usd_per_hour": str(args.usd_per_gpu_hour)})
        print(f"GPU rate: ${args.usd_per_gpu_hour}/GPU-hour for {scope} in this session.")

    def _llm_price(self, args):
        if not args.model.strip():
            raise UsageError("MODEL must be a model name as the API reports it, like gpt-4o.\n"
                             + _usage("llm-price"))
        units = {"input_mtok": args.input, "output_mtok": args.output}
        if args.cached is not None:
            units["cache_read_mtok"] = args.cached
        self.session.settings.llm_prices[args.model] = units  # the price book reads it per call
        self.session.log("rate_override", {"meter": "llm", "scope": args.model,
                                           **{unit: str(usd) for unit, usd in units.items()}})
        from .pricing.describe import describe_override

        print(f"{args.model}: {describe_override(units)}, for calls from now on in this session "
              f"(to keep it, set c.NbCost.llm_prices in ipython_config.py).")

    def _compare(self, args):
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        if args.local is not None:
            return self._compare_local(args, models)
        if args.tag:
            raise UsageError("%cost compare: --tag works with --local (the spend log knows each "
                             "window's tags); use --cell N to compare one cell's calls")
        calls = self.session.llm_calls()  # every call: older ones from the spend log
        usages = calls.usages
        if args.cell is not None:
            spans = [(w.start, w.end) for w in self.session.finished_windows().windows
                     if w.kind == "cell" and w.compact.get("execution_count") == args.cell]
            if not spans:
                raise UsageError(f"%cost compare: no recorded cell [{args.cell}] in this session")
            usages = [u for u in usages
                      if any(start <= u.at.timestamp() <= end for start, end in spans)]
        from .meters.llm.whatif import compare_report

        text, html = compare_report(usages, models, self.session.settings)
        if (missing := calls.note()) is not None:
            print(missing)
        display({"text/plain": text, "text/html": html}, raw=True)

    def _compare_local(self, args, models):
        """``%cost compare --local``: read from the spend log (every window, not just the
        recent ones the session keeps in memory)."""
        from .ledger import read_log
        from .meters.selfhosted.compare import (
            NOTHING_LOCAL,
            local_compare_report,
            tagged_events,
        )

        self.session.flush()
        events = read_log(self.session.ledger_path).events
        if args.cell is not None:
            events = [e for e in events if e.get("execution_count") == args.cell]
            if not events:
                raise UsageError(f"%cost compare: no recorded cell [{args.cell}] in this session")
        nothing = NOTHING_LOCAL
        if args.tag:
            try:
                tags = parse_tags(args.tag, "--tag")
            except ConfigError as exc:
                raise UsageError(str(exc)) from None
            events = tagged_events(events, tags)
            wanted = " ".join(f"--tag {key}={value}" for key, value in tags.items())
            nothing = (f"No self-hosted generation in this session's windows with {wanted}: "
                       "nothing to compare.")
        text, html = local_compare_report(events, models, args.local or None,
                                          self.session.settings, nothing)
        display({"text/plain": text, "text/html": html}, raw=True)

    def _estimate(self, args):
        from .meters.llm.whatif import estimate_report

        if not args.model.strip():
            raise UsageError("--model needs the model to price the prompt as, like gpt-4o\n"
                             + _usage("estimate"))
        print(estimate_report(args.text, args.model.strip(), self.session.settings))

    def _off(self, _args):
        self.session.enabled = False
        print("nbcost: cells are no longer recorded (LLM and GPU spend still is). `%cost on` resumes.")

    def _on(self, _args):
        self.session.enabled = True
        print("nbcost: recording cells again.")

    def _reset(self, _args):
        old = self.session.ledger_path
        try:
            self.session.reset()
        except LedgerError as exc:  # its log cannot take what it holds: nothing changed
            raise UsageError(str(exc)) from None
        print(f"nbcost: started a new session {self.session.id[:8]}; the old one's log stays at {old}.")


def _parse(command: str, words: list[str]):
    """``words`` parsed by ``command``'s own parser (so a mistake shows that command's usage
    line); None after printing its help for ``-h``/``--help``."""
    parser = _COMMANDS[command]
    if "-h" in words or "--help" in words:
        print(parser.format_help())
        return None
    args = parser.parse_args(words)
    args.command = command
    return args


def _usage(command: str) -> str:
    return _COMMANDS[command].format_usage().strip()


def _refuse_the_spend_logs(path: Path, session) -> None:
    """``%cost export`` must not overwrite a spend log: the live one, or any under spend/."""
    target = Path(os.path.abspath(path))
    live = Path(os.path.abspath(session.ledger_path))
    spend = Path(os.path.abspath(session.settings.data_dir / "spend"))
    try:
        same = target == live or (target.exists() and os.path.samefile(target, live))
        inside = target.resolve().is_relative_to(spend.resolve()) or target.is_relative_to(spend)
    except (OSError, ValueError, RuntimeError):
        same, inside = False, False
    if same:
        raise UsageError(f"%cost export: {path} is this session's live spend log; exporting onto "
                         "it would destroy it. Export to another file, e.g. `%cost export "
                         "spend.csv`.")
    if inside:
        raise UsageError(f"%cost export: {path} is inside nbcost's spend log folder {spend}; "
                         "export to a file outside it.")


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
