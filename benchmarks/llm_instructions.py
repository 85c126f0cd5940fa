"""What nbcost adds to every LLM call in machine instructions: the per-call figure without noise.

    python benchmarks/llm_instructions.py [--json FILE]

``llm_overhead.py`` times what a call pays, but on a shared 2-core VM its figure moves by
±15 µs from one run to the next, more than most changes to the recording path. Instructions
move less (~3 %): valgrind's cachegrind counts them, every thread included, with the L1 data misses. The
same call as ``llm_overhead.py`` (the openai SDK over an in-process transport, a real Session
writing its spend log) runs unpatched, patched with a wrapper that records nothing, and patched
as shipped; each runs 30 and then 130 calls in a fresh process, and the difference over the 100
extra calls is its per-call figure, start-up cancelled out. No goal: this is the figure to
compare changes by. Needs valgrind (``apt-get install valgrind``); about three minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cachegrind import COUNTERS, available, per_unit
from figures import write as write_figure

HERE = Path(__file__).resolve().parent

CHILD = r"""
import sys, threading
sys.path[:0] = [sys.argv[3], sys.argv[4]]
import llm_overhead
import nbcost.testing
from nbcost.meters.llm import LlmMeter
from nbcost.session import Session

mode, calls = sys.argv[1], int(sys.argv[2])
session = Session(meters=[LlmMeter()])
patcher = session.meters["llm"]._patcher
client = llm_overhead.in_process_client(nbcost.testing.Scenario(chunks=20, split_bytes=None))
for thread in threading.enumerate():  # the tokenizer loads once, in the background
    if thread.name == "nbcost-tiktoken":
        thread.join()
if mode == "unpatched":
    patcher.uninstall()
elif mode == "wrapper":
    patcher.recorder.finish = llm_overhead._floor_finish("wrapper", session)
for _ in range(calls):
    client.chat.completions.create(model="gpt-4o", messages=llm_overhead.MESSAGES)
session.close()
"""

CALLS = (30, 130)
MODES = ("unpatched", "wrapper", "nbcost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="append the figures to this file (for make bench)")
    args = parser.parse_args()
    if not available():
        return
    per_call = per_unit(CHILD, MODES, CALLS, (str(HERE), str(HERE.parent / "src")))
    added = {mode: {name: per_call[mode][name] - per_call["unpatched"][name] for name in COUNTERS}
             for mode in ("wrapper", "nbcost")}
    print(f"per LLM call, counted by cachegrind (the unpatched call: "
          f"{per_call['unpatched']['instructions']:,.0f} instructions):")
    for mode, label in (("wrapper", "a wrapper recording nothing"), ("nbcost", "nbcost")):
        print(f"  added by {label:<27}: {added[mode]['instructions']:9,.0f} instructions, "
              f"{added[mode]['L1 data misses']:7,.0f} L1 data misses")
    write_figure(args.json, "instructions added per LLM call (cachegrind, every thread)",
                 round(added["nbcost"]["instructions"]), "instructions", "—", None,
                 f"a wrapper recording nothing adds {added['wrapper']['instructions']:,.0f}; the "
                 f"unpatched call {per_call['unpatched']['instructions']:,.0f}")


if __name__ == "__main__":
    main()
