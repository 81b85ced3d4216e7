"""Layer 7, the run directory: the frozen spec, one record per cell, results.csv, claims and status."""
