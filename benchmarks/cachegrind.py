"""Counting what a Python snippet costs per unit of work in machine instructions, under valgrind's
cachegrind (``cell_instructions.py``, ``llm_instructions.py``).

Each variant runs the snippet twice in a fresh process, ``sizes[0]`` and then ``sizes[1]`` units
of work (cells, calls); the difference over the extra units is its per-unit figure, start-up
cancelled out. Every thread is counted, with the L1 data misses that make an instruction cost
more inside real work than in a tight loop. ``PYTHONHASHSEED=0`` gives every run the same dict
layouts, yet counts still move between runs: an LLM call's by up to ~3 % (201,614 and 206,456
for the same recording path), a cell's by up to ~10 %, with how the spend-log writer's batches
fall. Compare changes by several runs, not one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

COUNTERS = {"instructions": r"I\s+refs", "L1 data misses": r"D1\s+misses"}


def available() -> bool:
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        return False
    return True


def per_unit(child: str, variants: Sequence[str], sizes: tuple[int, int],
             extra_args: Sequence[str] = ()) -> dict[str, dict[str, float]]:
    """``{variant: {counter: per unit}}``; the child is run as
    ``python -c child VARIANT UNITS *extra_args`` with ``NBCOST_HOME`` a scratch folder."""
    with tempfile.TemporaryDirectory() as home:
        def count(run: tuple[str, int]) -> dict[str, int]:
            out = subprocess.run(
                ["valgrind", "--tool=cachegrind", "--cache-sim=yes",
                 "--cachegrind-out-file=/dev/null", sys.executable, "-c", child, run[0],
                 str(run[1]), *extra_args],
                capture_output=True, text=True, check=True,
                env={**os.environ, "NBCOST_HOME": home, "PYTHONHASHSEED": "0"})
            return {name: int(re.search(pattern + r":\s+([\d,]+)", out.stderr).group(1)
                              .replace(",", "")) for name, pattern in COUNTERS.items()}

        runs = [(variant, size) for variant in variants for size in sizes]
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            counted = dict(zip(runs, pool.map(count, runs)))
    return {variant: {name: (counted[(variant, sizes[1])][name]
                             - counted[(variant, sizes[0])][name]) / (sizes[1] - sizes[0])
                      for name in COUNTERS}
            for variant in variants}
