"""The extension and magics in a real IPython InteractiveShell."""

from __future__ import annotations

import ast
import re
import threading
from decimal import Decimal

import pandas as pd
import pyarrow.parquet as pq
import pytest
from llm_support import FAKE_KEY, srv  # noqa: F401
from testmeters import TokenMeter
from IPython.core.interactiveshell import InteractiveShell

import nbcost
from nbcost.ipython import extension_for
from nbcost.ledger import read_log
from nbcost.meters.base import Meter


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    threads_before = set(threading.enumerate())
    ip.run_cell("%load_ext nbcost", store_history=True)
    extension = extension_for(ip)
    tokens = TokenMeter()
    extension.session.add_meter(tokens)
    ip.user_ns["tokens"] = tokens
    yield ip
    ip.run_cell("%unload_ext nbcost", store_history=True)
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=5)
    assert not [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]


def run(ip, source):
    return ip.run_cell(source, store_history=True)


def session(ip):
    return extension_for(ip).session


def cell_ends(ip):
    session(ip).flush()
    return [e for e in read_log(session(ip).ledger_path).events if e["event"] == "cell_end"]


def test_every_cell_is_recorded_with_its_execution_count(shell):
    first = run(shell, "x = 1")
    second = run(shell, "y = x + 1")
    ends = cell_ends(shell)
    assert [e["execution_count"] for e in ends[-2:]] == [first.execution_count,
                                                          second.execution_count]
    assert all(e["status"] == "ok" for e in ends)
    run(shell, "1 / 0")
    assert cell_ends(shell)[-1]["status"] == "error"


def test_cost_cell_runs_the_body_labels_it_and_shows_a_summary(shell, capsys):
    result = run(shell, "%%cost --label embed --tag team=ml --tag run=7\n"
                        "tokens.call('model-a', 2000)\n"
                        "value = 21\n"
                        "value * 2")
    assert result.success and result.result == 42
    out = capsys.readouterr().out
    assert "nbcost · embed" in out and "$0.0040" in out
    end = cell_ends(shell)[-1]
    assert end["label"] == "embed" and end["tags"] == {"team": "ml", "run": "7"}
    assert end["cost_usd"] == "0.004" and end["execution_count"] == result.execution_count
    assert len([e for e in cell_ends(shell) if e["execution_count"] == result.execution_count]) == 1


def test_cost_cell_error_is_recorded_and_reraised(shell):
    result = run(shell, "%%cost\nraise KeyError('boom')")
    assert isinstance(result.error_in_exec, KeyError)
    assert cell_ends(shell)[-1]["status"] == "error"


def test_cost_cell_while_off_still_gets_its_own_record(shell):
    run(shell, "%cost off")
    result = run(shell, "%%cost --label alone\ntokens.call('m', 500)")
    end = cell_ends(shell)[-1]
    assert end["label"] == "alone" and end["execution_count"] == result.execution_count
    assert end["cost_usd"] == "0.001"
    run(shell, "%cost on")


def test_a_silent_cost_cell_is_recorded_and_closed(shell):
    """A silent run (a front end's own execute) has no pre/post_run_cell: the cell still ends,
    at post_execute, a hook nbcost registers only while such a window is open (other cells
    do not pay for it)."""
    end_hook = extension_for(shell).post_execute
    for label in ("behind", "again"):
        assert end_hook not in shell.events.callbacks["post_execute"]
        shell.run_cell(f"%%cost --label {label} --quiet\ntokens.call('m', 500)", silent=True)
        end = cell_ends(shell)[-1]
        assert end["label"] == label and end["cost_usd"] == "0.001"
        assert session(shell).open_windows() == []
    assert end_hook not in shell.events.callbacks["post_execute"]
    run(shell, "%cost off")
    run(shell, "%%cost --label off\ntokens.call('m', 500)")  # ended by post_run_cell
    assert end_hook not in shell.events.callbacks["post_execute"]
    run(shell, "%cost on")
    assert [e["label"] for e in cell_ends(shell) if e["label"]] == ["behind", "again", "off"]


def test_a_block_left_open_in_a_generator_or_thread_does_not_swallow_later_cells(shell):
    """A ``track()`` block still open in a paused generator or in another thread is not the
    parent of the cells that follow: they stay top-level, rows of ``%cost`` with their own
    cost, not "between cells"."""
    from nbcost.display.summary import session_rows

    assert run(shell, "import nbcost\ndef batches():\n    with nbcost.track('paused'):\n"
                      "        yield from range(3)\npaused = batches(); next(paused)").success
    assert run(shell, "import threading\nentered, release = threading.Event(), threading.Event()\n"
                      "def job():\n    with nbcost.track('background'):\n        entered.set()\n"
                      "        release.wait(30)\n"
                      "worker = threading.Thread(target=job); worker.start()\n"
                      "assert entered.wait(30)").success
    try:
        assert {w.label for w in session(shell).open_windows()} >= {"paused", "background"}
        result = run(shell, "tokens.call('m', 500)")
        end = cell_ends(shell)[-1]
        assert end["execution_count"] == result.execution_count and end["parent_id"] is None
        assert end["cost_usd"] == "0.001"
        rows, _, _ = session_rows(session(shell))
        name = f"[{result.execution_count}]"
        assert [r.cost_usd for r in rows if r.name == name] == [Decimal("0.001")]
        assert "between cells" not in [r.name for r in rows if r.cost_usd]
    finally:
        run(shell, "release.set(); worker.join(); paused.close()")


def test_cost_cell_with_a_syntax_error_says_so(shell, capsys):
    result = run(shell, "%%cost\nx = (")
    assert isinstance(result.error_before_exec, SyntaxError)  # as the same cell without %%cost
    assert "SyntaxError" in capsys.readouterr().out
    assert cell_ends(shell)[-1]["status"] == "error"


def test_quiet_cost_cell_records_but_shows_nothing(shell, capsys):
    run(shell, "%%cost --quiet --label q\ntokens.call('m', 10)")
    assert "nbcost ·" not in capsys.readouterr().out
    assert cell_ends(shell)[-1]["label"] == "q"


@pytest.mark.parametrize("line, message", [
    ("%%cost --budget abc", "--budget"),
    ("%%cost --tag novalue", "KEY=VALUE"),
    ("%%cost --frobnicate", "unrecognized arguments"),
    ("%%cost --hard", "--hard needs --budget"),
])
def test_malformed_cell_magic_gives_usage_error_and_runs_nothing(shell, capsys, line, message):
    shell.user_ns.pop("ran", None)
    result = run(shell, f"{line}\nran = True")
    assert "ran" not in shell.user_ns
    assert result.error_in_exec is not None and message in str(result.error_in_exec)


@pytest.mark.parametrize("line, message", [
    ("%cost frob", "unknown sub-command"),
    ("%cost budget abc", "US dollars"),
    ("%cost budget 5 extra", "unrecognized arguments"),
    ("%cost gpu-rate -3", "USD_PER_GPU_HOUR"),
    ("%cost export", "the following arguments are required: PATH"),
    ("%cost export out.xlsx", "cannot tell the format"),
    ("%cost export spend.csv --format xml", "invalid choice"),
    ("%cost export spend.csv --format jsonl", "--format jsonl but 'spend.csv' names csv"),
    ("%cost compare --cell 999", "no recorded cell"),
    ("%cost estimate 'hello' --model ''", "--model needs the model"),
])
def test_malformed_line_magic_gives_usage_error_and_changes_nothing(shell, line, message):
    settings = session(shell).settings
    before = (settings.budget_usd, settings.gpu_rate_usd_per_hour)
    result = run(shell, line)
    assert result.error_in_exec is not None and message in str(result.error_in_exec)
    assert (settings.budget_usd, settings.gpu_rate_usd_per_hour) == before


def test_budget_sub_command_sets_shows_and_clears(shell, capsys):
    run(shell, "%cost budget 0.01 --hard")
    settings = session(shell).settings
    assert settings.budget_usd == Decimal("0.01") and settings.budget_hard
    run(shell, "tokens.call('m', 4000)")  # $0.008: 80% warning
    assert "session budget $0.0100: 80 % spent" in capsys.readouterr().err
    result = run(shell, "tokens.call('m', 1000)\ntokens.call('m', 1)")
    assert isinstance(result.error_in_exec, nbcost.BudgetExceeded)
    run(shell, "%cost budget")
    assert "Session budget: $0.0100 (hard); spent $0.0100." in capsys.readouterr().out
    run(shell, "%cost budget off")
    assert settings.budget_usd is None


def test_cell_budget_warns_when_the_cell_overspends(shell, capsys):
    run(shell, "%%cost --budget 0.001\ntokens.call('m', 1000)")
    assert "cell budget $0.0010: 200 % spent, $0.0010 over" in capsys.readouterr().err


def test_hard_cell_budget_refuses_the_call_that_would_overspend(shell):
    result = run(shell, "%%cost --budget 0.002 --hard\n"
                        "tokens.call('m', 1000)\n"   # $0.002: the budget is now spent
                        "tokens.call('m', 1)")
    assert isinstance(result.error_in_exec, nbcost.BudgetExceeded)
    assert result.error_in_exec.scope.startswith("cell")
    assert cell_ends(shell)[-1]["cost_usd"] == "0.002"
    run(shell, "tokens.call('m', 1)")  # the next cell has no budget: the call goes through


def test_gpu_rate_sub_command_overrides_the_session_rate(shell, capsys):
    run(shell, "%cost gpu-rate 2.75")
    assert session(shell).settings.gpu_rate_usd_per_hour == Decimal("2.75")
    run(shell, "%cost gpu-rate 1.10 --model A100")
    assert session(shell).settings.gpu_rates["A100"] == Decimal("1.10")
    run(shell, "%cost gpu-rate")
    out = capsys.readouterr().out
    assert "Session rate for every GPU: $2.75" in out and "H100" in out


def test_summary_export_and_dataframe(shell, tmp_path, capsys):
    run(shell, "%%cost --label a\ntokens.call('m', 1000)")
    run(shell, "tokens.call('m', 500)")
    run(shell, "%cost")
    out = capsys.readouterr().out
    assert "session total" in out and "a" in out
    for name in ("s.csv", "s.jsonl", "s.parquet"):
        result = run(shell, f"%cost export {tmp_path / name}")
        assert result.success, result.error_in_exec
    frame = pd.read_csv(tmp_path / "s.csv")
    assert frame["tokens_cost_usd"].fillna(0).astype(str).map(Decimal).sum() == Decimal("0.003")
    table = pq.read_table(tmp_path / "s.parquet")
    assert str(table.schema.field("cost_usd").type).startswith("decimal128")
    assert str(table.schema.field("start").type) == "timestamp[us, tz=UTC]"
    df = nbcost.session().to_dataframe()
    assert sum(df["cost_usd"]) == sum(Decimal(str(v)) for v in frame["cost_usd"])


def test_off_and_on(shell):
    run(shell, "%cost off")
    count = len(cell_ends(shell))
    run(shell, "z = 1")
    assert len(cell_ends(shell)) == count
    run(shell, "%cost on")
    run(shell, "z = 2")
    assert len(cell_ends(shell)) == count + 1  # `%cost on` began while off: only the cell after it


def test_reset_starts_a_new_session_log(shell):
    old = session(shell).ledger_path
    run(shell, "%cost reset")
    assert session(shell).ledger_path != old
    assert read_log(old).events[-1]["event"] == "session_end"


def test_track_inside_a_cell_nests_in_the_cell(shell):
    run(shell, "with nbcost.track('inner') as t:\n    tokens.call('m', 100)"
         if "nbcost" in shell.user_ns else
         "import nbcost\nwith nbcost.track('inner') as t:\n    tokens.call('m', 100)")
    t = shell.user_ns["t"]
    cell = [r for r in session(shell).records if r.info.kind == "cell"][-1]
    assert t.record.info.parent_id == cell.info.id
    assert t.cost_usd == Decimal("0.0002") == cell.meters["tokens"].cost_usd


def test_loading_twice_is_harmless_and_unload_removes_everything(shell, capsys):
    extension = extension_for(shell)
    run(shell, "%load_ext nbcost")
    assert extension_for(shell) is extension
    assert shell.events.callbacks["pre_run_cell"].count(extension.pre_run_cell) == 1
    run(shell, "%unload_ext nbcost")
    assert extension_for(shell) is None
    assert extension.pre_run_cell not in shell.events.callbacks["pre_run_cell"]
    assert extension.post_run_cell not in shell.events.callbacks["post_run_cell"]
    assert "cost" not in shell.magics_manager.magics["line"]
    assert "cost" not in shell.magics_manager.magics["cell"]
    assert read_log(extension.session.ledger_path).events[-1]["event"] == "session_end"
    run(shell, "%load_ext nbcost")  # the fixture unloads again


# -- %%cost is a transparent wrapper ------------------------------------------------------------

class SevenIsEight(ast.NodeTransformer):
    def visit_Constant(self, node):
        return ast.copy_location(ast.Constant(8), node) if node.value == 7 else node


def test_cost_cell_honours_ast_transformers(shell):
    shell.ast_transformers.append(SevenIsEight())
    try:
        result = run(shell, "%%cost --label t\nx = 7\nx")
    finally:
        shell.ast_transformers.pop()
    assert result.result == 8 and cell_ends(shell)[-1]["label"] == "t"


def test_a_trailing_semicolon_silences_the_cost_cell_as_any_cell(shell, capsys):
    result = run(shell, "%%cost --label quiet-out\n41 + 1;")
    assert result.result is None and "Out[" not in capsys.readouterr().out


def test_cost_cell_with_top_level_await(shell):
    result = run(shell, "%%cost --label awaited\nimport asyncio\nawait asyncio.sleep(0)\n'done'")
    assert result.success, result.error_in_exec
    assert result.result == "done" and cell_ends(shell)[-1]["label"] == "awaited"


def test_the_last_expression_is_out_and_the_summary_comes_after_it(shell, capsys):
    result = run(shell, "%%cost --label shown\ntokens.call('m', 10)\n6 * 7")
    out = capsys.readouterr().out
    assert result.result == 42
    assert f"Out[{result.execution_count}]: 42" in out
    assert out.index(f"Out[{result.execution_count}]") < out.index("nbcost · shown")
    assert shell.user_ns["_"] == 42


def test_cost_called_as_a_cell_magic_runs_the_body_like_time(shell):
    shell.ast_transformers.append(SevenIsEight())
    try:
        result = run(shell, "r = get_ipython().run_cell_magic('cost', '--label direct', "
                            "'tokens.call(\"m\", 500)\\ny = 7\\ny * 6')")
    finally:
        shell.ast_transformers.pop()
    assert result.success and shell.user_ns["r"] == 48
    end = cell_ends(shell)[-1]
    assert end["label"] == "direct" and end["cost_usd"] == "0.001"


def test_cost_cell_before_another_cell_magic(shell, capsys):
    result = run(shell, "%%cost --label captured\n%%capture c\nprint('hidden')\ntokens.call('m', 500)")
    assert result.success, result.error_in_exec
    assert "hidden" in shell.user_ns["c"].stdout
    end = cell_ends(shell)[-1]
    assert end["label"] == "captured" and end["cost_usd"] == "0.001"


def test_terminal_ipython_still_waits_for_a_cost_cells_body(shell):
    status, _ = shell.input_transformer_manager.check_complete("%%cost --label x\n")
    assert status == "incomplete"


# -- tracebacks show the user's frames ----------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NBCOST_FRAME = re.compile(r"nbcost[/\\][\w/\\]+\.py")


def rendered(capsys) -> str:
    return ANSI.sub("", capsys.readouterr().out)


def test_an_error_in_a_cost_cell_shows_only_the_users_frames(shell, capsys):
    run(shell, "%%cost\ndef f():\n    return 1 / 0\nf()")
    out = rendered(capsys)
    trace = out[:out.index("ZeroDivisionError: division by zero")]
    assert trace.count("Cell In[") == 2  # the call and f's body: nothing of nbcost or IPython
    assert "run_cell_magic" not in trace and not NBCOST_FRAME.search(trace)
    assert "----> 4 f()" in trace  # the cell's own line numbers


@pytest.mark.parametrize("setup, first_line, names", [
    ("", "%%cost --budget 0.002 --hard", ["cell budget of $0.0020", "%%cost --budget USD"]),
    ("%cost budget 0.002 --hard", "", ["session budget of $0.0020", "%cost budget off"]),
])
def test_a_hard_budget_stop_shows_the_users_frames_and_what_to_change(shell, capsys, setup,
                                                                      first_line, names):
    if setup:
        run(shell, setup)
    capsys.readouterr()
    result = run(shell, f"{first_line}\ntokens.call('m', 1000)\ntokens.call('m', 1)".lstrip())
    assert isinstance(result.error_in_exec, nbcost.BudgetExceeded)
    out = rendered(capsys)
    assert not NBCOST_FRAME.search(out) and "skipping hidden" not in out
    assert "tokens.call('m', 1)" in out  # the user's line that was refused
    message = out[out.index("BudgetExceeded: "):]
    assert all(name in message for name in names), message
    assert "spent ($0.0020 so far)" in message
    run(shell, "%cost budget off")


def test_a_refused_sdk_call_shows_the_users_line_not_the_patch(shell, capsys, srv):
    import openai

    shell.user_ns["client"] = openai.OpenAI(base_url=srv.base_url("openai"), api_key=FAKE_KEY,
                                            max_retries=0)
    run(shell, "%cost budget 0.00000001 --hard")
    run(shell, "client.chat.completions.create(model='gpt-4o-mini', messages=[])")
    capsys.readouterr()
    result = run(shell, "%%cost\nreply = client.chat.completions.create(model='gpt-4o-mini', "
                        "messages=[])")
    assert isinstance(result.error_in_exec, nbcost.BudgetExceeded)
    out = rendered(capsys)
    assert out.count("Cell In[") == 1 and "reply = client.chat" in out
    assert not NBCOST_FRAME.search(out)
    run(shell, "%cost budget off")
    shell.user_ns.pop("client").close()  # its keep-alive connection holds a server thread


# -- one parser, one help -----------------------------------------------------------------------

def test_help_is_generated_from_the_parser(shell, capsys):
    from nbcost.magics import _COMMANDS

    doc = shell.find_line_magic("cost").__doc__
    for name, parser in _COMMANDS.items():
        assert parser.format_usage().strip().removeprefix("usage: ") in doc, name
        assert parser.description in doc
    for option in ("--label", "--tag", "--budget", "--hard", "--quiet", "--cached"):
        assert option in doc
    run(shell, "%cost?")
    assert "%cost llm-price MODEL --input USD --output USD" in capsys.readouterr().out
    result = run(shell, "%cost badcommand")
    assert "unknown sub-command 'badcommand'" in str(result.error_in_exec)
    assert "%cost llm-price" in str(result.error_in_exec)


# -- reset and unload inside a window -----------------------------------------------------------

class WindowWatcher(Meter):
    """Knows which windows are open from the hooks alone, as the GPU meter does."""

    name = "watcher"

    def __init__(self):
        self.open: set[str] = set()

    def window_started(self, window):
        self.open.add(window.id)

    def window_ended(self, window):
        self.open.discard(window.id)


def test_reset_inside_track_ends_the_open_windows_as_interrupted(shell, capsys):
    watcher = WindowWatcher()
    session(shell).add_meter(watcher)
    result = run(shell, "import nbcost\n"
                        "with nbcost.track('inner') as t:\n"
                        "    tokens.call('m', 100)\n"
                        "    get_ipython().run_line_magic('cost', 'reset')\n"
                        "after = 1")
    assert result.success, result.error_in_exec
    assert shell.user_ns["t"].record.status == "interrupted"
    assert shell.user_ns["t"].cost_usd == Decimal("0.0002")
    assert watcher.open == set()  # the meters were told
    assert "not open" not in capsys.readouterr().err  # ended early is not unknown
    run(shell, "x = 1")
    assert cell_ends(shell)[-1]["status"] == "ok"  # the next cell is recorded as usual


def test_reset_in_a_cost_cell_ends_it_as_interrupted(shell, capsys):
    result = run(shell, "%%cost --label r\ntokens.call('m', 100)\n%cost reset")
    assert result.success, result.error_in_exec
    assert "nbcost · r (interrupted)" in capsys.readouterr().out
    assert session(shell).open_windows() == []


def test_unload_inside_track_does_not_break_the_users_code(shell):
    result = run(shell, "import nbcost\n"
                        "with nbcost.track('inner') as t:\n"
                        "    get_ipython().run_line_magic('unload_ext', 'nbcost')\n"
                        "after = 1")
    assert result.success, result.error_in_exec
    assert shell.user_ns["t"].record.status == "interrupted"
    run(shell, "%load_ext nbcost")  # the fixture unloads again


# -- LLM prices ---------------------------------------------------------------------------------

def test_llm_price_prices_the_next_calls_and_is_logged(shell, capsys, srv):
    import openai

    # The loopback server stands for a public API (at a private address an unknown model is
    # otherwise self-hosted, not unpriced).
    session(shell).settings.self_hosted_auto = False

    shell.user_ns["client"] = openai.OpenAI(
        base_url=srv.base_url("openai", input_tokens=1_000_000, output_tokens=1_000_000),
        api_key=FAKE_KEY, max_retries=0)
    call = "client.chat.completions.create(model='my-finetune-zz', messages=[])"
    run(shell, call)
    assert "%cost llm-price my-finetune-zz --input USD --output USD" in capsys.readouterr().err
    result = run(shell, "%cost llm-price my-finetune-zz --input 0.5 --output 1.5 --cached 0.1")
    assert result.success, result.error_in_exec
    assert "$0.50 per million input tokens" in capsys.readouterr().out
    run(shell, call)
    calls = [u for u in session(shell).usages if u.meter == "llm"]
    assert calls[0].cost_usd is None and calls[1].cost_usd == Decimal("2")
    session(shell).flush()
    overrides = [e for e in read_log(session(shell).ledger_path).events
                 if e["event"] == "rate_override"]
    assert overrides[-1]["meter"] == "llm" and overrides[-1]["scope"] == "my-finetune-zz"
    assert overrides[-1]["input_mtok"] == "0.5" and overrides[-1]["cache_read_mtok"] == "0.1"
    shell.user_ns.pop("client").close()  # its keep-alive connection holds a server thread


@pytest.mark.parametrize("line, message", [
    ("%cost llm-price m --input 1", "the following arguments are required: --output"),
    ("%cost llm-price m --input x --output 1", "--input"),
])
def test_malformed_llm_price_changes_nothing(shell, line, message):
    result = run(shell, line)
    assert message in str(result.error_in_exec)
    assert "m" not in session(shell).settings.llm_prices


def test_prices_in_words_with_tier_thresholds(shell, capsys):
    run(shell, "%cost prices claude-sonnet-4-5")
    out = capsys.readouterr().out
    assert "$10 per 1,000 web searches" in out
    assert "$3 per million input tokens; $6 above 200,000 input tokens" in out


def test_reload_ext_under_a_fixed_session_id_never_double_books(monkeypatch, nbcost_home, srv):
    """`nbcost run` sets NBCOST_SESSION_ID; a notebook that does `%reload_ext nbcost` starts a
    second session in the same kernel. It gets its own id (linked to the first by
    parent_session_id and run_id) and its own window ids, so the report adds up exactly."""
    from llm_support import expected_cost

    from nbcost.ledger import read_logs
    from nbcost.report import build_report
    from nbcost.rows import rows_from_events

    monkeypatch.setenv("NBCOST_SESSION_ID", "run-0123abcd")
    ip = InteractiveShell.instance()
    ip.user_ns["make_client"] = lambda: __import__("openai").OpenAI(
        base_url=srv.base_url("openai", input_tokens=1000, output_tokens=100), api_key=FAKE_KEY,
        max_retries=0)
    call = ("make_client().chat.completions.create(model='gpt-4o-mini', "
            "messages=[{'role': 'user', 'content': 'hi'}])")
    run(ip, "%load_ext nbcost")
    try:
        first = session(ip)
        run(ip, call)
        assert run(ip, "%reload_ext nbcost").success
        second = session(ip)
        for _ in range(10):
            run(ip, call)
    finally:
        run(ip, "%unload_ext nbcost")
    assert first.id == "run-0123abcd" and second.id.startswith("run-0123abcd-")
    events = read_logs([nbcost_home]).events
    starts = {e["session_id"]: e for e in events if e["event"] == "session_start"}
    assert starts[second.id]["parent_session_id"] == first.id
    assert {e.get("run_id") for e in events} == {"run-0123abcd"}
    window_ids = [e["window_id"] for e in events if e["event"] == "cell_start"]
    assert len(window_ids) == len(set(window_ids))
    report = build_report(rows_from_events(events), by="session")
    per_call = expected_cost("gpt-4o-mini", "openai", input_tokens=1000, output_tokens=100)
    assert report.total["llm_calls"] == 11 and report.total["cost_usd"] == 11 * per_call
    assert report.sessions == 2 and all(row["cost_usd"] >= 0 and row["llm_calls"] >= 0
                                        for row in report.rows)


@pytest.mark.parametrize("line, message", [
    ("%cost budget 1e999999999", "at most 1,000,000,000,000"),
    ("%cost budget -0", "non-negative"),
    ("%cost budget nan", "non-negative"),
    ("%cost budget inf", "non-negative"),
    ("%cost budget -5", "non-negative"),
    ("%cost budget --hard", "--hard needs an amount"),
    ("%cost budget off --hard", "takes no --hard"),
    ("%cost gpu-rate 2 --model ''", "--model needs a GPU model name"),
    ("%cost gpu-rate --model H100", "give the rate for H100"),
    ("%cost gpu-rate 1e999999999", "at most"),
    ("%cost llm-price '' --input 1 --output 1", "MODEL must be a model name"),
    ("%cost llm-price m --input nan --output 1", "non-negative"),
])
def test_absurd_amounts_and_half_commands_are_refused_and_change_nothing(shell, line, message):
    settings = session(shell).settings
    before = (settings.budget_usd, settings.budget_hard, settings.gpu_rate_usd_per_hour,
              dict(settings.gpu_rates), dict(settings.llm_prices))
    result = run(shell, line)
    assert result.error_in_exec is not None and message in str(result.error_in_exec)
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "%%%" not in str(result.error_in_exec)
    assert (settings.budget_usd, settings.budget_hard, settings.gpu_rate_usd_per_hour,
            dict(settings.gpu_rates), dict(settings.llm_prices)) == before


@pytest.mark.parametrize("amount", ["1e999999999", "-0", "nan", "inf", "-1", "1e-40"])
def test_an_absurd_cell_budget_is_one_usage_error_and_later_cells_run_clean(shell, capsys,
                                                                            amount):
    result = run(shell, f"%%cost --budget {amount}\nran = True")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "argument --budget: the amount must" in str(result.error_in_exec)
    assert "usage: %%cost [" in str(result.error_in_exec)
    capsys.readouterr()
    assert run(shell, "tokens.call('m', 1000)").success
    assert "Error" not in capsys.readouterr().err


def test_usage_lines_name_the_command_that_was_mistyped(shell):
    cell = run(shell, "%%cost --frobnicate\nx = 1").error_in_exec
    assert "usage: %%cost [--label LABEL]" in str(cell) and "%%%" not in str(cell)
    budget = run(shell, "%cost budget 5 extra").error_in_exec
    assert "usage: %cost budget [-" in str(budget) or "usage: %cost budget" in str(budget)


def test_help_flags_print_help_instead_of_an_error(shell, capsys):
    assert run(shell, "%cost budget -h").success
    assert "usage: %cost budget" in capsys.readouterr().out
    assert run(shell, "%%cost --help\nran_body = 1").success
    assert "usage: %%cost" in capsys.readouterr().out and shell.user_ns["ran_body"] == 1


def test_export_onto_the_live_spend_log_is_refused(shell):
    log = session(shell).ledger_path
    session(shell).flush()
    before = log.read_bytes()
    for target in (str(log), str(log.parent / "other.csv")):
        result = run(shell, f"%cost export '{target}' --format csv")
        assert type(result.error_in_exec).__name__ == "UsageError"
        assert "spend log" in str(result.error_in_exec)
    assert log.read_bytes().startswith(before)
    assert not (log.parent / "other.csv").exists()


def test_export_says_when_windows_are_missing_from_a_deleted_log(shell, tmp_path, capsys):
    out = tmp_path / "cells.csv"
    run(shell, "%cost export " + str(out))
    assert "missing" not in capsys.readouterr().out  # every window there
    run(shell, "x = 1")
    session(shell).flush()
    session(shell).ledger_path.unlink()  # deleted while the session runs
    run(shell, "y = 2")
    run(shell, "%cost export " + str(out))
    said = capsys.readouterr().out
    assert re.search(r"\b[1-9]\d* windows? of this session (is|are) not in its spend log", said)


def test_load_ext_with_bad_settings_says_one_line_each_and_loads(monkeypatch, capsys):
    """Bad NBCOST_* values and c.NbCost values: one line each (what is wrong, what to do), the
    bad setting ignored, nbcost loaded, never a traceback."""
    from traitlets.config import Config

    monkeypatch.setenv("NBCOST_GPU_RATE", "abc")
    monkeypatch.setenv("NBCOST_TAGS", "novalue,team=ml")
    monkeypatch.setenv("NBCOST_GPU_RATES", "H100=-2,A100=1.5")
    ip = InteractiveShell.instance()
    saved = ip.config
    config = Config()
    config.NbCost.gpu_rate = "cheap"
    config.NbCost.llm_prices = {"m": 5}
    config.NbCost.colour = "blue"
    ip.config = config
    try:
        result = run(ip, "%load_ext nbcost")
        err = capsys.readouterr().err
        assert result.success and extension_for(ip) is not None
        lines = [line for line in err.splitlines() if line.startswith("nbcost: ")
                 and "GPU" not in line.split(":")[1][:4]]
        for expected in ("NBCOST_GPU_RATE must be", "NBCOST_TAGS entry must look like KEY=VALUE",
                         "NBCOST_GPU_RATES entry for H100", "c.NbCost.gpu_rate must be a number",
                         "c.NbCost.llm_prices['m'] must give", "c.NbCost.colour is not"):
            assert sum(expected in line for line in lines) == 1, (expected, err)
        assert "Traceback" not in err
        settings = session(ip).settings
        assert settings.default_tags == {"team": "ml"} and settings.gpu_rate_usd_per_hour is None
        assert settings.gpu_rates == {"A100": Decimal("1.5")}
    finally:
        run(ip, "%unload_ext nbcost")
        ip.config = saved


def test_a_label_with_a_lone_surrogate_does_not_break_export(shell, tmp_path):
    """A label made in code can hold a lone surrogate (not UTF-8); the ledger writes it as
    U+FFFD, so every export of the session still works."""
    run(shell, "import nbcost\n"
               "with nbcost.track('bad ' + chr(0xDCFF)):\n"
               "    tokens.call('m', 1000)")
    for name in ("out.csv", "out.parquet", "out.jsonl"):
        result = run(shell, f"%cost export {tmp_path / name}")
        assert result.success, result.error_in_exec
    frame = pd.read_parquet(tmp_path / "out.parquet")
    assert "bad \ufffd" in set(frame["label"])
