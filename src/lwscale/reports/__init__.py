"""Reports read the store (results.csv, records, spec.yaml) and never train."""
