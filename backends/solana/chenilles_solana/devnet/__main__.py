"""``python -m chenilles_solana.devnet``: see :mod:`chenilles_solana.devnet.server`."""

from .server import main

raise SystemExit(main())
