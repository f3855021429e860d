"""``python -m projections`` runs the ``scenelog`` command."""

from projections.cli import main

main()
