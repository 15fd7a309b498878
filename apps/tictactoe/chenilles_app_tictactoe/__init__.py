"""Tic-tac-toe with stakes as a Chenilles app (see rules.py for the rule)."""
