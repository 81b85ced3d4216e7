"""Layer 5, the sweep: the validated spec (YAML, pydantic), command-line overrides, and the plan
of cells it expands to."""
