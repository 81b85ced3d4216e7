"""``python -m lwscale.cli``: the ``lwscale`` command, where no console script is installed."""

from lwscale.cli.main import main

main()
