"""What makes a spend-log line unreadable, and the tally of lines skipped.

Two checks with one set of rules. The SQL one (:data:`SQL_MACROS`, used by the bulk reader)
only has to *suspect* a line: a file with any suspect line is read again line by line in
Python by :func:`event_problem`, which decides, gives the reason and the line number. So a
clean file never pays for Python, and every skipped line is named by the same code.

Rules (docs/schema.md): a line is UTF-8 JSON, an object with a string ``event``, ``schema`` the
integer 1 (a newer schema is skipped with a hint to upgrade), a ``session_id``; windows have a
``window_id``; timestamps are ISO 8601 that say their zone (``Z`` or ``+hh:mm``); money is a
decimal string or null (never a float, ``"NaN"`` or an object); tags are an object of scalars.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..logcheck import (
    MAX_LINE_BYTES,
    MONEY_PATTERN,
    STRINGS,
    TS_PATTERN,
    event_problem,
    money_or_none,
    parse_line,
    ts_problem,
)

__all__ = ["CHECK_SPEC", "MAX_LINE_BYTES", "SQL_MACROS", "Skipped", "checked_sql", "event_problem",
           "money_or_none", "parse_line", "ts_problem"]

SHOWN = 5  # reasons kept with their line numbers; the rest are counted

_MODEL_MAP = ('"MAP(VARCHAR, STRUCT(calls BIGINT, input_tokens BIGINT, cache_read_tokens BIGINT, '
              'cache_write_tokens BIGINT, output_tokens BIGINT, reasoning_tokens BIGINT, '
              'errors BIGINT, estimated_calls BIGINT, cost_usd JSON, unpriced BOOLEAN))"')
_STR = r'"([^"\\]|\\.)*"'  # a JSON string, as DuckDB writes JSON back (no spaces)
_NUMBER = r"\d{1,18}(\.\d+)?([eE]-\d{1,3})?"  # at least 0, not huge (else Python decides)
_COUNT = r"\d{1,18}"
_MONEY_STR = f'"{MONEY_PATTERN}"'
#: What a line's checked fields are read as (raw JSON; :func:`checked_sql` tests them).
CHECK_SPEC = {"execution_count": "JSON", "wall_s": "JSON", "unpriced": "JSON",
              "cumulative": "JSON", "flags": "JSON", "window_ids": "JSON", "quantities": "JSON",
              "meters": "JSON", **{name: "JSON" for name in STRINGS}}


def checked_sql(c: str) -> str:
    """SQL: the fields of ``c`` (a line read with :data:`CHECK_SPEC`) have their types."""
    return " AND ".join([*(f"str_ok({c}.{name})" for name in STRINGS),
                         f"bool_ok({c}.unpriced)", f"bool_ok({c}.cumulative)",
                         f"count_ok({c}.execution_count)",
                         f"({c}.wall_s IS NULL OR {c}.wall_s = 'null' OR "
                         f"regexp_full_match({c}.wall_s, '{_NUMBER}'))",
                         f"strs_ok({c}.flags)", f"strs_ok({c}.window_ids)",
                         f"quantities_ok({c}.quantities)", f"meters_ok({c}.meters)"])


# DuckDB macros of the same rules (money fields are read as raw JSON, so a string is quoted),
# and ``model_list``: a window's ``llm_models`` JSON as a typed list, parsed once per log.
SQL_MACROS = rf"""
CREATE OR REPLACE TEMP MACRO ts_ok(x) AS x IS NULL OR (regexp_full_match(x, '{TS_PATTERN}')
    AND TRY_CAST(x AS TIMESTAMPTZ) IS NOT NULL);
CREATE OR REPLACE TEMP MACRO money_ok(x) AS x IS NULL OR x = 'null'
    OR regexp_full_match(x, '"{MONEY_PATTERN}"');
CREATE OR REPLACE TEMP MACRO money(x) AS
    CASE WHEN regexp_full_match(x, '"{MONEY_PATTERN}"')
         THEN TRY_CAST(trim(x, '"') AS DECIMAL(38,18)) END;
CREATE OR REPLACE TEMP MACRO model_list(j) AS CASE WHEN json_valid(j) THEN list_transform(
    map_entries(json_transform(j, '{_MODEL_MAP}')),
    lambda m: struct_pack(model := m.key, calls := m.value.calls,
        input_tokens := m.value.input_tokens, cache_read_tokens := m.value.cache_read_tokens,
        cache_write_tokens := m.value.cache_write_tokens, output_tokens := m.value.output_tokens,
        reasoning_tokens := m.value.reasoning_tokens, errors := m.value.errors,
        estimated_calls := m.value.estimated_calls, cost_usd := money(m.value.cost_usd),
        unpriced := coalesce(m.value.unpriced, false) OR money(m.value.cost_usd) IS NULL)) END;
CREATE OR REPLACE TEMP MACRO tags_ok(x) AS x IS NULL OR x = 'null'
    OR (json_type(x) = 'OBJECT' AND NOT contains(substr(x, 2), '{{') AND NOT contains(x, '['));
CREATE OR REPLACE TEMP MACRO str_ok(x) AS x IS NULL OR x = 'null' OR starts_with(x, '"');
CREATE OR REPLACE TEMP MACRO bool_ok(x) AS x IS NULL OR x IN ('null', 'true', 'false');
CREATE OR REPLACE TEMP MACRO count_ok(x) AS x IS NULL OR x = 'null'
    OR regexp_full_match(x, '{_COUNT}');
CREATE OR REPLACE TEMP MACRO strs_ok(x) AS x IS NULL OR x = 'null'
    OR regexp_full_match(x, '\[({_STR}(,{_STR})*)?\]');
CREATE OR REPLACE TEMP MACRO quantities_ok(x) AS x IS NULL OR x = 'null'
    OR regexp_full_match(x, '\{{({_STR}:{_NUMBER}(,{_STR}:{_NUMBER})*)?\}}');
CREATE OR REPLACE TEMP MACRO all_ok(xs, f) AS list_bool_and(list_transform(xs, f)) IS NOT false;
CREATE OR REPLACE TEMP MACRO meters_ok(x) AS x IS NULL OR x = 'null' OR (
    json_type(x) = 'OBJECT' AND all_ok(json_extract(x, '$.*'), lambda m: starts_with(m, '{{'))
    AND NOT contains(x, ':-')
    AND all_ok(regexp_extract_all(x, '"quantities":(\{{[^{{}}]*\}}|[^,}}]*)', 1),
               lambda q: quantities_ok(q))
    AND all_ok(regexp_extract_all(x, '"cost_usd":({_STR}|[^,}}]*)', 1), lambda c: money_ok(c))
    AND all_ok(regexp_extract_all(x, '"unpriced":([^,}}]*)', 1), lambda u: bool_ok(u))
    AND all_ok(regexp_extract_all(x, '"devices":(\[[^\]]*\]|[^,}}]*)', 1), lambda d: strs_ok(d))
    AND all_ok(regexp_extract_all(x, '"waste_usd":(\{{[^{{}}]*\}}|[^,}}]*)', 1),
               lambda w: regexp_full_match(w, '\{{({_STR}:({_MONEY_STR}|null)(,{_STR}:({_MONEY_STR}|null))*)?\}}'))
    AND all_ok(regexp_extract_all(x, '"(by_key|detail)":([^{{,}}][^,}}]*)', 2), lambda v: v = 'null')
    AND len(regexp_extract_all(x, '"by_key":')) = len(regexp_extract_all(x,
        '"by_key":(null|\{{({_STR}:\{{[^{{}}]*\}}(,{_STR}:\{{[^{{}}]*\}})*)?\}})[,}}]')));
"""


@dataclass
class Skipped:
    """Unreadable input: per unit ("lines" of logs and exports, "cell records" of notebooks,
    "files"), how many were skipped of how many read, and the first few with where and why."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # unit -> [skipped, read]
    examples: list[str] = field(default_factory=list)

    def read(self, unit: str, count: int) -> None:
        self.counts.setdefault(unit, [0, 0])[1] += count

    def skip(self, unit: str, where: str, reason: str, count: int = 1) -> None:
        self.counts.setdefault(unit, [0, 0])[0] += count
        if len(self.examples) < SHOWN:
            self.examples.append(f"{where}: {reason}")

    def merge(self, counts: dict[str, list[int]], examples: list[str]) -> None:
        """Add another tally (one file's) to this one."""
        for unit, (skipped, read) in counts.items():
            mine = self.counts.setdefault(unit, [0, 0])
            mine[0] += skipped
            mine[1] += read
        self.examples += examples[:max(0, SHOWN - len(self.examples))]

    @property
    def total(self) -> int:
        return sum(skipped for skipped, _ in self.counts.values())

    def summary(self) -> str | None:
        """One line for the user, or None when everything was read."""
        if not self.total:
            return None
        parts = [f"{skipped:,} of {read:,} {unit} skipped" if unit != "files" else
                 f"{skipped:,} of {read:,} files unreadable"
                 for unit, (skipped, read) in self.counts.items() if skipped]
        more = self.total - len(self.examples)
        return (", ".join(parts) + ": " + "; ".join(self.examples)
                + (f"; and {more:,} more" if more > 0 else ""))
