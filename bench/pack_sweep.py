"""Packed training against sequential training against PyTorch, side by side in one session.

For every mixer and width, runs back to back on the same machine:
  1. ``mechlab bench --pack RUNS``: RUNS runs as one packed group, then the same RUNS runs one
     after another in the same process (both throughputs in one JSON line);
  2. ``python bench/torch_ar.py``: PyTorch eager training one run (a sweep of RUNS runs one after
     another has the same tokens/s).
Prints one JSON line per measurement as it goes, then a Markdown table of tokens/s and ratios.

Usage: python bench/pack_sweep.py [--mechlab target/debug/mechlab] [--runs 5] [--threads 2]
       [--mixers attention,based,...] [--widths 16,64] [--steps 30] [--warmup 5]
Measure on an otherwise idle machine: anything else running distorts both sides.
"""

import argparse
import json
import os
import subprocess
import sys

MIXERS = ["attention", "based", "base_conv", "h3", "hyena", "mamba", "delta_net", "gla", "mamba2"]


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mechlab", default="target/debug/mechlab")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mixers", default=",".join(MIXERS))
    p.add_argument("--widths", default="16,64")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    a = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    rows = []
    for width in [int(w) for w in a.widths.split(",")]:
        for mixer in a.mixers.split(","):
            common = ["--mixer", mixer, "--d-model", str(width),
                      "--steps", str(a.steps), "--warmup", str(a.warmup)]
            m = run_json([a.mechlab, "bench", "--pack", str(a.runs)] + common, env)
            print(json.dumps(m), flush=True)
            h3 = ["--h3-state", "1024", "--h3-head-dim", "2"] if mixer == "h3" else []
            t = run_json([sys.executable, os.path.join(here, "torch_ar.py"), "--threads",
                          str(a.threads)] + common + h3)
            print(json.dumps(t), flush=True)
            rows.append((mixer, width, m, t))
    print()
    print(f"| mixer | d_model | packed ×{a.runs} | sequential | PyTorch eager | packed / sequential "
          "| packed / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for mixer, width, m, t in rows:
        packed, seq, torch = m["packed_tokens_per_s"], m["sequential_tokens_per_s"], t["tokens_per_s"]
        print(f"| {mixer} | {width} | {packed:,.0f} | {seq:,.0f} | {torch:,.0f} | "
              f"{packed / seq:.2f}× | {packed / torch:.2f}× |")


if __name__ == "__main__":
    main()
