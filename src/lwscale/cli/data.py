"""``lwscale data ...``: the Typer commands over ``lwscale.data.prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lwscale.cli.console import console

app = typer.Typer(
    help="Prepare your own corpus for sweeps (then: data: {source: tokens, paths: [DIR]}).", no_args_is_help=True
)


@app.command()
def prepare(
    inputs: Optional[list[str]] = typer.Argument(
        None,
        metavar="INPUTS...",
        help="text, JSONL (either may be .gz) or Parquet files, or globs (quote them: 'data/*.txt')",
    ),
    out: Path = typer.Option(..., "--out", help="output directory: tokens.bin, tokenizer.json, manifest.json"),
    field: Optional[str] = typer.Option(None, "--field", help="JSONL (and --hf): the key holding each document's text"),
    column: Optional[str] = typer.Option(None, "--column", help="Parquet: the column holding the text (needs pyarrow)"),
    tokenizer: Optional[Path] = typer.Option(
        None, "--tokenizer", help="use this tokenizer.json instead of training a BPE"
    ),
    vocab_size: int = typer.Option(4096, "--vocab-size", help="vocabulary of the BPE trained on the inputs"),
    raw_bytes: bool = typer.Option(False, "--bytes", help="raw UTF-8 bytes as tokens (vocab 256), no tokenizer"),
    fmt: str = typer.Option(
        "auto",
        "--format",
        metavar="auto|text|jsonl|parquet",
        help="auto (by extension: .jsonl, .parquet, else text), text, jsonl or parquet",
    ),
    hf: Optional[str] = typer.Option(
        None,
        "--hf",
        help="a Hugging Face dataset NAME[:CONFIG] instead of files (needs the optional 'datasets' package)",
    ),
    hf_split: str = typer.Option("train", "--hf-split", help="the split of --hf"),
) -> None:
    """Tokenize INPUTS into one token file a sweep memory-maps.

    Streaming (inputs may be larger than memory), with a progress bar.

    Writes a manifest: source hashes, token count, vocab size."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from lwscale.data.prepare import prepare as run

    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bars:

        def progress(label: str, total: int):
            task = bars.add_task(label, total=total or None)
            return lambda n: bars.advance(task, n)

        result = run(
            list(inputs or []),
            out,
            field=field,
            column=column,
            tokenizer=tokenizer,
            vocab_size=vocab_size,
            fmt=fmt,
            hf=hf,
            hf_split=hf_split,
            bytes_tokens=raw_bytes,
            progress=progress,
            warn=lambda msg: console.print(f"warning: {msg}", markup=False, soft_wrap=True),
        )
    console.print(
        f"{result.tokens:,} tokens ({result.dtype}, vocab {result.vocab_size}) from "
        f"{len(result.manifest['sources'])} source(s) -> {result.out}",
        markup=False,
    )
    console.print(f"use it in a spec: data: {{source: tokens, paths: [{result.out}]}}", markup=False)
