"""What the diagnostics (train.diagnostics: true) add to a sweep's wall time.

Trains the stacks of a small sweep (default: configs/quickstart.yaml, one stack per width,
through ``loop.train_stack`` exactly as a sweep does) twice: diagnostics on and off. It
reports two figures:

* the time spent inside the diagnostics recorder (gain hooks at each evaluation, the end
  SVDs), timed directly around its calls, as a share of the training wall time; this is
  robust on a busy machine;
* the wall-time difference on - off of the whole stacks, which on a shared CPU is noisy.

The figure printed last is the directly timed overhead in percent.

    PYTHONPATH=src python benchmarks/diagnostics_overhead.py [SPEC] [--steps N]
"""

from __future__ import annotations

import argparse
import time

from lwscale.data.load import load_dataset
from lwscale.runners.local import make_stacks
from lwscale.sweep.plan import make_plan
from lwscale.sweep.spec import load_spec, with_overrides
from lwscale.training import loop as train
from lwscale.training import recorder as diagnostics


def timed_recorder(spent: list[float]):
    class Timed(diagnostics.Recorder):
        def at_eval(self, step):
            t0 = time.perf_counter()
            super().at_eval(step)
            spent.append(time.perf_counter() - t0)

        def at_end(self):
            t0 = time.perf_counter()
            super().at_end()
            spent.append(time.perf_counter() - t0)

    return Timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default="configs/quickstart.yaml")
    ap.add_argument("--steps", type=int, default=None, help="override train.steps")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    spec = with_overrides(load_spec(args.spec), "--steps", train={"steps": args.steps})
    device = train.resolve_device(spec.train.device)
    specs = {mode: with_overrides(spec, "benchmark", train={"diagnostics": mode}) for mode in (True, False)}
    plan = make_plan(specs[True])
    stacks = make_stacks(plan.cells, 4)
    stacks = [next(s for s in stacks if s[0].width == w) for w in sorted({s[0].width for s in stacks})]
    m, t = spec.model, specs[True].train
    dataset = load_dataset(
        spec.data,
        m.seq_len,
        t.batch_size,
        t.eval_tokens,
        device,
        max_width=max(m.widths),
        depth=m.depth,
        head_dim=m.head_dim,
    )
    dataset.prepare(sorted({c.seed for s in stacks for c in s}), max(c.steps for s in stacks for c in s))

    wall = {True: 0.0, False: 0.0}
    spent: list[float] = []
    original = train.Recorder
    try:
        for _ in range(args.repeats):
            for stack in stacks:
                for mode in (False, True):  # interleaved, so drifts in machine load hit both
                    train.Recorder = timed_recorder(spent) if mode else original
                    t0 = time.perf_counter()
                    results = train.train_stack(stack, specs[mode], dataset, device)
                    wall[mode] += time.perf_counter() - t0
                    assert (results[0].diagnostics is not None) == mode
    finally:
        train.Recorder = original
    direct = sum(spent) / wall[True] * 100
    diff = (wall[True] - wall[False]) / wall[False] * 100
    print(
        f"{len(stacks)} stacks ({', '.join(f'width {s[0].width} x{len(s)}' for s in stacks)}), "
        f"{stacks[0][0].steps} steps, eval every {t.eval_interval}, x{args.repeats}"
    )
    print(f"wall on {wall[True]:.2f} s, off {wall[False]:.2f} s: difference {diff:+.2f}% (noisy on a shared CPU)")
    print(f"time inside the diagnostics recorder: {sum(spent):.3f} s of {wall[True]:.2f} s")
    print(f"diagnostics overhead (directly timed): {direct:.2f}%")


if __name__ == "__main__":
    main()
