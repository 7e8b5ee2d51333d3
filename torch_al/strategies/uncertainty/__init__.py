"""Uncertainty from one deterministic forward pass: entropy, margin, least confidence (uncertainty_sampling.py), CEAL (ceal.py), EMOC (emoc.py)."""
