"""Runners decide where and how the cells of a plan train; all write the same store."""
