"""Layer 8: reports read the run directory (results.csv, records, spec.yaml) and never train; they
return tables, data and figures, and the CLI prints them."""
