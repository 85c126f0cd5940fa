"""Saved notebooks → staged rows: each code cell's compact record (``cell.metadata.nbcost``,
written by ``nbcost run`` and the lab extension; docs/schema.md) is one window.

A compact record has no window id: the engine matches it to the same window from a spend log or
an export by its session and start time, so a notebook and its log count once.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from .checks import Skipped, money_or_none, ts_problem
from .columns import WASTE_KINDS
from .sources import Input, read_bytes

__all__ = ["read_notebook", "record_row"]

_GPU = ("held_s", "busy_s", "sm_s", "energy_j", "mem_peak_bytes")
_LLM = ("calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
        "reasoning_tokens")
_BY_MODEL_ONLY = ("errors", "estimated_calls")
_MAX_BYTES = 1 << 30  # a larger "notebook" is not one: never hold more


def _number(value: Any) -> Any:
    """A figure of a record: a finite number of at least 0 (an int64 when whole), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 1 << 63 else None
    return value if math.isfinite(value) and value >= 0 else None


def _whole(value: Any) -> int | None:
    return value if isinstance(_number(value), int) else None


def record_row(record: Any, path: str, notebook_id: str | None) -> dict[str, Any]:
    """A compact record as a staged row; ``ValueError`` says why it cannot be one."""
    if not isinstance(record, dict):
        raise ValueError("metadata.nbcost is not an object")
    if record.get("v", 1) != 1:
        raise ValueError(f"record version {record.get('v')!r} is not 1: upgrade nbcost")
    if not isinstance(record.get("session_id"), str) or not record["session_id"]:
        raise ValueError("no session_id")
    for name in ("cell_id", "label", "status"):
        if not isinstance(record.get(name), (str, type(None))):
            raise ValueError(f"{name} must be a string")
    tags, flags = record.get("tags"), record.get("flags")
    if tags is not None and not (isinstance(tags, dict) and all(
            isinstance(v, (str, int, bool, type(None))) for v in tags.values())):
        raise ValueError("tags are not an object of plain values")
    if flags is not None and not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
        raise ValueError("flags are not a list of strings")
    for name in ("start", "end"):
        if (problem := ts_problem(record.get(name))) is not None:
            raise ValueError(f"{name}: {problem}")
    row: dict[str, Any] = {
        "session_id": record["session_id"], "window_id": None, "parent_id": None,
        "kind": "cell", "notebook_path": path, "notebook_id": notebook_id,
        "cell_id": record.get("cell_id"), "execution_count": _whole(record.get("execution_count")),
        "label": record.get("label"), "tags": json.dumps(record.get("tags") or {}, sort_keys=True),
        "start": record.get("start"), "end": record.get("end"),
        "wall_s": _number(record.get("wall_s")), "status": record.get("status"),
        "cost_usd": money_or_none(record.get("cost_usd")) or Decimal(0),
        "unpriced": bool(record.get("unpriced")),
        "flags": ",".join(record.get("flags") or ()) or None,
    }
    gpu, llm = record.get("gpu"), record.get("llm")
    if isinstance(gpu, dict):
        row.update({f"gpu_{k}": _number(gpu.get(k)) for k in _GPU})
        row["gpu_cost_usd"] = money_or_none(gpu.get("cost_usd")) or Decimal(0)
        for kind in WASTE_KINDS:
            waste = gpu.get("waste")
            waste = waste.get(kind) if isinstance(waste, dict) else None
            if isinstance(waste, dict):
                row[f"gpu_{kind}_s"] = _number(waste.get("s"))
                row[f"gpu_{kind}_usd"] = money_or_none(waste.get("usd"))
    if isinstance(llm, dict):
        row.update({f"llm_{k}": _number(llm.get(k)) for k in _LLM})
        row["llm_cost_usd"] = money_or_none(llm.get("cost_usd")) or Decimal(0)
        by_model = llm.get("by_model")
        if isinstance(by_model, dict) and by_model:
            for figures in by_model.values():
                if not isinstance(figures, dict):
                    raise ValueError("llm.by_model is not an object of objects")
                money_or_none(figures.get("cost_usd"))
            row["llm_models"] = json.dumps(by_model, sort_keys=True)
            for k in _BY_MODEL_ONLY:
                row[f"llm_{k}"] = sum(int(_number((f or {}).get(k)) or 0) for f in by_model.values())
    return row


def _why(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def read_notebook(source: Input, skipped: Skipped) -> tuple[list[dict], list[dict]]:
    """A notebook's cell records as rows, and one line per code cell (recorded or not)."""
    try:
        nb = json.loads(read_bytes(source.url, _MAX_BYTES).decode("utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
        cells = nb["cells"]
        meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    except (ValueError, RecursionError, OSError) as exc:
        skipped.read("files", 1)
        skipped.skip("files", source.url, f"not a readable notebook ({_why(exc)})")
        return [], []
    skipped.read("files", 1)
    notebook_id = (meta.get("nbcost") or {}).get("notebook_id") if isinstance(
        meta.get("nbcost"), dict) else None
    if not isinstance(notebook_id, str):
        notebook_id = None
    rows, cells_out = [], []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        cell_meta = cell.get("metadata")
        record = cell_meta.get("nbcost") if isinstance(cell_meta, dict) else None
        if record is not None:
            skipped.read("cell records", 1)
            try:
                rows.append(record_row(record, source.url, notebook_id))
            except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
                skipped.skip("cell records", f"{source.url}: cell {index + 1}", str(exc))
                record = None
        cells_out.append({"source_file": source.url, "notebook_path": source.url,
                          "notebook_id": notebook_id, "cell_index": index,
                          "cell_id": cell.get("id") if isinstance(cell.get("id"), str) else None,
                          "execution_count": _whole(cell.get("execution_count")),
                          "has_record": record is not None})
    return rows, cells_out
