"""tools/compare_outputs.py A B: the outputs of tools/capture_outputs.sh for two checkouts, compared.

Every file must be byte-identical, except what measures time: in records and results.csv the
fields in TIMING. Terminal text that differs is listed; read it with diff (only timings, the
automatic K's timing ratios and process ids may differ). Exit 1 when any file differs."""

import io
import json
import os
import sys

import pandas as pd

TIMING = {"finished_at", "tokens_per_s", "tflops", "mfu", "wall_s", "git_commit", "stack_size"}


def files(root: str) -> set[str]:
    out = set()
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.relpath(os.path.join(folder, name), root)
            if not path.startswith(("term/", "configs/")) and path != "r.txt":
                out.add(path)
    return out


def same_but_timing(path: str, a: bytes, b: bytes) -> bool:
    if path.endswith("record.json"):
        ja, jb = json.loads(a), json.loads(b)
        return {k for k in set(ja) | set(jb) if ja.get(k) != jb.get(k)} <= TIMING
    if path.endswith("results.csv"):
        da, db = pd.read_csv(io.BytesIO(a)), pd.read_csv(io.BytesIO(b))
        cols = [c for c in da.columns if c not in TIMING]
        return list(da.columns) == list(db.columns) and da[cols].equals(db[cols])
    return False


def main(a_root: str, b_root: str) -> int:
    fa, fb = files(a_root), files(b_root)
    diffs = [f"only in {a_root}: {p}" for p in sorted(fa - fb)] + [f"only in {b_root}: {p}" for p in sorted(fb - fa)]
    identical = timing_only = 0
    for path in sorted(fa & fb):
        a = open(os.path.join(a_root, path), "rb").read()
        b = open(os.path.join(b_root, path), "rb").read()
        if a == b:
            identical += 1
        elif same_but_timing(path, a, b):
            timing_only += 1
        else:
            diffs.append(f"differs: {path}")
    print(f"byte-identical files: {identical}; identical but for timing fields (records, results.csv): {timing_only}")
    for name in sorted(os.listdir(os.path.join(a_root, "term"))):
        ta, tb = (open(os.path.join(r, "term", name)).read() for r in (a_root, b_root))
        if ta != tb:
            print(f"terminal text differs: term/{name} (read it with diff: only timings may differ)")
    for d in diffs:
        print(d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
