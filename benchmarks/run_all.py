"""``make bench``: every benchmark that runs on this machine, then one table of figure, goal, met.

    python benchmarks/run_all.py [--quick] [--skip NAME ...]

Each benchmark appends its figures (``--json``, see ``figures.py``) to one file; the table is
printed from it, with the machine it ran on. ``--quick`` runs the long ones at a smaller scale
(their figures then say so). Benchmarks that need something this machine lacks (a GPU, Dask)
are listed as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MET = {True: "yes", False: "**no**", None: ""}  # None: a figure without a goal

#: (name, script, arguments, arguments with --quick)
BENCHMARKS = [
    ("cell", "cell_overhead.py", ["--floor"], ["--rounds", "20", "--floor"]),
    ("cell-loaded", "cell_overhead.py", ["--load", "2", "--rounds", "100"],
     ["--load", "2", "--rounds", "20"]),  # (busy cores scatter the rounds more: more of them)
    ("cell-instructions", "cell_instructions.py", [], []),
    ("llm", "llm_overhead.py", ["--floor"], ["--blocks", "7", "--floor"]),
    ("llm-instructions", "llm_instructions.py", [], []),
    ("gpu-cell-end", "gpu_cell_end.py", [], ["--cells", "6"]),
    ("long-session", "long_session.py", [], ["--scale", "0.1"]),
    ("remote", "remote_overhead.py", ["--ray"], ["--ray", "--tasks", "2000"]),
    ("report", "report_scale.py", [], ["--records", "100000"]),
]


def machine() -> str:
    import psutil

    memory = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], help="benchmark names to leave out")
    args = parser.parse_args()
    figures_file = Path(tempfile.mkdtemp(prefix="nbcost-bench-")) / "figures.jsonl"
    ran, skipped = [], []
    for name, script, full, quick in BENCHMARKS:
        if name in args.skip or not (HERE / script).exists():
            skipped.append(f"{name} (left out)" if name in args.skip else f"{name} (no {script})")
            continue
        command = [sys.executable, str(HERE / script), *(quick if args.quick else full),
                   "--json", str(figures_file)]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        began = time.perf_counter()
        done = subprocess.run(command)
        took = time.perf_counter() - began
        (ran if done.returncode == 0 else skipped).append(
            f"{name} ({took:.0f} s)" if done.returncode == 0 else f"{name} (failed: exit "
            f"{done.returncode})")
    rows = [json.loads(line) for line in figures_file.read_text().splitlines()] \
        if figures_file.exists() else []
    print(f"\nnbcost benchmarks{' (quick)' if args.quick else ''} on {machine()}, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}:\n")
    print("| figure | value | goal | met |\n| --- | --- | --- | --- |")
    for row in rows:
        note = f" ({row['note']})" if row.get("note") else ""
        print(f"| {row['figure']}{note} | {row['value']:,} {row['unit']} | {row['goal']} | "
              f"{MET[row['met']]} |")
    print(f"\nran: {', '.join(ran) or 'none'}")
    if skipped:
        print(f"not run: {', '.join(skipped)}")
    sys.exit(0 if rows and all(r["met"] is not False for r in rows) else 1)


if __name__ == "__main__":
    main()
