"""What nbcost adds to every cell, against a bare shell and ipython-autotime, in one run.

    python benchmarks/cell_overhead.py [--cells 250] [--rounds 60] [--load N] [--floor]
                                       [--json FILE]

One IPython shell has autotime and nbcost loaded (and two empty cell hooks, the floor of any
extension that hooks cells); only one of them has its hooks registered at a time. Round after
round, each variant runs ``--cells`` trivial cells in turn (bare: no hooks; the order rotates),
so all see the same machine load *and the same process*: separate processes differ by 10-20 µs a
cell by luck of memory layout, more than the figures measured. Blocks are short and rounds many
(a block lasts ~50 ms): the machine's load drifts from one second to the next, and short blocks
put a drift into a few rounds rather than into the median (with 15 rounds of 1,000 cells,
autotime's figure ranged 16-70 µs from run to run; with 60 of 250, 28-47 µs). A variant's figure
is the median over rounds of its time minus bare's in that round: wall time on the cell's
thread, what a user waits, with nbcost's block ending in a flush of its spend log (its writer
thread's work for those cells counts too). A second process does the same in ipykernel's shell
with nbcost's display channel open (each cell sends its final message to the lab extension).
``--floor`` adds a variant that does only the irreducible part of nbcost's work, with nbcost's
own ledger, lines and record: a cell's note and record, its two edges queued for the writer
thread (which builds their lines), with no check, lock or nesting (what nbcost's way of logging
a cell cannot go below). ``--load N`` keeps N busy-loop processes
running meanwhile (both cores busy with other work: each handoff of the GIL to another thread
then waits for a scheduler slice).
Goals: idle, ≤ 50 µs added per cell and no more than autotime adds; loaded, ≤ 100 µs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from child_shell import SHELL
from figures import write as write_figure

CHILD = r"""
import contextlib, io, json, sys, time
kind, cells, floor = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "floor"
""" + SHELL + r"""
quiet = io.StringIO()  # autotime prints a line per cell; keep that out of the pipe


def load(line):
    # What loading an extension added: its cell hooks and input transformers.
    hooks = {name: list(callbacks) for name, callbacks in ip.events.callbacks.items()}
    transformers = list(ip.input_transformers_cleanup)
    ip.run_cell(line, store_history=True)
    return ([(name, cb) for name, callbacks in ip.events.callbacks.items() for cb in callbacks
             if cb not in hooks.get(name, [])],
            [t for t in ip.input_transformers_cleanup if t not in transformers])


with contextlib.redirect_stdout(quiet):
    variants = {"bare": ([], [])}
    if kind == "shell":
        variants["hooks"] = ([("pre_run_cell", lambda info: None),
                              ("post_run_cell", lambda result: None)], [])
        variants["autotime"] = load("%load_ext autotime")
    variants["nbcost"] = load("%load_ext nbcost")
    from nbcost.ipython import extension_for

    session = extension_for(ip).session


def floor_hooks():
    # The least nbcost's way of logging a cell can cost: its note and record, its two edges
    # queued for the ledger's writer (which builds their lines), without a check, a lock or a
    # nested window.
    import itertools
    from nbcost.records import WindowRecord
    from nbcost.session import _end_edge, _NotedCell, _start_edge

    ledger, numbers, running = session._ledger, itertools.count(), []
    if session._fixed_members is None:  # (a cell ends first: nbcost finds its figures)
        with contextlib.redirect_stdout(quiet):
            ip.run_cell("pass", store_history=True)
    figures, members = session._fixed_figures, session._fixed_members

    def pre(info):
        noted = _NotedCell(f"floor{next(numbers):011x}", {}, info.cell_id, ip.execution_count)
        running.append(noted)
        ledger.buffer_later("cell_start", _start_edge, noted)

    def post(result):
        noted = running.pop()
        record = WindowRecord(noted.info(time.time()), time.perf_counter() - noted.started_perf,
                              "ok", figures[0], session.id)
        session.records.append(record)
        ledger.buffer_later("cell_end", _end_edge, (noted, record, figures, members))

    return [("pre_run_cell", pre), ("post_run_cell", post)], []


if kind == "shell" and floor:
    variants["floor"] = floor_hooks()


def switch(on):
    for name, (hooks, transformers) in variants.items():
        for event, callback in hooks:
            registered = callback in ip.events.callbacks[event]
            if name == on and not registered:
                ip.events.register(event, callback)
            elif name != on and registered:
                ip.events.unregister(event, callback)
        for transformer in transformers:
            present = transformer in ip.input_transformers_cleanup
            if name == on and not present:
                ip.input_transformers_cleanup.append(transformer)
            elif name != on and present:
                ip.input_transformers_cleanup.remove(transformer)


def block(name):
    switch(name)
    with contextlib.redirect_stdout(quiet):
        start = time.perf_counter()
        for _ in range(cells):
            ip.run_cell("x = 1", store_history=True)
        if name in ("nbcost", "floor"):
            session.flush()  # its writer's work for these cells, done before the clock stops
        elapsed = time.perf_counter() - start
    quiet.seek(0); quiet.truncate()
    return elapsed / cells * 1e6


for name in variants:  # warm up; let one-time background start-up work finish
    block(name)
time.sleep(2)
print("ready", flush=True)
order = list(variants)
for _ in sys.stdin:  # each round in another order: no variant always follows the same one
    order = order[1:] + order[:1]
    print(json.dumps({name: block(name) for name in order}), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes meanwhile")
    parser.add_argument("--json", help="append the figures to this file (for make bench)")
    parser.add_argument("--floor", action="store_true",
                        help="also time the floor: a cell's two lines and record, no checks")
    args = parser.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.load)]
    try:
        shell, kernel = run(args)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    where = f"{args.load} busy processes" if args.load else "no added load"
    print(f"{args.cells} trivial cells per block, {args.rounds} rounds of interleaved blocks in "
          f"one shell, {where} (bare: {statistics.median(shell['bare']):.1f} µs/cell):")
    added = {name: added_by(shell, name) for name in ("hooks", "autotime", "nbcost")}
    print(f"  added by two empty cell hooks (the floor for nbcost's hooks): "
          f"{added['hooks']:6.1f} µs/cell")
    print(f"  added by autotime: {added['autotime']:6.1f} µs/cell")
    goal = 100 if args.load else 50
    print(f"  added by nbcost:   {added['nbcost']:6.1f} µs/cell  (goal ≤ {goal}"
          f"{'' if args.load else ', and ≤ autotime'})")
    in_kernel = added_by(kernel, "nbcost")
    if args.floor:
        floor = added_by(shell, "floor")
        print(f"  added by the floor (nbcost's note, record and two queued lines for a cell, "
              f"no check): {floor:6.1f} µs/cell")
        write_figure(args.json, f"the floor: a cell's note, record and two spend-log lines "
                     f"the way nbcost keeps them, nothing else, {where}", round(floor, 1), "µs",
                     "—", None, "what nbcost's way of logging a cell pays without any check")
    print(f"  added by nbcost in ipykernel's shell, its display channel open (what a cell pays "
          f"with the lab extension: the live badge's final message): {in_kernel:6.1f} µs/cell")
    write_figure(args.json, f"added per trivial cell in a kernel with the display channel, "
                 f"{where}", round(in_kernel, 1), "µs", "—", None,
                 "ipykernel's shell in process; each cell's final message to the lab extension")
    write_figure(args.json, f"added per trivial cell, {where}", round(added["nbcost"], 1), "µs",
                 f"≤ {goal} µs" + ("" if args.load else ", and ≤ autotime's"),
                 added["nbcost"] <= goal and (args.load > 0
                                              or added["nbcost"] <= added["autotime"]),
                 f"autotime adds {added['autotime']:.1f} µs in the same run; two empty hooks "
                 f"{added['hooks']:.1f} µs")


def added_by(times: dict[str, list[float]], name: str) -> float:
    """The median over rounds of ``name``'s µs per cell minus bare's in the same round."""
    return statistics.median(t - b for t, b in zip(times[name], times["bare"]))


def run(args) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NBCOST_HOME": home}
        children = [subprocess.Popen([sys.executable, "-c", CHILD, kind, str(args.cells),
                                      "floor" if args.floor else "-"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, stderr=subprocess.DEVNULL)
                    for kind in ("shell", "kernel")]
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        times: list[dict[str, list[float]]] = [{}, {}]
        for _ in range(args.rounds):
            for child, figures in zip(children, times):
                child.stdin.write("go\n")
                child.stdin.flush()
                for name, us in json.loads(child.stdout.readline()).items():
                    figures.setdefault(name, []).append(us)
        for child in children:
            child.stdin.close()
            child.wait()
    return times[0], times[1]


if __name__ == "__main__":
    main()
