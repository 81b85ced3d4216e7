"""Layer 1, the floor: user-facing errors, atomic writes and digests, injected faults for tests.

Imports nothing else from lwscale. See docs/architecture.md for the layers."""
