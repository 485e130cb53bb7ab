"""Token-for-token fixtures of the reference's datasets, for `task.rng = "reference"`.

Runs the reference's own generators (tinylang, github.com/aryamanarora/tinylang: `AR`, `PCFG`)
exactly as its `make_languages.py` does (`torch.manual_seed(42)`, `np.random.seed(42)`,
`random.seed(42)`, then `prepare_sets(100032, 1024)`), and writes what mechlab must reproduce to
`tests/fixtures/reference_data.json`: per dataset, an FNV-1a hash of every split (all rows), the
first rows in full with their key/value positions, and mean yield lengths; plus the random
primitives the generators use (numpy legacy `RandomState`, CPython `random`, `list(set(...))`
order) so a mismatch points at the primitive that broke. No reference code is copied here.

    python tests/reference/make_data_fixtures.py --tinylang /path/to/tinylang-checkout

Needs numpy, torch (imported by the reference modules), tqdm and termcolor.
"""

import argparse
import json
import random
import struct
import sys
from pathlib import Path

import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv_rows(rows):
    """FNV-1a over each token's 4 little-endian bytes, 0xFFFFFFFF after each row."""
    h = FNV_OFFSET
    for row in rows:
        for tok in list(row) + [0xFFFFFFFF]:
            for b in int(tok).to_bytes(4, "little"):
                h = ((h ^ b) * FNV_PRIME) & MASK
    return f"{h:016x}"


def bits(x):
    """A float64's exact bits (JSON numbers do not survive every parser bit for bit)."""
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def seed_all(seed):
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def describe(lang, train, evals, head=6):
    """What the Rust test compares: hashes, first rows, role positions."""
    out = {}
    splits = {"train": train}
    splits.update(evals)
    for name, (toks, schemas) in splits.items():
        out[name] = {
            "n": len(toks),
            "fnv": fnv_rows(toks),
            "mean_len": float(np.mean([len(t) for t in toks])),
            "head": [list(map(int, t)) for t in toks[:head]],
            "key": [int(s["keys"]["query_item_orig"][0]) for s in schemas[:head]],
            "value": [int(s["keys"]["target_item_orig"][0]) for s in schemas[:head]],
        }
    return out


def build(cls, config, seed, train_size, eval_size):
    seed_all(seed)
    lang = cls(**config)
    lang.prepare_sets(train_set_size=train_size, eval_set_size=eval_size)
    train = (lang.train_set["toks"], lang.train_set["probing_schemas"])
    evals = {k: (v["toks"], v["probing_schemas"]) for k, v in lang.evalsets.items()}
    return lang, describe(lang, train, evals)


def primitives():
    rs = np.random.RandomState(42)
    out = {
        "np_random_sample": [bits(rs.random_sample()) for _ in range(5)],
        "np_randint_1_11": [int(rs.randint(1, 11)) for _ in range(20)],
        "np_permutation_10": [int(x) for x in rs.permutation(10)],
        "np_choice_4096_16": [int(x) for x in rs.choice(4096, size=16, replace=False)],
        "np_dirichlet_5": [bits(x) for x in rs.dirichlet(np.ones(5))],
        "np_choice_p": [int(rs.choice(4, p=[0.1, 0.2, 0.3, 0.4])) for _ in range(20)],
    }
    py = random.Random(42)
    out["py_randint_16_16"] = [py.randint(16, 16) for _ in range(3)]
    out["py_choice_16"] = [py.choice(list(range(16))) for _ in range(20)]
    sets = random.Random(7)
    out["set_orders"] = []
    for _ in range(200):
        xs = [sets.randrange(0, sets.choice([10, 40, 200, 1100])) for _ in range(sets.randrange(1, 60))]
        out["set_orders"].append({"in": xs, "out": list(set(xs))})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tinylang", required=True, help="a checkout of the reference repository")
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "fixtures" / "reference_data.json"))
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    args = ap.parse_args()
    sys.path.insert(0, args.tinylang)
    from tinylang.language.ar import AR
    from tinylang.language.pcfg import PCFG

    full = (1000, 64) if args.quick else (100_032, 1024)
    small = (2_000, 100)
    pcfg = dict(head_position="right", mask_nonquery=True, max_depth=10, max_rhs_len=5,
                max_rules_per_nt=5, no_child_queries=True, no_sibling_queries=True,
                num_nonterminals=40, num_terminals=20, train_test_split=0.0,
                transparent_nonterminals=False, unambiguous_queries=True, prepare_train_set=True)
    ar = dict(mask_nonquery=True, max_length=32, min_length=32, num_kv=8192,
              prepare_train_set=True, query_type="key")
    cases = {
        # The paper's datasets (reference folders ar_32*, pcfg_easy*, pcfg_medium*), full size.
        "ar_32": (AR, ar, full),
        "pcfg_easy": (PCFG, pcfg, full),
        "pcfg_medium": (PCFG, {**pcfg, "max_rhs_len": 10}, full),
        "pcfg_easy_8192": (PCFG, {**pcfg, "num_terminals": 8192, "terminal_occurrence_factor": 20}, full),
        # Variants, smaller: the prohibited-pair splits, reverse AR, sibling queries.
        "ar_32_split": (AR, {**ar, "train_test_split": 0.2}, small),
        "ar_32_value": (AR, {**ar, "query_type": "value"}, small),
        "pcfg_gen": (PCFG, {**pcfg, "train_test_split": 0.2}, small),
        "pcfg_sibling": (PCFG, {**pcfg, "no_parent_queries": True, "no_sibling_queries": False}, small),
    }
    result = {"generator": "tests/reference/make_data_fixtures.py", "numpy": np.__version__,
              "python": sys.version.split()[0], "seed": 42, "primitives": primitives(), "datasets": {}}
    for name, (cls, config, (train, evals)) in cases.items():
        lang, desc = build(cls, config, 42, train, evals)
        entry = {"config": config, "train_size": train, "eval_size": evals, "splits": desc}
        if cls is PCFG:
            entry["grammar"] = {
                "max_depths": [int(lang.max_depths[nt]) for nt in lang.nonterminals],
                "rules": [[[str(x) for x in r] for r in lang.rules[nt]] for nt in lang.nonterminals],
                "rule_probs": [[bits(p) for p in lang.rule_probs[nt]] for nt in lang.nonterminals],
                "head_probs_first": [bits(lang.head_probs[nt][0]) for nt in lang.nonterminals],
            }
        result["datasets"][name] = entry
        print(name, {k: (v["n"], v["fnv"], round(v["mean_len"], 3)) for k, v in desc.items()}, flush=True)
    Path(args.out).write_text(json.dumps(result, indent=None, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
