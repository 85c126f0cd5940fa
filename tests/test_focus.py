"""The FOCUS 1.2 export, from a real session's spend log: the FinOps Foundation's validator
(its FOCUS 1.0 rules) and the 1.2 spec's own rules, checked here."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from export_support import OPENAI, assert_no_prompt, events_of, openai_client, run_scenario
from IPython.core.interactiveshell import InteractiveShell
from llm_support import srv  # noqa: F401

from nbcost.cli import main
from nbcost.focus import COLUMNS, focus_table, to_arrow, write_focus
from nbcost.unit_prices import token_counts

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = Path(__file__).parent / "focus" / "validator-overrides.yaml"

# FOCUS 1.2: mandatory columns that may not be null, and those that may.
NOT_NULL = ("BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodEnd",
            "BillingPeriodStart", "ChargeCategory", "ChargePeriodEnd", "ChargePeriodStart",
            "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "ProviderName",
            "PublisherName", "ServiceCategory", "ServiceName", "ServiceSubcategory")
NULLABLE = ("BillingAccountName", "ChargeClass", "ChargeDescription", "PricingQuantity",
            "PricingUnit")
# Usage rows (not Correction): these must be set too.
USAGE_NOT_NULL = ("PricingQuantity", "PricingUnit", "ListUnitPrice", "ContractedUnitPrice",
                  "ChargeFrequency", "SkuId", "SkuPriceId")
MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
         "ContractedUnitPrice", "PricingQuantity", "ConsumedQuantity")
DATETIMES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
DATETIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NUMERIC_FORMAT = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")  # no +, commas, symbols or units
SUBCATEGORIES = {"AI and Machine Learning": {"Generative AI"}, "Compute": {"Other (Compute)"}}
FOCUS_1_3 = ("HostProviderName", "ServiceProviderName")


@pytest.fixture(scope="module")
def spend(srv, tmp_path_factory):  # noqa: F811 - the fixture from llm_support
    home = tmp_path_factory.mktemp("home")
    return events_of(run_scenario(srv, home))


@pytest.fixture(scope="module")
def written(spend, tmp_path_factory):
    folder = tmp_path_factory.mktemp("focus")
    export = focus_table(spend)
    return export, write_focus(export, folder / "focus.csv"), write_focus(export, folder / "focus.parquet")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as src:
        reader = csv.DictReader(src)
        return list(reader.fieldnames or []), list(reader)


def calls(events, priced=True):
    return [e for e in events if e["event"] == "llm_call" and (e["cost_usd"] is not None) == priced]


# -- the spec's rules --------------------------------------------------------------------------

def test_columns_present_named_and_ordered(written):
    _, path, _ = written
    header, rows = read_csv(path)
    assert rows
    for name in (*NOT_NULL, *NULLABLE, *FOCUS_1_3):
        assert name in header, name
    custom = [i for i, name in enumerate(header) if name.startswith("x_")]
    assert custom and custom == list(range(custom[0], len(header))), "x_ columns come last"
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", n) for n in header[:custom[0]]), "PascalCase"


def test_mandatory_values_and_allowed_values(written):
    _, path, _ = written
    _, rows = read_csv(path)
    for row in rows:
        for name in (*NOT_NULL, *USAGE_NOT_NULL):
            assert row[name] != "", (name, row)
        assert row["ChargeCategory"] == "Usage" and row["ChargeClass"] == ""
        assert row["ChargeFrequency"] == "Usage-Based"
        assert row["BillingCurrency"] == "USD"
        assert row["ServiceSubcategory"] in SUBCATEGORIES[row["ServiceCategory"]]
        assert row["PricingCategory"] == "Standard"
        assert row["PricingUnit"] in ("Tokens", "Requests", "GPU-Hours")
        assert row["ConsumedUnit"] in ("Tokens", "GPU-Hours")
        if row["ServiceCategory"] == "Compute":
            assert row["PricingUnit"] == "GPU-Hours" and row["ResourceType"] == "GPU"
        for name in FOCUS_1_3:
            assert row[name] == row["ProviderName"]


def test_dates_are_whole_seconds_utc_and_periods_nest(written):
    _, path, _ = written
    _, rows = read_csv(path)
    for row in rows:
        for name in DATETIMES:
            assert DATETIME_FORMAT.match(row[name]), (name, row[name])
        moment = {n: dt.datetime.strptime(row[n], "%Y-%m-%dT%H:%M:%SZ") for n in DATETIMES}
        assert moment["ChargePeriodStart"] < moment["ChargePeriodEnd"]  # end is exclusive
        assert moment["BillingPeriodStart"] <= moment["ChargePeriodStart"]
        assert moment["ChargePeriodEnd"] <= moment["BillingPeriodEnd"]
        assert moment["BillingPeriodStart"].day == 1


def test_numbers_are_plain_decimals_and_unit_price_times_quantity_is_cost(written):
    _, path, _ = written
    _, rows = read_csv(path)
    for row in rows:
        for name in MONEY:
            assert NUMERIC_FORMAT.match(row[name]), (name, row[name])
        quantity = Decimal(row["PricingQuantity"])
        assert Decimal(row["ListUnitPrice"]) * quantity == Decimal(row["ListCost"])
        assert Decimal(row["ContractedUnitPrice"]) * quantity == Decimal(row["ContractedCost"])
        assert Decimal(row["ListCost"]) >= 0 and Decimal(row["ListUnitPrice"]) >= 0


def test_tags_and_sku_price_details_are_json_objects_of_scalars(written):
    _, path, _ = written
    _, rows = read_csv(path)
    for row in rows:
        for name in ("Tags", "SkuPriceDetails"):
            value = json.loads(row[name])
            assert isinstance(value, dict)
            assert all(isinstance(v, (str, int, float, bool)) for v in value.values()), value
        details = json.loads(row["SkuPriceDetails"])
        assert all(k.startswith("x_") or k == "GpuCount" for k in details)  # FOCUS-defined or x_
        tags = json.loads(row["Tags"])
        assert tags["env"] == "dev" and tags["nbcost/user"] == "ada"  # user tags as they are
        assert tags["nbcost/team"] == "ml" and tags["nbcost/notebook"] == "work/embed.ipynb"
        if row["x_CellId"] == "c1":
            assert tags["exp"] == "a" and tags["flag"] is True  # a valueless tag is true
            assert tags["nbcost/cell"] == "c1" and tags["nbcost/label"] == "embed"


# -- what the rows say ------------------------------------------------------------------------

def test_llm_rows_add_up_to_the_logs_priced_calls_exactly(written, spend):
    export, _, _ = written
    llm = [r for r in export.rows if r["ServiceCategory"] == "AI and Machine Learning"]
    for cost in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert sum(r[cost] for r in llm) == sum(Decimal(e["cost_usd"]) for e in calls(spend))
    # Tokens by model and kind: exactly the log's (requests carry theirs as consumed tokens).
    logged: dict[tuple, int] = defaultdict(int)
    for event in calls(spend):
        for kind, n in token_counts(event["quantities"]).items():
            logged[event["key"], kind] += n
    exported: dict[tuple, int] = defaultdict(int)
    for row in llm:
        if row["PricingUnit"] == "Tokens":
            exported[row["SkuId"].split("/", 1)[1],
                     row["SkuPriceDetails"]["x_TokenKind"]] += int(row["PricingQuantity"])
    assert dict(exported) == {k: v for k, v in logged.items() if v and k[0] != "cfg-model"}


def test_a_kind_of_token_has_its_own_unit_price(written):
    export, _, _ = written
    mini = {r["SkuMeter"]: r for r in export.rows if r["SkuId"] == "openai/gpt-4o-mini"
            and r["x_CellId"] == "c1" and r["x_WindowKind"] == "cell"}
    assert set(mini) == {"Input Tokens", "Cached Input Tokens", "Output Tokens"}
    assert mini["Cached Input Tokens"]["ListUnitPrice"] < mini["Input Tokens"]["ListUnitPrice"]
    assert mini["Output Tokens"]["ListUnitPrice"] > mini["Input Tokens"]["ListUnitPrice"]
    assert mini["Output Tokens"]["x_LlmCalls"] == 3  # the nested block's call is in its cell
    assert mini["Output Tokens"]["x_ReasoningTokens"] == 30
    claude = {r["SkuMeter"] for r in export.rows if r["SkuId"] == "anthropic/claude-haiku-4-5"}
    assert "Cache Write Tokens" in claude and "Cached Input Tokens" in claude
    override = {r["SkuMeter"]: r["ListUnitPrice"] for r in export.rows
                if r["SkuId"].endswith("/my-model")}
    assert override["Input Tokens"] == Decimal("0.000001")  # `%cost llm-price`'s, per token
    assert override["Cached Input Tokens"] == Decimal("0.0000005")


def test_a_call_priced_outside_the_log_is_one_priced_request(written, spend):
    export, _, _ = written
    (row,) = [r for r in export.rows if r["SkuId"].endswith("/cfg-model")]
    (event,) = [e for e in spend if e["event"] == "llm_call" and e["key"] == "cfg-model"]
    assert row["PricingUnit"] == "Requests" and row["PricingQuantity"] == 1
    assert row["ListUnitPrice"] == row["BilledCost"] == Decimal(event["cost_usd"])
    assert row["ConsumedQuantity"] == sum(token_counts(event["quantities"]).values())
    assert row["x_Status"] == "error"  # the cell's status


def test_unpriced_usage_is_left_out_and_said(written, spend):
    export, path, _ = written
    assert "no-such-model-xyz" not in path.read_text()
    (unpriced,) = calls(spend, priced=False)
    assert any("1 LLM call without a price" in w and "no-such-model-xyz" in w
               for w in export.warnings)
    assert unpriced["key"] == "no-such-model-xyz"


def test_gpu_rows_are_gpu_hours_at_the_rate(written, spend):
    export, _, _ = written
    gpu = [r for r in export.rows if r["ServiceCategory"] == "Compute"]
    assert {r["x_WindowKind"] for r in gpu} == {"cell", "between_cells"}
    assert all(r["ListUnitPrice"] == Decimal("2.5") for r in gpu)
    assert {r["ResourceId"] for r in gpu} == {"0:NVIDIA H200"}  # the log's device key
    assert {r["ResourceName"] for r in gpu} == {"NVIDIA H200"}
    (end,) = [e for e in spend if e["event"] == "session_end"]
    held_h = Decimal(repr(end["meters"]["gpu"]["quantities"]["held_s"])) / 3600
    assert abs(sum(r["PricingQuantity"] for r in gpu) - held_h) < Decimal("1e-6")
    recorded = Decimal(end["meters"]["gpu"]["cost_usd"])
    assert abs(sum(r["BilledCost"] for r in gpu) - recorded) <= Decimal("1e-6") * len(gpu)


def test_no_prompt_or_key_in_either_file(written):
    _, csv_path, parquet_path = written
    assert_no_prompt(csv_path.read_bytes(), "the FOCUS CSV")
    assert_no_prompt(parquet_path.read_bytes(), "the FOCUS Parquet")


def test_parquet_keeps_money_exact_and_matches_the_csv(written):
    export, csv_path, parquet_path = written
    table = pq.read_table(parquet_path)
    assert table.schema == to_arrow(export).schema
    for name in MONEY:
        assert pa.types.is_decimal(table.schema.field(name).type), name
    assert pa.types.is_timestamp(table.schema.field("ChargePeriodStart").type)
    _, rows = read_csv(csv_path)
    for row, stored in zip(rows, table.to_pylist()):
        for name in MONEY:
            assert Decimal(row[name]) == stored[name], name
        assert stored["ListUnitPrice"] * stored["PricingQuantity"] == stored["ListCost"]


# -- the FinOps Foundation's validator ---------------------------------------------------------

def _validator() -> Path | None:
    named = os.environ.get("NBCOST_FOCUS_VALIDATOR")
    if named:
        return Path(named)
    local = ROOT / ".venv-focus" / "bin" / "focus-validator"
    return local if local.exists() else None


def validate(data: Path, tmp_path: Path) -> list[str]:
    """Run focus-validator 1.0.0 on ``data``; the names of the checks that failed."""
    validator = _validator()
    if validator is None:
        pytest.skip("focus-validator is not installed: `make focus-validator` (the Makefile's "
                    "test target does it) sets up .venv-focus")
    report = tmp_path / "report.xml"
    # It reads its currency list from a path relative to the working directory.
    site = next(Path(validator).resolve().parent.parent.glob("lib/python*/site-packages"))
    subprocess.run([str(validator), "--data-file", str(data), "--validate-version", "1.0",
                    "--override-file", str(OVERRIDES), "--output-type", "unittest",
                    "--output-destination", str(report)], cwd=site, check=True,
                   capture_output=True, timeout=300)
    suites = ET.parse(report).getroot()
    assert int(suites.get("tests")) > 100  # it really ran its rule set
    return [case.get("name") for case in suites.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None]


def test_the_focus_validator_passes_the_csv(written, tmp_path):
    _, csv_path, _ = written
    assert validate(csv_path, tmp_path) == []


def test_the_focus_validator_fails_a_broken_file(written, tmp_path):
    """The validator run is real: a wrong currency and a missing column fail it."""
    _, csv_path, _ = written
    header, rows = read_csv(csv_path)
    broken = tmp_path / "broken.csv"
    with open(broken, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, [h for h in header if h != "ServiceName"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "BillingCurrency": "ZZZ"} for r in rows)
    failed = validate(broken, tmp_path)
    assert any("BillingCurrency" in name for name in failed)
    assert any("ServiceName_Required" in name for name in failed)


def test_the_focus_validator_passes_the_parquet_but_for_its_float_type_check(written, tmp_path):
    # Its decimal type check wants float64, which cannot hold money exactly; the Parquet keeps
    # decimal128 (checked above). Every other check of its rule set must pass.
    _, _, parquet_path = written
    failed = validate(parquet_path, tmp_path)
    assert sorted(failed) == sorted(f"{name}_IsDecimal :: DataTypeCheck" for name in MONEY)


# -- the ways in --------------------------------------------------------------------------------

def test_cli_export_focus(spend, tmp_path, capsys):
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "s.jsonl").write_text("".join(json.dumps(e) + "\n" for e in spend))
    out = tmp_path / "q4.parquet"
    assert main(["export", "--format", "focus", str(folder), "-o", str(out),
                 "--billing-account", "acme-ml", "--gpu-provider", "AWS"]) == 0
    captured = capsys.readouterr()
    assert "Wrote" in captured.out and "no-such-model-xyz" in captured.err
    table = pq.read_table(out).to_pylist()
    assert {r["BillingAccountId"] for r in table} == {"acme-ml"}
    assert {r["ProviderName"] for r in table if r["ServiceCategory"] == "Compute"} == {"AWS"}


def test_cli_export_counts_a_log_reached_twice_once(spend, tmp_path, capsys):
    """The same log named twice and a copy of it in a folder also given: each event counts
    once (as in nbcost report), in FOCUS and the flat table alike, and the repeat is said."""
    log = tmp_path / "s.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in spend))
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "s.jsonl").write_bytes(log.read_bytes())
    for fmt, name in (("focus", "focus.csv"), ("csv", "table.csv")):
        once = tmp_path / f"once-{name}"
        assert main(["export", "--format", fmt, str(log), "-o", str(once)]) == 0
        assert "read a second time" not in capsys.readouterr().err
        assert main(["export", "--format", fmt, str(log), str(log), str(tmp_path / "copy"),
                     "-o", str(tmp_path / f"thrice-{name}")]) == 0
        assert f"{2 * len(spend)} events read a second time" in capsys.readouterr().err
        once, thrice = (read_csv(tmp_path / f"{n}-{name}")[1] for n in ("once", "thrice"))
        assert thrice == once and once


def test_cli_export_skips_an_export_found_among_the_logs(spend, tmp_path, capsys):
    """A folder of logs that also holds a JSONL export made from them: the export is said and
    skipped, not read as a log of damaged lines."""
    (tmp_path / "team").mkdir()
    log = tmp_path / "team" / "s.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in spend))
    table = tmp_path / "team" / "t.jsonl"
    assert main(["export", "--format", "jsonl", str(log), "-o", str(table)]) == 0
    capsys.readouterr()
    assert main(["export", "--format", "csv", str(tmp_path / "team"), "-o",
                 str(tmp_path / "again.csv")]) == 0
    err = capsys.readouterr().err
    assert "t.jsonl is an nbcost export (a table), not a spend log; skipped it" in err
    assert "damaged" not in err and "skipped line" not in err
    assert main(["export", "--format", "csv", str(log), "-o", str(tmp_path / "once.csv")]) == 0
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "once.csv").read_bytes()


def test_cli_export_says_what_is_wrong(spend, tmp_path, capsys):
    assert main(["export", "--format", "focus", str(tmp_path), "-o", str(tmp_path / "x.txt")]) == 2
    assert "a FOCUS file is .csv or .parquet" in capsys.readouterr().err
    assert main(["export", "--format", "focus", str(tmp_path)]) == 2
    assert "needs -o FILE" in capsys.readouterr().err
    assert main(["export", "--format", "focus", str(tmp_path), "-o", str(tmp_path / "x.csv")]) == 2
    assert "no spend-log events" in capsys.readouterr().err
    assert main(["export", "--format", "focus", str(tmp_path / "missing"), "-o",
                 str(tmp_path / "x.csv")]) == 2
    assert "no spend log at" in capsys.readouterr().err


def test_columns_are_declared_once():
    names = [name for name, _ in COLUMNS]
    assert len(names) == len(set(names))


def test_cost_export_focus_in_ipython(srv, tmp_path, capsys):  # noqa: F811
    ip = InteractiveShell.instance()
    threads_before = set(threading.enumerate())
    ip.run_cell("%load_ext nbcost", store_history=True)
    try:
        ip.user_ns["client"] = openai_client(srv, **OPENAI)
        ip.run_cell("%%cost --label ask --tag exp=b\n"
                    "client.chat.completions.create(model='gpt-4o-mini', "
                    "messages=[{'role': 'user', 'content': 'hi'}]);", store_history=True)
        out = tmp_path / "focus.csv"
        result = ip.run_cell(f"%cost export {out} --format focus", store_history=True)
        assert result.success, result.error_in_exec
        assert "Wrote 3 rows" in capsys.readouterr().out  # input, cached input, output
        _, rows = read_csv(out)
        assert {r["x_Label"] for r in rows} == {"ask"}
        assert all(json.loads(r["Tags"])["exp"] == "b" for r in rows)
        ip.run_cell(f"%cost export {tmp_path / 'f.jsonl'} --format focus", store_history=True)
        assert "a FOCUS file is .csv or .parquet" in capsys.readouterr().err
    finally:
        ip.run_cell("%unload_ext nbcost", store_history=True)
        for thread in set(threading.enumerate()) - threads_before:
            thread.join(timeout=5)


def test_a_killed_session_exports_what_its_log_holds(spend):
    """The kernel died in the second cell: its logged calls are still charges."""
    (my_call,) = [i for i, e in enumerate(spend) if e.get("key") == "my-model"]
    killed = spend[:my_call + 1]
    export = focus_table(killed)
    rows = [r for r in export.rows if r["SkuId"].endswith("/my-model")]
    assert rows and {r["x_Status"] for r in rows} == {"interrupted"}
    assert sum(r["BilledCost"] for r in rows) == Decimal(spend[my_call]["cost_usd"])
    gpu = [r for r in export.rows if r["ServiceCategory"] == "Compute"]
    assert "cell" in {r["x_WindowKind"] for r in gpu}
    assert not any("GPU-seconds" in w for w in export.warnings)  # between cells: one rate
