"""Layer 6, training: the stacked AdamW, the training loop, checkpoints, the per-cell diagnostics
recorder, throughput, and the coordinate check's short training runs."""
