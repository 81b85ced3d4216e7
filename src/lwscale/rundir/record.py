"""A cell's record (``cells/<id>/record.json``): the one class that makes, writes and reads it.

The keys, their order and their meaning are the versioned contract of docs/records.md. A
record is made from the plan's cell and what training measured (``CellRecord.trained``), or
from the cell and why it failed (``CellRecord.failed``); ``Store`` writes it with ``to_json``
and reads it with ``from_json``. Keys this version does not know are kept, so rewriting an
older or newer record (``Store.add_labels``) loses nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from lwscale.sweep.plan import Cell
from lwscale.training.result import RECORD_FIELDS, CellResult

RECORD_SCHEMA = 1
STATUSES = ("done", "diverged", "failed", "running", "pending")  # the last two only in results.csv
FINISHED = ("done", "diverged")

PROVENANCE = ("schema", "lwscale_version", "git_commit", "finished_at")
IDENTITY = ("id", "status", "reason", "width", "seed", "steps", "warmup", "model", "groups", "labels")


@dataclass
class CellRecord:
    id: str
    status: str  # done, diverged or failed
    reason: str | None = None  # why it diverged or failed
    width: int | None = None
    seed: int | None = None
    steps: int | None = None
    warmup: int | None = None
    model: dict = field(default_factory=dict)  # the config trained (ModelConfig or UserModelConfig .to_dict)
    groups: list[dict] = field(default_factory=list)  # one per optimizer group (plan.GroupHP)
    labels: list[dict] = field(default_factory=list)  # the sweep points it served (plan.Label)
    result: CellResult | None = None  # what training measured; None for a failed cell
    schema: int = RECORD_SCHEMA
    lwscale_version: str | None = None  # provenance, stamped by Store.write_record
    git_commit: str | None = None
    finished_at: str | None = None
    extra: dict = field(default_factory=dict)  # keys this version does not know
    # the keys of the file it was read from, in their order (None: a new record); a rewrite keeps them
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    # ---- making one ----------------------------------------------------------------------
    @classmethod
    def _of(cls, cell: Cell, status: str, reason: str | None, result: CellResult | None) -> CellRecord:
        return cls(
            id=cell.id,
            status=status,
            reason=reason,
            width=cell.width,
            seed=cell.seed,
            steps=cell.steps,
            warmup=cell.warmup,
            model=cell.model.to_dict(),
            groups=[asdict(g) for g in cell.groups],
            labels=[asdict(lab) for lab in cell.labels],
            result=result,
        )

    @classmethod
    def trained(cls, cell: Cell, result: CellResult) -> CellRecord:
        """The record of a cell that trained to its end (done) or was frozen (diverged)."""
        return cls._of(cell, result.status, result.reason, result)

    @classmethod
    def failed(cls, cell: Cell, reason: str) -> CellRecord:
        """The record of a cell whose stack raised (out of memory, an exception): no result."""
        return cls._of(cell, "failed", reason, None)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def diagnostics(self) -> dict:
        """The recorded diagnostics ({} when none were recorded, or the cell failed)."""
        return (self.result.diagnostics if self.result is not None else None) or {}

    # ---- the file's form -----------------------------------------------------------------
    def to_json(self) -> dict:
        """The record as record.json holds it. A new record: provenance, the cell, then the
        result's fields (``diagnostics`` only when recorded). A record read from a file: the
        file's keys in the file's order (provenance first), values as they are now, then any key
        given a value since (new labels); a key the file lacked is not added empty."""
        full = {k: getattr(self, k) for k in PROVENANCE + IDENTITY}
        if self.result is not None:
            full.update({k: getattr(self.result, k) for k in RECORD_FIELDS})
        full.update({k: v for k, v in self.extra.items() if k not in full})
        if self.read_keys is None:
            if self.result is not None and self.result.diagnostics is None:
                del full["diagnostics"]
            return full
        order = list(PROVENANCE) + [k for k in self.read_keys if k not in PROVENANCE]
        out = {k: full[k] for k in order if k in full}
        out.update({k: v for k, v in full.items() if k not in out and v not in (None, {}, [])})
        return out

    @classmethod
    def from_json(cls, data: dict) -> CellRecord:
        """A record read back (``data`` has at least ``id`` and ``status``). Missing keys are
        None; a failed cell has no result."""
        known = {f.name for f in fields(cls)} - {"result", "extra", "read_keys"}
        rec = cls(**{k: data[k] for k in known if k in data})
        if rec.status != "failed":
            rec.result = CellResult(**{k: data[k] for k in RECORD_FIELDS if k in data}, reason=rec.reason)
            known |= set(RECORD_FIELDS)
        rec.extra = {k: v for k, v in data.items() if k not in known}
        rec.read_keys = tuple(data)
        return rec
