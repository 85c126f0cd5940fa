"""How every benchmark hands its figures to ``make bench`` (benchmarks/run_all.py): one JSON line
per figure, appended to the file ``--json`` names. Each line: the figure, its value and unit,
the goal in words, whether it was met (None: a figure without a goal, shown for comparison), and
a note (the baseline measured in the same run)."""

from __future__ import annotations

import json


def write(path: str | None, figure: str, value: float, unit: str, goal: str, met: bool | None,
          note: str = "") -> None:
    if not path:
        return
    with open(path, "a") as out:
        out.write(json.dumps({"figure": figure, "value": value, "unit": unit, "goal": goal,
                              "met": None if met is None else bool(met), "note": note}) + "\n")
