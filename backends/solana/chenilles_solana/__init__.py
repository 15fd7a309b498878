"""The Solana backend of the Chenilles hub (a plugin: see plugin.py)."""
