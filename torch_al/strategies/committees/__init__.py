"""Committees of independently trained members: ensembles and query by committee (ensembles.py)."""
