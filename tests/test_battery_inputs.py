"""A property-based battery over what a user types or sets: ``%%cost`` and ``%cost`` arguments,
``c.NbCost`` and ``NBCOST_*`` values, session ids, ``CUDA_VISIBLE_DEVICES`` strings.

Each input either works or is rejected with one UsageError / ConfigError message (never another
exception, never a traceback from a callback), and a rejected input changes nothing already
recorded. Reproducible in CI: derandomized, no example database, no deadline (a loaded 2-core
machine is slow, not wrong). About 400 generated cases per run, in a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from decimal import Decimal
from pathlib import Path

import pytest
from fake_nvml import Clock, FakeGpu, FakeNvml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from testmeters import TokenMeter
from traitlets.config import Config

from nbcost.config import NbCost, config_from, load_settings
from nbcost.errors import BudgetExceeded, ConfigError
from nbcost.ipython import extension_for
from nbcost.meters.gpu.backend import NvmlBackend
from nbcost.meters.gpu.devices import visible_devices
from nbcost.session import valid_session_id

BATTERY = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

# -- what users type ------------------------------------------------------------------------

# Text a cell can hold: no line breaks (a magic's arguments are one line; Python's splitlines
# also breaks at \x1c-\x1e and \x85) and no lone surrogates (no front end can send one; the
# ledger's handling of them is tested with the Python API).
WORD_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=10)
AMOUNTS = st.one_of(
    st.sampled_from(["5", "0", "-0", "0.0", "nan", "NaN", "sNaN", "inf", "-inf", "Infinity",
                     "1e999999999", "1e-999999999", "$5", "$", "5$", "0.01", "1e-40", "1e12",
                     "1e12.1", "1000000000001", "abc", "", " ", "1,000", "1_000", "٣", "0x10",
                     "1e3", "-5", "+5", "--5", "5e", ".", "0E-1000000", "9" * 60]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(repr),
    WORD_TEXT,
)
TAGS = st.one_of(st.sampled_from(["k=v", "novalue", "=v", "k=", "k==v", "a=b=c", "", "=",
                                  "é=ü", "k=\u00a0v"]),
                 st.tuples(WORD_TEXT, WORD_TEXT).map("=".join))
CELL_WORDS = st.one_of(
    st.sampled_from(["--label", "--tag", "--budget", "--hard", "--quiet", "-h", "--", "-",
                     "--lab", "--budget=", "--tag=k=v", "--quiet=1", "-q", "--frob"]),
    AMOUNTS, TAGS, WORD_TEXT)
RAW = st.sampled_from(['"', "'", "\\", '"unclosed', "a'b"])  # quoting the shell cannot read


@st.composite
def argument_lines(draw, words) -> str:
    parts = draw(st.lists(words, max_size=6))
    line = " ".join(shlex.quote(p) for p in parts)
    if draw(st.integers(0, 9)) == 0:
        line += " " + draw(RAW)
    return line


SUBCOMMANDS = st.sampled_from(["budget", "gpu-rate", "llm-price", "prices", "compare",
                               "estimate", "off", "on", "reset", "export", "cell", "frob", "",
                               "BUDGET", "-h"])
LINE_WORDS = st.one_of(
    st.sampled_from(["--hard", "--model", "--input", "--output", "--cached", "--models",
                     "--cell", "--format", "off", "csv", "jsonl", "parquet", "xml", "gpt-4o",
                     "H100", "", "-1", "999", "a,b", ",,", "--", "-h"]),
    AMOUNTS, WORD_TEXT)


# -- one shell for the whole battery ---------------------------------------------------------

@pytest.fixture(scope="module")
def battery_shell(tmp_path_factory):
    home = tmp_path_factory.mktemp("battery-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBCOST_HOME", str(home))
        mp.delenv("NBCOST_SESSION_ID", raising=False)
        ip = InteractiveShell.instance()
        ip.run_cell("%load_ext nbcost", store_history=True)
        extension_for(ip).session.add_meter(TokenMeter())
        ip.user_ns["tokens"] = extension_for(ip).session.meters["tokens"]
        ip.run_cell("tokens.call('m', 1000)", store_history=True)  # something already recorded
        yield ip, tmp_path_factory.mktemp("battery-exports")
        ip.run_cell("%unload_ext nbcost", store_history=True)


def snapshot(ip) -> tuple:
    session = extension_for(ip).session
    s = session.settings
    return (session.id, s.budget_usd, s.budget_hard, s.gpu_rate_usd_per_hour, dict(s.gpu_rates),
            {k: dict(v) for k, v in s.llm_prices.items()}, session.enabled,
            list(session.records), len(session.usages), session.total_usd)


def same_except_new_records(before: tuple, after: tuple) -> bool:
    """Equal, except that the rejected cell itself may have added its own record."""
    records_before, records_after = before[7], after[7]
    return (before[:7] == after[:7] and before[8:] == after[8:]
            and records_after[:len(records_before)] == records_before)


def run_quietly(ip, source: str):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = ip.run_cell(source, store_history=True)
    return result, out.getvalue() + err.getvalue()


def check(ip, source: str, marker: str | None = None) -> None:
    before = snapshot(ip)
    ip.user_ns.pop("battery_ran", None)
    result, printed = run_quietly(ip, source)
    error = result.error_before_exec or result.error_in_exec
    if isinstance(error, BudgetExceeded):  # a hard budget the battery set: nbcost working
        return
    assert error is None or isinstance(error, UsageError), (source, repr(error))
    assert "Traceback" not in printed and "Error in callback" not in printed, (source, printed)
    assert "%%%" not in printed and "%%%" not in str(error or ""), source
    if error is not None:
        assert str(error).strip(), source  # a message that says something
        assert same_except_new_records(before, snapshot(ip)), source
        if marker:
            assert marker not in ip.user_ns, source  # the body did not run
    session = extension_for(ip).session
    assert isinstance(session.total_usd, Decimal)  # no Overflow waiting in later cells
    session.live_totals()


SPEND = "tokens.call('m', 10)"  # spend after each input: budgets and rates are used at once


@settings(BATTERY, max_examples=120)
@given(line=argument_lines(CELL_WORDS))
@example(line="--budget 1e999999999")
@example(line="--budget -0")
@example(line="--budget nan --hard")
@example(line="--hard")
@example(line="--label '' --tag k=v --tag k=w --quiet")
def test_cost_cell_arguments(battery_shell, line):
    ip, _ = battery_shell
    check(ip, f"%%cost {line}\nbattery_ran = True\n{SPEND}", marker="battery_ran")
    check(ip, SPEND)  # the next plain cell still works


@st.composite
def command_lines(draw) -> tuple[str, str]:
    """A sub-command, mostly with the shape it takes (an amount first, then options)."""
    command = draw(SUBCOMMANDS)
    words = []
    if draw(st.booleans()):
        words.append(draw(AMOUNTS))
    words += draw(st.lists(LINE_WORDS, max_size=4))
    line = " ".join(shlex.quote(w) for w in words)
    if draw(st.integers(0, 9)) == 0:
        line += " " + draw(RAW)
    return command, line


@settings(BATTERY, max_examples=140)
@given(command_line=command_lines(),
       export_name=st.sampled_from(["out.csv", "out.jsonl", "out.parquet", "out.xlsx", "out",
                                    "LIVE", "SPEND", "missing/x.csv"]))
@example(command_line=("budget", "1e999999999"), export_name="out.csv")
@example(command_line=("budget", "-0"), export_name="out.csv")
@example(command_line=("budget", "--hard"), export_name="out.csv")
@example(command_line=("gpu-rate", "2 --model ''"), export_name="out.csv")
@example(command_line=("gpu-rate", "1e999999999"), export_name="out.csv")
@example(command_line=("export", "--format csv"), export_name="LIVE")
@example(command_line=("llm-price", "m --input 1e999999999 --output 1"), export_name="out.csv")
@example(command_line=("budget", "off"), export_name="out.csv")
def test_cost_line_commands(battery_shell, command_line, export_name):
    ip, exports = battery_shell
    command, line = command_line
    session = extension_for(ip).session
    if command == "export":  # only into the battery's own folder, or onto nbcost's logs
        target = {"LIVE": session.ledger_path,
                  "SPEND": session.settings.data_dir / "spend" / "x.csv"}.get(
            export_name, exports / export_name)
        line = f"{shlex.quote(str(target))} {line}"
    check(ip, f"%cost {command} {line}".rstrip())
    session = extension_for(ip).session
    session.enabled = True  # `%cost off` may have run: keep recording for the next case
    check(ip, SPEND)


CONFIG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
    WORD_TEXT, AMOUNTS,
    st.dictionaries(WORD_TEXT, st.one_of(AMOUNTS, st.integers(-5, 5), st.floats(),
                                         st.dictionaries(st.sampled_from(
                                             ["input_mtok", "output_mtok", "cache_read_mtok",
                                              "x"]), AMOUNTS, max_size=3)), max_size=3),
    st.lists(st.integers(), max_size=2))
ENV_NAMES = st.sampled_from(["NBCOST_HOME", "NBCOST_USER", "NBCOST_TEAM", "NBCOST_PROJECT",
                             "NBCOST_TAGS", "NBCOST_GPU_RATE", "NBCOST_GPU_RATES"])
ENV_VALUES = st.one_of(AMOUNTS, TAGS, WORD_TEXT,
                       st.lists(TAGS, max_size=4).map(",".join),
                       st.sampled_from(["/etc/passwd", "~nobody-such-user/x", "x" * 5000,
                                        "H100=2,A100 80GB=1.5", "H100", "=2", "H100=abc"]))


@settings(BATTERY, max_examples=100)
@given(config=st.dictionaries(st.sampled_from(sorted(NbCost.class_own_traits(config=True))
                                              + ["colour"]), CONFIG_VALUES, max_size=4),
       env=st.dictionaries(ENV_NAMES, ENV_VALUES, max_size=4))
def test_settings_and_environment_values(config, env):
    traitlets_config = Config()
    for name, value in config.items():
        traitlets_config.NbCost[name] = value
    env = {k: v.replace("\x00", "") for k, v in env.items()}
    problems: list[str] = []
    loaded = load_settings(config_from(traitlets_config, problems), env, problems=problems)
    assert all(isinstance(p, str) and p and "\n" not in p for p in problems)
    assert all(isinstance(v, Decimal) and v >= 0 for v in loaded.gpu_rates.values())
    assert loaded.gpu_rate_usd_per_hour is None or loaded.gpu_rate_usd_per_hour >= 0
    assert isinstance(loaded.data_dir, Path)
    try:  # strict, as `nbcost run` reads them: only ConfigError
        load_settings(config_from(traitlets_config, []), env)
    except ConfigError as exc:
        assert str(exc)


@settings(BATTERY, max_examples=40)
@given(text=st.one_of(WORD_TEXT, st.sampled_from(["../../x", "..", ".", "/", "a/b", "-x",
                                                  "run-1", "a" * 128, "a" * 129])))
def test_session_ids_stay_inside_their_folder(tmp_path, text):
    if valid_session_id(text):
        day = tmp_path / "spend" / "2026-01-01"
        assert (day / f"{text}.jsonl").resolve().parent == day.resolve()


UUIDS = ["GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000"]
CUDA_ENTRIES = st.one_of(
    st.sampled_from(["0", "1", "2", "-1", "--1", "00", "1 ", " 0", "GPU-", "GPU-aaaa", "GPU-b",
                     "MIG-", "MIG-GPU-aaaa/1/0", "MIG-GPU-/x", "²", "٣", "1e3", "", "gpu-aaaa",
                     "99999999999999999999"] + UUIDS),
    WORD_TEXT.filter(lambda t: "," not in t))


@settings(BATTERY, max_examples=80)
@given(entries=st.lists(CUDA_ENTRIES, max_size=5), separator=st.sampled_from([",", ", ", " ,"]))
def test_cuda_visible_devices_strings(entries, separator):
    backend = NvmlBackend(FakeNvml([FakeGpu(UUIDS[0]), FakeGpu(UUIDS[1])], Clock()))
    devices, notes = visible_devices(backend, {"CUDA_VISIBLE_DEVICES": separator.join(entries)})
    assert len({d.uuid for d in devices}) == len(devices) <= 2
    assert all(isinstance(n, str) and n for n in notes)
