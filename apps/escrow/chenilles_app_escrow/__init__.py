"""Escrow with an arbiter and a timeout as a Chenilles app (see rules.py for the rule)."""
