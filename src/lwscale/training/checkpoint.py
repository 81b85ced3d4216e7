"""Checkpoints of a stack in training, so that a killed stack resumes where it stopped.

``<run>/checkpoints/<stack_id>.pt`` holds the stacked model, the optimizer state and the
loop state (one dict: step, partial curves, loss window, initial losses, elapsed time; see
``lwscale.training.loop.LoopState``) and torch's global RNG states. lwscale's own training draws
nothing from those (the init comes from per-cell generators, and every batch is a pure
function of (seed, step), so the data position is the step), but a ``model.factory`` model
may (dropout): restoring them makes its resume exact too. Everything in the file is tensors
and plain data (the RNG states are uint8 tensors; numpy's and Python's generators, which
training never uses, are not saved), so it is loaded with
``torch.load(..., weights_only=True)``: a checkpoint cannot run code. The stack
id hashes the stack's cell ids, so a checkpoint is only ever resumed by the same cells with
the same K. Each save goes to a
temporary file renamed into place, so a kill during a save leaves the previous checkpoint.
The file is removed once the stack's records are written, unless ``runner.keep_checkpoints``.

Beside it, ``<stack_id>.json`` holds the stack's cells in their stacking order and the
SHA-256 of the checkpoint's bytes (of the new file and the one it replaces, written before
the rename, so whichever of the two a kill leaves in place matches). A checkpoint whose
bytes match neither (a flipped bit on disk or in transfer), or that has no checksum, is
set aside as ``<stack_id>.pt.corrupt`` with a warning and the stack starts over: resuming
it would silently change the cells' losses. The cell list lets a rerun rebuild exactly
this stack (``saved_stacks``), however it chooses K and cuts the pending cells.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from pathlib import Path
from typing import Callable

import torch

from lwscale.core.errors import UserError
from lwscale.core.files import atomic_write, atomic_write_text, sha256_file
from lwscale.core.log import quiet

VERSION = 3  # 1 also held numpy's and Python's RNG states (numpy's as an array, so not weights_only-loadable);
#             2 lacked a model.factory model's buffers (factory.UserStack)


def _rng_state() -> dict:
    """torch's global generators (CPU, and every CUDA device's once CUDA is in use: asking
    before would start CUDA in a CPU sweep): uint8 tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    """Restore ``_rng_state()``. The states come back on ``map_location``'s device, and the
    setters take CPU tensors only."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class WriteError(UserError):
    """A file of the run could not be written (disk full, no permission)."""


def stack_id(cell_ids: list[str]) -> str:
    return hashlib.sha256(",".join(sorted(cell_ids)).encode()).hexdigest()[:16]


class StackCheckpoint:
    """Save every ``every_s`` seconds (0: after every step; None: never) and restore."""

    def __init__(
        self,
        run_dir: Path,
        cell_ids: list[str],
        every_s: float | None,
        keep: bool = False,
        log: Callable[[str], None] = quiet,
    ):
        self.path = Path(run_dir) / "checkpoints" / f"{stack_id(cell_ids)}.pt"
        self.meta_path = self.path.with_suffix(".json")
        self.order = list(cell_ids)  # the stacking order: the checkpoint's tensors are [K, ...] in it
        self.cell_ids, self.every_s, self.keep, self.log = sorted(cell_ids), every_s, keep, log
        self.last_save = time.monotonic()
        self.resumed_from: int | None = None

    # ---- called by train.train_stack --------------------------------------------------------
    def restore(self, model: torch.nn.Module, opt, device: torch.device, loop_keys=()) -> dict | None:
        """Load the saved state into ``model`` and ``opt``; return the loop dict (with
        ``step`` and every name of ``loop_keys``), or None when there is no checkpoint to resume."""
        if not self.path.exists():
            return None
        digests = self._meta().get("sha256") or []
        if not digests:
            self._set_aside("has no checksum (written by an older lwscale, or its checksum file is lost)")
            return None
        if sha256_file(self.path) not in digests:
            self._set_aside("does not match its checksum (damaged on disk or in a copy)")
            return None
        try:
            state = torch.load(self.path, map_location=device, weights_only=True)
        except pickle.UnpicklingError:  # weights_only refused it: a version-1 file (or not ours)
            self.log(
                f"warning: checkpoint {self.path} was written by an older lwscale (or holds more than "
                "tensors and plain data); starting the stack over"
            )
            return None
        except Exception as exc:  # a damaged checkpoint costs only the time it saved
            self.log(f"warning: cannot read checkpoint {self.path} ({type(exc).__name__}); starting the stack over")
            return None
        if state.get("version") != VERSION or state.get("cells") != self.cell_ids:
            self.log(f"warning: checkpoint {self.path} is not this stack's; starting the stack over")
            return None
        missing = sorted(set(loop_keys) - set(state.get("loop", {})))
        if missing:  # a loop field added without a VERSION bump: nothing is loaded, nothing fails
            self.log(
                f"warning: checkpoint {self.path} lacks the loop state {', '.join(missing)}; starting the stack over"
            )
            return None
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        self.resumed_from = int(state["loop"]["step"])
        self.log(f"resuming a stack of {len(self.cell_ids)} from its checkpoint at step {self.resumed_from}")
        return state["loop"]

    def after_step(self, done: int, steps: int, model: torch.nn.Module, opt, loop: Callable[[], dict]) -> None:
        """Save if a checkpoint is due (never after the last step: the records follow)."""
        if self.every_s is None or done >= steps or time.monotonic() - self.last_save < self.every_s:
            return
        self.save(model, opt, loop())

    def save(self, model: torch.nn.Module, opt, loop: dict) -> None:
        state = {
            "version": VERSION,
            "cells": self.cell_ids,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": _rng_state(),
            "loop": loop,
        }
        # the checksum file lists the new file's digest and the current one's before the rename
        previous = (self._meta().get("sha256") or [])[:1] if self.path.exists() else []
        try:
            atomic_write(
                self.path,
                lambda f: torch.save(state, f),
                binary=True,
                before_rename=lambda digest: self._write_meta([digest, *previous]),
            )
        except OSError as exc:
            raise WriteError(
                f"cannot write checkpoint {self.path}: {exc.strerror or exc}; finished cells are kept, "
                "rerun to resume once this is fixed"
            ) from None
        self.last_save = time.monotonic()

    # ---- called by the worker ---------------------------------------------------------------
    def finish(self) -> None:
        """The stack's records are written: drop the checkpoint unless the spec keeps it."""
        if not self.keep:
            self.path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)

    def reseal(self) -> None:
        """Record the checksum of the file now at ``path`` (for a checkpoint rewritten on purpose)."""
        self._write_meta([sha256_file(self.path)])

    # ---- the checksum file ------------------------------------------------------------------
    def _meta(self) -> dict:
        return read_meta(self.meta_path) or {}

    def _write_meta(self, digests: list[str]) -> None:
        atomic_write_text(self.meta_path, json.dumps({"cells": self.order, "sha256": digests}))

    def _set_aside(self, why: str) -> None:
        bad = self.path.with_name(self.path.name + ".corrupt")
        try:
            self.path.replace(bad)
            self.meta_path.unlink(missing_ok=True)
            where = f"set aside as {bad.name}"
        except OSError as exc:
            where = f"could not be set aside ({exc.strerror or exc})"
        self.log(f"warning: checkpoint {self.path} {why}; {where}, starting the stack over")


def read_meta(path: Path) -> dict | None:
    """A checkpoint's checksum file, or None if it is missing or unreadable."""
    try:
        meta = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("cells"), list)
        or not isinstance(meta.get("sha256"), list)
    ):
        return None
    return meta


def saved_stacks(run_dir: Path) -> list[list[str]]:
    """The cells (in stacking order) of each stack that has a checkpoint in ``run_dir``."""
    d = Path(run_dir) / "checkpoints"
    out = []
    if d.is_dir():
        for meta_path in sorted(d.glob("*.json")):
            meta = read_meta(meta_path)
            if meta and meta_path.with_suffix(".pt").exists() and all(isinstance(c, str) for c in meta["cells"]):
                out.append(list(meta["cells"]))
    return out


def prune(run_dir: Path, finished: Callable[[str], bool]) -> None:
    """Remove the checkpoints of stacks whose cells are all ``finished`` (another worker, or
    another cut of the stacks, trained them): nothing would ever resume them."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return
    for meta_path in d.glob("*.json"):
        meta = read_meta(meta_path)
        if meta and meta["cells"] and all(finished(str(c)) for c in meta["cells"]):
            meta_path.with_suffix(".pt").unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
