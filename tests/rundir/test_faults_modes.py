"""Files and folders lwscale writes follow the umask, as open() would make them (tempfile's
mkstemp makes 0600 and mkdtemp 0700, whatever the umask)."""

import os
import stat

import numpy as np
import pytest

from lwscale.rundir.record import CellRecord


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_records_tables_and_checkpoints_follow_the_umask(tmp_path, umask_022):
    import torch

    from lwscale.data.corpus import atomic_save_npy
    from lwscale.rundir.store import Store, atomic_write_text
    from lwscale.training.checkpoint import StackCheckpoint

    store = Store(tmp_path / "run")
    store.write_record(CellRecord.from_json({"id": "c1", "status": "done", "width": 32}))
    atomic_write_text(tmp_path / "results.csv", "a,b\n")
    atomic_save_npy(tmp_path / "x.npy", np.arange(3))
    ckpt = StackCheckpoint(tmp_path / "run", ["c1"], every_s=0)
    ckpt.save(torch.nn.Linear(2, 2), torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1), {"step": 1})
    for p in (store.record_path("c1"), tmp_path / "results.csv", tmp_path / "x.npy", ckpt.path, ckpt.meta_path):
        assert _mode(p) == 0o644, (p, oct(_mode(p)))


def test_a_prepared_text_cache_folder_follows_the_umask(tmp_path, umask_022, monkeypatch):
    from lwscale.data.files import prepared_text
    from lwscale.sweep.spec import DataSpec

    monkeypatch.setenv("LWSCALE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.txt").write_text("hello world\n" * 200)
    out = prepared_text(DataSpec(source="text", tokenizer="bytes", paths=[str(tmp_path / "a.txt")]))
    assert _mode(out) == 0o755 and _mode(out / "tokens.bin") == 0o644 and _mode(out / "manifest.json") == 0o644
