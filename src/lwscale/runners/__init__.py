"""Layer 8: runners train a plan's cells (here, on GPUs, on Slurm, and the targets of
``transfer --train``) and write the run directory."""
