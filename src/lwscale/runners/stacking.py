"""How many cells to train together as one stacked model (K).

On CUDA a width-256 proxy uses a few percent of the GPU, so K is as large as memory allows:
one step of a K = 1 and a K = 2 stack is measured, and K fills 85% of free memory
(capped by the cells there are). On the CPU stacking pays only for tiny cells, so K comes
from a short timing of K = 1 against larger K, and K > 1 is chosen only if it is at least
5% faster per cell: never slower than one by one. The spec's ``cells_per_stack`` or
``--cells-per-stack`` overrides both.

A run keeps the K it chose, per width and device, in ``<run>/cells_per_stack.json``, and a
rerun uses it instead of timing again: a stack's id hashes its cells, so another K would
make other stacks, and a killed stack's checkpoint would never be resumed.
"""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path
from typing import Callable

import torch

from lwscale.core.files import atomic_write_text
from lwscale.core.log import quiet
from lwscale.sweep.spec import Spec
from lwscale.training.loop import peak_step_memory, time_steps

MEMORY_FRACTION = 0.85
MAX_K = 64


K_FILE = "cells_per_stack.json"


def _device_key(device: torch.device) -> str:
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def saved_k(run_dir: Path | None, device: torch.device) -> dict[int, int]:
    """The K a run chose earlier on this kind of device, per width ({} when none or unreadable)."""
    if run_dir is None:
        return {}
    try:
        data = json.loads((Path(run_dir) / K_FILE).read_bytes().decode("utf-8"))
        return {int(w): int(k) for w, k in data.get(_device_key(device), {}).items() if int(k) >= 1}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _save_k(run_dir: Path, device: torch.device, chosen: dict[int, int]) -> None:
    path = Path(run_dir) / K_FILE
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    entry = data.get(_device_key(device))
    entry = entry if isinstance(entry, dict) else {}
    data[_device_key(device)] = {**entry, **{str(w): k for w, k in chosen.items()}}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def choose_k(
    spec: Spec,
    cells: list,
    device: torch.device,
    log: Callable[[str], None] = quiet,
    run_dir: Path | None = None,
    save: bool = True,
) -> dict[int, int]:
    """K for each width of these cells: the spec's number, or chosen automatically (the K
    the run in ``run_dir`` chose earlier on this kind of device, else measured and saved
    there unless ``save`` is False: a dry run writes nothing)."""
    widths = sorted({c.width for c in cells})
    if spec.model.factory:  # a user's model cannot be stacked (lwscale.model.user)
        return {w: 1 for w in widths}
    k = spec.train.cells_per_stack
    if isinstance(k, int):
        return {w: k for w in widths}
    out, earlier, chosen = {}, saved_k(run_dir, device), {}
    for w in widths:
        if w in earlier:
            out[w] = earlier[w]
            log(
                f"width {w}: {out[w]} cells per stack (chosen earlier in this run, kept so that its stacks and "
                "their checkpoints stay the same)"
            )
            continue
        group = [c for c in cells if c.width == w]
        n = max(
            len(list(g))
            for _, g in groupby(sorted(group, key=lambda c: repr(c.stack_key())), key=lambda c: repr(c.stack_key()))
        )
        if device.type == "cuda":
            out[w] = k_for_memory(group[0].model, spec, device, n)
            log(f"width {w}: {out[w]} cells per stack (from measured memory, {MEMORY_FRACTION:.0%} of free)")
        else:
            out[w] = k_for_speed(group[0].model, spec, device, min(n, 8), log)
        chosen[w] = out[w]
    if run_dir is not None and chosen and save:
        _save_k(run_dir, device, chosen)
    return out


def k_for_memory(
    cfg,
    spec: Spec,
    device: torch.device,
    n_max: int,
    measure: Callable[[int], int] | None = None,
    free: int | None = None,
) -> int:
    """The largest K whose stack fits in MEMORY_FRACTION of free memory, from the measured
    peak memory of K = 1 and K = 2 (their difference is one cell's share)."""
    measure = measure or (lambda k: peak_step_memory(cfg, spec, device, k))
    m1, m2 = measure(1), measure(2)
    per_cell = max(m2 - m1, 1)
    fixed = max(m1 - per_cell, 0)
    if free is None:
        free, _ = torch.cuda.mem_get_info(device)
        free += m2  # the measurement's own memory was freed when it returned
    k = int((MEMORY_FRACTION * free - fixed) // per_cell)
    return max(1, min(k, n_max, MAX_K))


def k_for_speed(
    cfg,
    spec: Spec,
    device: torch.device,
    n_max: int,
    log: Callable[[str], None] = quiet,
    time_fn: Callable[[int], float] | None = None,
) -> int:
    """K = 1 unless a larger stack is at least 5% faster per cell in a short timing.

    Candidates are tried in increasing K and the search stops at the first that is not
    faster per cell than the best so far: on the CPU a stack's working set soon outgrows
    the caches (see docs/performance.md), so larger K only get slower, and their timing
    would be the costliest. K = 1 is timed before and after, against warm-up effects.
    """
    if n_max < 2:
        return 1
    time_fn = time_fn or (lambda k: time_steps(cfg, spec, device, k=k, steps=3, warmup=2))
    first = time_fn(1)
    per_cell = {}
    for k in sorted({2, n_max} | ({4} if n_max > 4 else set())):
        per_cell[k] = time_fn(k) / k
        if per_cell[k] > min(first, *per_cell.values()):
            break
    per_cell[1] = min(first, time_fn(1))
    best = min(per_cell, key=per_cell.get)
    if best > 1 and per_cell[1] / per_cell[best] < 1.05:
        best = 1
    log(
        f"width {cfg.width}: {best} cells per stack (timed: {per_cell[1] / per_cell[best]:.2f}x "
        "the one-by-one speed per cell)"
    )
    return best
