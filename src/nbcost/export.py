"""Writers for the flat spend table: CSV, JSONL and Parquet (and a pandas DataFrame), and the
reader that brings any of them back; a session's FOCUS file (:mod:`nbcost.focus`).

The table comes from :mod:`nbcost.rows`; every writer follows the declared schema in
:mod:`nbcost.schema`, so each column has one type whatever the machine: money stays Decimal
(decimal strings in CSV and JSONL, ``decimal128`` in Parquet), counts are integers (nullable),
timestamps are UTC.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ConfigError
from .ledger import iter_log, read_log
from .rows import SpendTable
from .schema import arrow_schema, column_array, columns_for, from_text, to_plain

__all__ = ["FORMATS", "dataframe", "export_rows", "export_session", "log_table",
           "read_export", "session_dataframe", "session_table", "to_arrow"]

FORMATS = ("csv", "jsonl", "parquet", "focus")  # focus: FOCUS 1.2, .csv or .parquet
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
               ".pq": "parquet"}


def write_csv(rows: list[Mapping[str, Any]], path: Path) -> None:
    columns = columns_for(rows)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([c.name for c in columns])
        for row in rows:
            writer.writerow(["" if (v := to_plain(row.get(c.name), c.type)) is None else v
                             for c in columns])


def write_jsonl(rows: list[Mapping[str, Any]], path: Path) -> None:
    columns = columns_for(rows)
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            record = {c.name: to_plain(row.get(c.name), c.type) for c in columns}
            out.write(json.dumps(record) + "\n")


def to_arrow(rows: list[Mapping[str, Any]]):
    """The table as an Arrow table with the declared schema (the same for every session)."""
    import pyarrow as pa

    columns = columns_for(rows)
    schema = arrow_schema(columns)
    arrays = [column_array([row.get(c.name) for row in rows], c.type, field.type)
              for c, field in zip(columns, schema)]
    return pa.Table.from_arrays(arrays, schema=schema)


def write_parquet(rows: list[Mapping[str, Any]], path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(to_arrow(rows), path)


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


def export_rows(rows: list[Mapping[str, Any]], path: Path, fmt: str | None = None) -> Path:
    """Write ``rows`` to ``path`` in ``fmt`` (default: from the file's extension)."""
    if fmt == "focus":
        raise ConfigError("a FOCUS file is built from spend-log events, not the flat table: "
                          "use export_session() or `nbcost export --format focus`")
    named = _EXTENSIONS.get(path.suffix.lower())
    if fmt is not None and named not in (None, fmt):
        raise ConfigError(f"--format {fmt} but {path.name!r} names {named}; give a name that "
                          "matches, or leave out --format")
    fmt = fmt or named
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {path.name!r}; add --format "
                          f"({'|'.join(FORMATS)}) or use a .csv, .jsonl or .parquet name")
    if fmt not in WRITERS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _check_folder(path)
    WRITERS[fmt](list(rows), path)
    return path


def _check_folder(path: Path) -> None:
    if path.parent and not path.parent.exists():
        raise ConfigError(f"the folder {path.parent} does not exist")


def session_rows(session) -> list[dict[str, Any]]:
    """The session's table now: a window still open (the cell running ``%cost export``) is
    ``running``, not ``interrupted``."""
    session.flush()
    table = SpendTable(running={w.id for w in session.open_windows()})
    for event in iter_log(session.ledger_path):  # streamed: a long session's log is large
        table.add(event)
    return table.rows()


def session_table(session):
    """:func:`session_rows` as an Arrow table (:func:`to_arrow` of them), built as the log is
    read: see :func:`log_table`."""
    session.flush()
    return log_table(session.ledger_path, {w.id for w in session.open_windows()})


def log_table(path: Path, running: Iterable[str] = ()):
    """The flat table of the spend log at ``path`` as Arrow: exactly ``to_arrow`` of its rows
    (``running``: as in :func:`nbcost.rows.rows_from_events`), built in record batches as the
    log is read, so a session of a million windows never holds a million row dicts. A log only
    the row-by-row table handles (:mod:`nbcost.table_batches`) is read again that way."""
    from .table_batches import BatchedSpendTable, NotStreamable

    running = set(running)
    table = BatchedSpendTable(running)
    try:
        for event in iter_log(path):
            table.add(event)
        return table.table()
    except NotStreamable:
        del table
    rows = SpendTable(running)
    for event in iter_log(path):
        rows.add(event)
    return to_arrow(rows.rows())


def export_session(session, path: Path, fmt: str | None = None) -> tuple[Path, int]:
    """Write the session's table (or, ``fmt="focus"``, its FOCUS rows) to ``path``; return the
    path and the number of rows. FOCUS leaves unpriced usage out and says so on stderr."""
    if fmt == "focus":
        from .focus import focus_table, write_focus

        session.flush()
        focus = focus_table(read_log(session.ledger_path).events)
        for warning in focus.warnings:
            session.warn_once(f"focus:{warning}", f"nbcost: {warning}")
        return write_focus(focus, path), len(focus.rows)
    if (fmt or _EXTENSIONS.get(path.suffix.lower())) == "parquet":  # Arrow all the way
        import pyarrow.parquet as pq

        _check_folder(path)
        table = session_table(session)
        pq.write_table(table, path)
        return path, table.num_rows
    rows = session_rows(session)
    return export_rows(rows, path, fmt), len(rows)


def session_dataframe(session):
    """The session's flat table as a pandas DataFrame (Decimal money, UTC timestamps)."""
    return frame_of(session_table(session))


def dataframe(rows: Iterable[Mapping[str, Any]]):
    """The rows as a DataFrame with the declared types (see :func:`frame_of`)."""
    return frame_of(to_arrow(list(rows)))


def frame_of(table):
    """An Arrow table of the schema as pandas: counts as nullable ``Int64`` (never float64 for
    a missing value), ``unpriced`` as ``boolean``, money as ``Decimal``, UTC-aware timestamps."""
    import pandas as pd
    import pyarrow as pa

    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapping.get)


def read_export(path: Path, fmt: str | None = None):
    """An export (CSV, JSONL or Parquet) back as an Arrow table with the declared schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fmt = fmt or _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt == "parquet":
        return pq.read_table(path)  # written with the schema
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as src:
            raw = list(csv.DictReader(src))
    elif fmt == "jsonl":
        with open(path, encoding="utf-8") as src:
            raw = [json.loads(line) for line in src if line.strip()]
    else:
        raise ConfigError(f"cannot tell the format of {Path(path).name!r}; pass fmt")
    columns = columns_for(raw)  # other meters' columns: numbers in JSONL, text in CSV
    rows = [{c.name: from_text(r.get(c.name), c.type) for c in columns} for r in raw]
    schema = arrow_schema(columns)
    return pa.Table.from_arrays([pa.array([r[c.name] for r in rows], type=f.type)
                                 for c, f in zip(columns, schema)], schema=schema)

