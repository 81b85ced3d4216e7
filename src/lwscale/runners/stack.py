"""One stack of cells, trained and recorded: how every runner turns a stack into records.

``make_stacks`` cuts pending cells into stacks that can share one stacked model; ``run_stack``
trains one (lwscale/training/loop.py) and writes a record per cell, a failure included: on
out-of-memory a stack of K > 1 is split in halves and retried, any other exception marks its
cells ``failed`` with the reason, and a full disk stops the sweep so that a rerun resumes.
"""

from __future__ import annotations

import errno
import traceback
from itertools import groupby
from typing import Callable

import torch

from lwscale.core.errors import UserError
from lwscale.data.dataset import Dataset
from lwscale.rundir.record import CellRecord
from lwscale.rundir.store import Store
from lwscale.runners.result import RunSummary
from lwscale.sweep.plan import Cell
from lwscale.sweep.spec import Spec
from lwscale.training.checkpoint import WriteError
from lwscale.training.loop import train_stack


def make_stacks(cells: list[Cell], k: int | dict[int, int], reserved: list[list[str]] = ()) -> list[list[Cell]]:
    """Cut cells into stacks of at most k (an int, or per width) that can share one model.
    Each of ``reserved`` (cell ids in stacking order: the stacks that have a checkpoint,
    lwscale.training.checkpoint.saved_stacks) whose cells are all here, can share a model and fit in
    k is kept whole, first, so that it resumes; the other cells are cut as usual."""

    def size_for(width: int) -> int:
        return k if isinstance(k, int) else k.get(width, 1)

    by_id = {c.id: c for c in cells}
    stacks, taken = [], set()
    for ids in reserved:
        if not ids or len(set(ids)) != len(ids) or any(i not in by_id or i in taken for i in ids):
            continue
        stack = [by_id[i] for i in ids]
        if len({c.stack_key() for c in stack}) == 1 and len(stack) <= size_for(stack[0].width):
            stacks.append(stack)
            taken.update(ids)
    rest = [c for c in cells if c.id not in taken]
    order = sorted(rest, key=lambda c: (c.width, repr(c.stack_key()), c.seed, c.rule_hparams[1:], c.id))
    for _, group in groupby(order, key=lambda c: c.stack_key()):
        group = list(group)
        size = size_for(group[0].width)
        # balanced sizes (differing by at most one): fewer distinct shapes to compile
        n = -(-len(group) // size)
        cuts = [round(i * len(group) / n) for i in range(n + 1)]
        stacks.extend(group[a:b] for a, b in zip(cuts, cuts[1:]))
    return stacks


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def disk_error(exc: BaseException) -> OSError | None:
    """The OSError of a full (or read-only) disk behind ``exc``, following its causes."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def run_stack(
    stack: list[Cell],
    spec: Spec,
    store: Store,
    dataset: Dataset,
    device: torch.device,
    summary: RunSummary,
    on_progress=None,
    on_start: Callable | None = None,
    checkpoint_for: Callable | None = None,
) -> None:
    """Train one stack and write its records; failures become records too.
    ``checkpoint_for(stack)`` gives the stack's checkpoint (see lwscale.training.checkpoint)."""
    if on_start:
        on_start(stack)
    ckpt = checkpoint_for(stack) if checkpoint_for else None
    try:
        results = train_stack(stack, spec, dataset, device, on_progress, checkpoint=ckpt)
        records = [(CellRecord.trained(c, r), r.spectra) for c, r in zip(stack, results)]
    except torch.OutOfMemoryError as exc:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if len(stack) > 1:
            half = len(stack) // 2
            for part in (stack[:half], stack[half:]):
                run_stack(part, spec, store, dataset, device, summary, on_progress, on_start, checkpoint_for)
            if ckpt:
                ckpt.finish()
            return
        reason = f"out of memory: {str(exc).splitlines()[0] if str(exc) else 'OOM'}"
        records = [(CellRecord.failed(c, reason), None) for c in stack]
    except (KeyboardInterrupt, UserError):  # Ctrl-C, or a file of the run cannot be written
        raise
    except Exception as exc:  # a failing stack is data; the sweep goes on
        full = disk_error(exc)
        if full is not None:  # a full disk is not the cells' result: stop, and let a rerun resume
            raise WriteError(
                f"cannot write {full.filename or 'a file'}: {full.strerror or full}; finished cells "
                "are kept, rerun to resume once there is space"
            ) from None
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        summary.failures.append(reason + "\n" + traceback.format_exc(limit=3))
        records = [(CellRecord.failed(c, reason), None) for c in stack]
    for rec, spectra in records:
        store.write_record(rec, spectra)
        setattr(summary, rec.status, getattr(summary, rec.status) + 1)
    if ckpt:
        ckpt.finish()
