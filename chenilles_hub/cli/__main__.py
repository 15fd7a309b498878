"""``python -m chenilles_hub.cli``: the ``chenilles`` command."""

from . import main

main()
