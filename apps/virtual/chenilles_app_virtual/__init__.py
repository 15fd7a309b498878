"""Ledger channels that fund virtual channels, as a Chenilles app (see rules.py)."""
