"""The one money and percent rule (``nbcost.display.format``), on the table of cases the lab
extension's ``format.ts`` is tested on too, and the places that must use it."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from nbcost.display import summary
from nbcost.display.format import format_percent, format_usd
from nbcost.records import MeterTotals, WindowInfo, WindowRecord

CASES = json.loads((Path(__file__).parent / "cases" / "format.json").read_text("utf-8"))


@pytest.mark.parametrize(("amount", "unpriced", "text"), CASES["usd"])
def test_money_follows_the_shared_table(amount, unpriced, text):
    assert format_usd(None if amount is None else Decimal(amount), unpriced) == text
    assert format_usd(amount, unpriced) == text  # the decimal strings of the compact record


@pytest.mark.parametrize(("part", "whole", "text"), CASES["percent"])
def test_percent_follows_the_shared_table(part, whole, text):
    assert format_percent(Decimal(part), Decimal(whole)) == text
    assert format_percent(part, whole) == text


def test_the_summary_module_keeps_the_name_other_modules_import():
    assert summary.format_usd is format_usd


def _record(meters, **kwargs) -> WindowRecord:
    info = WindowInfo(id="w1", kind="cell", start=1_700_000_000.0, end=1_700_000_001.0,
                      execution_count=3)
    return WindowRecord(info=info, wall_s=1.0, status="ok", meters=meters, session_id="s",
                        **kwargs)


def test_the_cell_summary_writes_money_by_the_rule():
    llm = MeterTotals(
        {"calls": 2, "input_tokens": 10, "output_tokens": 5}, Decimal("0.000012"), unpriced=True,
        by_key={"tiny-model": {"calls": 1, "input_tokens": 5, "output_tokens": 2,
                               "cost_usd": Decimal("0.000012")},
                "mystery-model": {"calls": 1, "input_tokens": 5, "output_tokens": 3,
                                  "cost_usd": Decimal(0), "unpriced": True}})
    refund = MeterTotals({"credits": 1}, Decimal("-0.001495"))
    text = repr(summary.RecordSummary(_record({"llm": llm, "refund": refund})))
    assert "$0.000012" not in text and "$-0" not in text
    assert text.splitlines()[-1].split() == ["Cost", "-$0.0015", "+", "unpriced"]
    lines = dict(summary.record_lines(_record({"llm": llm}).compact()))
    assert lines["  tiny-model"].endswith(", <$0.0001")
    assert lines["  mystery-model"].endswith(", unpriced")
    assert lines["Cost"] == "<$0.0001 + unpriced"


def test_the_widget_module_has_no_money_rule_of_its_own():
    """The ES module lays out lines the kernel wrote; dollars never get formatted in JS."""
    js = (Path(summary.__file__).parent / "widget.js").read_text("utf-8")
    assert "unpriced" not in js and "+?" not in js
    assert not re.search(r"""["'`]\$|<\$|toFixed\(4\)|BigInt""", js)
