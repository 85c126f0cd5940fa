"""A long session's flat table built straight into Arrow record batches.

:class:`nbcost.rows.SpendTable` keeps each window's row, a dict of Python objects (about 1 KB),
until the whole log is read: a session of a million ``track()`` blocks held gigabytes before
``to_dataframe()`` could convert them. Here a window's row becomes Arrow as soon as its end is
read (in batches of :data:`BATCH_ROWS`); what is kept meanwhile is the set of ended window ids,
the windows still open and the running sums the "between cells" row needs. The result is the
very table ``to_arrow(rows_from_events(...))`` gives: the same rows in the same order (by
start, then as the log ended them), the same values and types.

That holds while a finished row cannot change, so a log where one can (a ``window_amended``
event, a window ended twice) or whose rows have a column outside the declared schema (another
meter's) raises :class:`NotStreamable`, and the caller builds the table the usual way.
"""

from __future__ import annotations

from decimal import Decimal
from operator import methodcaller
from typing import Any, Mapping

import pyarrow as pa

from .rows import (_EPOCH, SpendTable, _attribute_unended, _between_cells, _SessionTable,
                   _window_row)
from .schema import BASE_COLUMNS, COLUMNS, DECIMAL, arrow_schema, column_array

__all__ = ["BATCH_ROWS", "BatchedSpendTable", "NotStreamable"]

#: Rows per record batch: big enough for Arrow's per-column work to dominate, small enough
#: that the rows waiting for it stay a few MB.
BATCH_ROWS = 16_384
_DECLARED = frozenset(c.name for c in COLUMNS)
#: The meter columns the between-cells row subtracts, each with the zero its sum starts from.
_SUMMED = tuple((c.name, Decimal(0) if c.type == DECIMAL else 0) for c in COLUMNS
                if c not in BASE_COLUMNS and c.name != "llm_models")


class NotStreamable(Exception):
    """The log has what only the row-by-row table handles (see the module's docstring)."""


class _StreamedSession(_SessionTable):
    """A :class:`nbcost.rows._SessionTable` that hands each finished row to Arrow."""

    def __init__(self, first: Mapping[str, Any]) -> None:
        super().__init__(first)
        self.ended_ids: set[str] = set()
        self.pending: list[dict[str, Any]] = []
        self.chunks = _Chunks()
        # The top-level rows' meter columns summed in the order rows.py sums them (ended rows
        # in the order they ended, then the open ones): floats and Decimals add up the same.
        self.sums = dict(_SUMMED)

    def _has_ended(self, window_id: str) -> bool:
        return window_id in self.ended_ids

    def _amend(self, event: Mapping[str, Any]) -> None:
        raise NotStreamable("a window was amended after it ended")

    def _end(self, window_id: str, row: dict[str, Any]) -> None:
        if window_id in self.ended_ids:
            raise NotStreamable(f"window {window_id} ended twice")
        self._take(row)
        self.ended_ids.add(window_id)
        if len(self.pending) >= BATCH_ROWS:
            self._flush()

    def _take(self, row: dict[str, Any]) -> None:
        if not _DECLARED.issuperset(row):
            raise NotStreamable("a column outside the declared schema")
        if not row.get("parent_id"):
            sums = self.sums
            for name, zero in _SUMMED:
                sums[name] = sums[name] + (row.get(name) or zero)
        self.pending.append(row)

    def _flush(self) -> None:
        if self.pending:
            self.chunks.add(self.pending)
            self.pending = []

    def table(self, running: set[str]):
        """This session's rows, sorted as rows.py sorts them, then its between-cells row."""
        self._flush()
        unended = [_window_row(start, None, self.last_ts, window_id in running)
                   for window_id, start in self.unended.items()]
        _attribute_unended(unended, self.usage_in)
        for row in unended:
            self._take(row)
        self._flush()
        rest = _between_cells(self.totals.result(), self.first, self.session_start,
                              self.last_ts, lambda column, zero: self.sums.get(column, zero))
        if rest is not None and not _DECLARED.issuperset(rest):
            raise NotStreamable("a column outside the declared schema")
        table = self.chunks.sorted_table()
        if rest is None:
            return table
        return pa.concat_tables([table, _Chunks.of([rest]).sorted_table()])


class BatchedSpendTable(SpendTable):
    """:class:`nbcost.rows.SpendTable` whose :meth:`table` is the Arrow table of its rows,
    built as the events come (``add`` raises :class:`NotStreamable` where it cannot be)."""

    def _session_table(self, first: Mapping[str, Any]) -> _StreamedSession:
        return _StreamedSession(first)

    def rows(self) -> list[dict[str, Any]]:
        raise TypeError("a BatchedSpendTable keeps no rows: use table()")

    def table(self):
        """The table with the declared schema (:func:`nbcost.export.to_arrow` of the rows)."""
        tables = [session.table(self.running) for session in self._sessions.values()]
        if not tables:
            return _SCHEMA.empty_table()
        return pa.concat_tables(tables)


_SCHEMA = arrow_schema(COLUMNS)
_START_TYPE = _SCHEMA.field("start").type


class _Chunks:
    """The table's columns, a list of Arrow arrays (chunks) each, in the order rows ended; a
    chunk of nothing but nulls is kept as its length only (most meter columns of most rows)."""

    def __init__(self) -> None:
        self.columns: list[list] = [[] for _ in COLUMNS]
        self.lengths: list[int] = []

    @classmethod
    def of(cls, rows: list[Mapping[str, Any]]) -> _Chunks:
        chunks = cls()
        chunks.add(rows)
        return chunks

    def add(self, rows: list[Mapping[str, Any]]) -> None:
        present = set().union(*rows)  # a column no row has is nulls: most meters' columns
        for column, field, chunks in zip(COLUMNS, _SCHEMA, self.columns):
            if column.name not in present:
                chunks.append(None)
                continue
            array = column_array(list(map(methodcaller("get", column.name), rows)),
                                 column.type, field.type)
            chunks.append(None if array.null_count == len(array) else array)
        self.lengths.append(len(rows))

    def _column(self, index: int):
        type_ = _SCHEMA.field(index).type
        chunks = self.columns[index]
        if all(chunk is None for chunk in chunks):
            return None
        return pa.chunked_array([pa.nulls(n, type_) if chunk is None else chunk
                                 for chunk, n in zip(chunks, self.lengths)], type=type_)

    def sorted_table(self):
        """The rows by start (a missing one first), rows that start alike in the order they
        ended: rows.py's stable sort. Each column is put in order and its chunks let go of
        in turn, so the rows are held once more at most by one column."""
        total = sum(self.lengths)
        start_index = _SCHEMA.get_field_index("start")
        start = self._column(start_index)
        start = (pa.nulls(total, _START_TYPE) if start is None else start).fill_null(
            pa.scalar(_EPOCH, type=_START_TYPE))
        order = pa.table({"start": start, "seq": pa.array(range(total), type=pa.int64())}
                         ).sort_by([("start", "ascending"), ("seq", "ascending")]).column("seq")
        arrays = []
        for index, field in enumerate(_SCHEMA):
            column = self._column(index)
            arrays.append(pa.nulls(total, field.type) if column is None
                          else column.take(order).combine_chunks())
            self.columns[index] = []
        return pa.Table.from_arrays(arrays, schema=_SCHEMA)
