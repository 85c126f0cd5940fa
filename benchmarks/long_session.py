"""Memory over a long session: what 100,000 cells and 1,000,000 ``track()`` windows add.

    python benchmarks/long_session.py [--scale 1.0] [--cells 100000] [--windows 1000000]
                                      [--json FILE]

Two subprocesses, one after the other, each with its own InteractiveShell: ``bare`` (no
extension; its "windows" are ``contextlib.nullcontext()`` blocks, so the loop is the same) and
``nbcost`` (``%load_ext nbcost``, windows are ``nbcost.track()``). Each warms up, takes its
resident memory (RSS), runs the cells one ``run_cell`` each and the windows in a loop inside a
few cells, and takes its RSS again (after ``gc.collect()`` and glibc's ``malloc_trim``, so freed
memory the allocator still caches is not counted; the peak on the way is printed too). What
nbcost adds is its growth less the bare shell's (IPython keeps every cell's source itself).
The nbcost child then checks that every finished window is in the spend log, times ``%cost``
(the table of every top-level window, read back from the log) and
``nbcost.session().to_dataframe()`` (every window), and says the peak RSS these reached.
Goal: ≤ 50 MiB added for 1,000,000 windows.

``--scale 0.05`` runs a twentieth of the cells and windows (a quick look, under a minute here);
the goal is then scaled alike, but not below 5 MiB (RSS moves that much from run to run).

Reading back, full scale (1,122,013 windows with the warm-up's), on the 2-core machine shared
with other work, 2026-11-28, the same day and load for both:

| | ``%cost`` | ``to_dataframe()`` | peak RSS |
| --- | --- | --- | --- |
| before (e777e62: row dicts, json module, a line of output per window) | 18.8 s | 70.2 s | 2,832 MiB |
| after (Arrow batches, orjson, timestamps once, the latest 100 windows shown) | 7.7 s | 40.9 s | 1,300 MiB |

What is left is Python per log line (about 15 µs: parse, check the reader rules, build the
row), and the DataFrame itself (Decimal objects for money).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from figures import write as write_figure

GOAL_MIB = 50.0  # for 1,000,000 windows (and 100,000 cells)
FULL_WINDOWS = 1_000_000
NOISE_MIB = 5.0

CHILD = r"""
import contextlib, gc, io, json, os, resource, sys, time
from IPython.core.interactiveshell import InteractiveShell

variant, cells, windows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


try:
    import ctypes
    _trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc: RSS as it is
    _trim = lambda pad: None


def settle():
    time.sleep(0.5)  # background writers (the spend log, IPython's history) catch up
    gc.collect()
    _trim(0)  # hand freed heap back to the OS: what is measured is what is still held
    return rss_mib()


ip = InteractiveShell.instance()
quiet = io.StringIO()
loop = "for _ in range({n}):\n    with block('window'):\n        pass\n"
chunk = 100_000
with contextlib.redirect_stdout(quiet):
    if variant == "nbcost":
        ip.run_cell("%load_ext nbcost", store_history=True)
        ip.run_cell("import nbcost; block = nbcost.track", store_history=True)
    else:
        ip.run_cell("import contextlib; block = lambda label: contextlib.nullcontext()",
                    store_history=True)
    for _ in range(2000):  # warm up: one-time allocations, caches, background threads
        ip.run_cell("x = 1", store_history=True)
    ip.run_cell(loop.format(n=20000), store_history=True)
before = settle()
started = time.perf_counter()
with contextlib.redirect_stdout(quiet):
    for _ in range(cells):
        ip.run_cell("x = 1", store_history=True)
    cells_s = time.perf_counter() - started
    started = time.perf_counter()
    for done in range(0, windows, chunk):
        ip.run_cell(loop.format(n=min(chunk, windows - done)), store_history=True)
    windows_s = time.perf_counter() - started
peak_run = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # transient backlogs
after = settle()
result = {"variant": variant, "before_mib": before, "after_mib": after,
          "cells_s": cells_s, "windows_s": windows_s, "peak_run_mib": peak_run}
if variant == "nbcost":
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        started = time.perf_counter()
        ip.run_cell("%cost", store_history=True)
        result["cost_s"] = time.perf_counter() - started
    result["cost_lines"] = out.getvalue().count("\n")
    result["kept"] = ip.ev("len(nbcost.session().records)")
    result["finished"] = ip.ev("getattr(nbcost.session().records, 'appended', None) "
                               "or len(nbcost.session().records)")  # (an nbcost that kept all)
    with contextlib.redirect_stdout(quiet):
        started = time.perf_counter()
        ip.run_cell("df = nbcost.session().to_dataframe()", store_history=True)
        result["dataframe_s"] = time.perf_counter() - started
    result["dataframe_rows"] = ip.ev("len(df)")
    result["windows_logged"] = ip.ev(  # finished ones: not the row of the cell running this
        "int(((df.kind != 'between_cells') & (df.status != 'running')).sum())")
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result), flush=True)
"""


def run_child(variant: str, cells: int, windows: int, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, variant, str(cells), str(windows)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the {variant} child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="run this fraction of the cells and windows (0.05: a quick look)")
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=FULL_WINDOWS)
    parser.add_argument("--json", help="append the figures to this file (for make bench)")
    args = parser.parse_args()
    cells = max(1, round(args.cells * args.scale))
    windows = max(1, round(args.windows * args.scale))
    # A smaller run's goal is scaled, but not below NOISE_MIB: resident memory moves by a couple
    # of MiB from run to run whatever nbcost does (the allocator's arenas).
    goal = max(GOAL_MIB * windows / FULL_WINDOWS, NOISE_MIB)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NBCOST_HOME": os.path.join(home, "nbcost"),
               "IPYTHONDIR": os.path.join(home, "ipython")}  # history off the user's profile
        bare = run_child("bare", cells, windows, env)
        nb = run_child("nbcost", cells, windows, env)
    grown = {r["variant"]: r["after_mib"] - r["before_mib"] for r in (bare, nb)}
    added = grown["nbcost"] - grown["bare"]
    print(f"{cells:,} trivial cells and {windows:,} windows in loops of 100,000:")
    for r in (bare, nb):
        print(f"  {r['variant']:<7} RSS {r['before_mib']:7.1f} → {r['after_mib']:7.1f} MiB "
              f"(+{grown[r['variant']]:.1f}; peak {r['peak_run_mib']:.0f}); cells "
              f"{r['cells_s']:.1f} s, windows {r['windows_s']:.1f} s")
    print(f"  the session kept {nb['kept']:,} of its {nb['finished']:,} finished windows in "
          "memory; the rest are in the spend log")
    print(f"  %cost ({nb['cost_lines']:,} lines) took {nb['cost_s']:.2f} s; to_dataframe() "
          f"({nb['dataframe_rows']:,} rows) took {nb['dataframe_s']:.2f} s; peak RSS "
          f"{nb['peak_mib']:.0f} MiB")
    print()
    print("| figure | measured | goal | met |")
    print("| --- | --- | --- | --- |")
    met = "yes" if added <= goal else "no"
    print(f"| memory added by {windows:,} track() windows and {cells:,} cells | "
          f"{added:+.1f} MiB | ≤ {goal:g} MiB | {met} |")
    logged = "yes" if nb["windows_logged"] == nb["finished"] else "no"
    print(f"| windows in the spend log (read back by to_dataframe) | {nb['windows_logged']:,} | "
          f"all {nb['finished']:,} | {logged} |")
    print(f"| `%cost` at the end ({nb['cost_lines']:,} lines) | {nb['cost_s']:.2f} s | - | - |")
    print(f"| `to_dataframe()` at the end ({nb['dataframe_rows']:,} rows) | "
          f"{nb['dataframe_s']:.2f} s | - | - |")
    scale = f"{windows:,} track() windows and {cells:,} cells"
    write_figure(args.json, f"memory added by {scale}", round(added, 1), "MiB",
                 f"≤ {goal:g} MiB", added <= goal,
                 f"the bare shell grew {grown['bare']:.1f} MiB in the same run; peak "
                 f"{nb['peak_run_mib']:.0f} MiB")
    write_figure(args.json, "finished windows found in the spend log", nb["windows_logged"],
                 "windows", f"all {nb['finished']:,}", nb["windows_logged"] == nb["finished"])
    write_figure(args.json, f"`%cost` after {scale}", round(nb["cost_s"], 2), "s",
                 "—", None, f"{nb['cost_lines']:,} lines")
    write_figure(args.json, f"`to_dataframe()` after {scale}", round(nb["dataframe_s"], 2),
                 "s", "—", None, f"{nb['dataframe_rows']:,} rows; peak RSS "
                 f"{nb['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
