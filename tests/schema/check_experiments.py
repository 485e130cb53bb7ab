"""Validate every TOML file under experiments/ against schemas/experiment.schema.json, the way
an editor does: one file at a time, includes not merged. Then check that the schema still
catches what it must (a typo'd key, a wrong type, an unknown mixer) in a few mutated copies.

Usage: python tests/schema/check_experiments.py [REPO_ROOT]
Prints one line per file; exits 1 on any failure. Needs the `jsonschema` package.
"""

import json
import pathlib
import sys
import tomllib

import jsonschema


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    schema = json.loads((root / "schemas/experiment.schema.json").read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    failed = 0
    files = sorted((root / "experiments").rglob("*.toml"))
    for path in files:
        data = tomllib.loads(path.read_text())
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            failed += 1
            for e in errors:
                where = ".".join(str(p) for p in e.path) or "(top)"
                print(f"FAIL {path.relative_to(root)}: {where}: {e.message[:200]}")
        else:
            print(f"ok   {path.relative_to(root)}")

    # The schema must still refuse mistakes (typos, wrong types, unknown values).
    must_fail = [
        {"modle": {"d_model": 16}},
        {"model": {"d_modle": 16}},
        {"model": {"d_model": "wide"}},
        {"model": {"mixer": "transformer"}},
        {"task": {"kind": "ar", "max_rhs_len": 3}},
        {"task": {"pairz": 3}},
        {"train": {"lr": "fast"}},
        {"experiment": {"name": 3}},
        {"include": "base.toml"},
        {"sweep": {"grid": {"train.lr": 1e-3}}},
    ]
    for doc in must_fail:
        if validator.is_valid(doc):
            failed += 1
            print(f"FAIL accepted {json.dumps(doc)}")
    print(f"{len(files)} files, {len(must_fail)} mutations, {failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
