"""Step time of a small CPU cell under OpenMP wait settings, on an idle CPU and next to one
busy torch process: why importing lwscale sets GOMP_SPINCOUNT=10000 (docs/performance.md).

    python benchmarks/openmp_spin.py            # about 2 minutes on 2 cores

Each setting runs in a fresh process (libgomp reads its environment once, at load); the
figure is the best of 2 medians of 10 steps of a K = 1 quickstart cell at widths 32 and 128.
"""

from __future__ import annotations

import os
import subprocess
import sys

SETTINGS = {
    "libgomp default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
}
PROBE = """
import torch
from lwscale.sweep.spec import load_spec
from lwscale.sweep.plan import make_plan
from lwscale.training.loop import time_steps
spec = load_spec('configs/quickstart.yaml')
cells = make_plan(spec).cells
for w in (32, 128):
    c = next(c for c in cells if c.width == w)
    print(min(time_steps(c.model, spec, torch.device('cpu'), k=1, steps=10, warmup=3) for _ in range(2)))
"""
BURN = "import torch\na = torch.randn(256, 256)\nwhile True: a = (a @ a).tanh()"


def probe(extra: dict) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return [float(x) * 1000 for x in out.stdout.split()]


def main() -> None:
    rows = {name: probe(env) for name, env in SETTINGS.items()}
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        busy = {name: probe(env) for name, env in SETTINGS.items()}
    finally:
        burner.kill()
    print(f"{'setting':<26} {'idle w32':>9} {'idle w128':>10} {'busy w32':>9} {'busy w128':>10}  (ms per step)")
    for name in SETTINGS:
        a, b = rows[name]
        c, d = busy[name]
        print(f"{name:<26} {a:9.1f} {b:10.1f} {c:9.1f} {d:10.1f}")


if __name__ == "__main__":
    main()
