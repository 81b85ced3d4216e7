"""A disk that fills up while a checkpoint is saved: torch.save turns the failed write into a
RuntimeError, which must still end the sweep as a full disk (one line, exit 2), never as
failed cells, and a plain rerun must resume."""

import errno
import io
import os

import torch
from conftest import run_cli, write_spec
from runfixtures import leftovers, records, small_spec


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)


def test_disk_full_inside_torch_save_is_a_write_error_not_failed_cells(tmp_path, monkeypatch):
    path = write_spec(tmp_path / "s.yaml", small_spec(checkpoint_minutes=0))
    run = tmp_path / "tiny"
    real_save = torch.save

    def save_on_full_disk(obj, f, *a, **kw):
        return real_save(obj, _FullDisk(f, 2000), *a, **kw)  # raises RuntimeError("... unexpected pos ...")

    monkeypatch.setattr(torch, "save", save_on_full_disk)
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 2, (code, out[-2000:], err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert "No space left on device" in err and "rerun to resume" in err
    assert records(run) == {} and not leftovers(run)  # no cell was recorded failed

    monkeypatch.setattr(torch, "save", real_save)
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 0, err
    assert {r["status"] for r in records(run).values()} == {"done"} and len(records(run)) == 2


def test_a_full_disk_raised_inside_a_stack_is_not_the_cells_result(tmp_path, monkeypatch):
    """Any OSError of a full disk while a stack trains (a compile cache, a log) stops the sweep."""
    from lwscale.runners import stack

    real = stack.train_stack

    def train_on_full_disk(*a, **kw):
        raise RuntimeError("writing failed") from OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(stack, "train_stack", train_on_full_disk)
    path = write_spec(tmp_path / "s.yaml", small_spec())
    code, out, err = run_cli(["sweep", path, "--out", tmp_path])
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert records(tmp_path / "tiny") == {}
    monkeypatch.setattr(stack, "train_stack", real)
