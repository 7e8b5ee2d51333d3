"""Bayesian uncertainty from Monte-Carlo dropout: BALD, max entropy, variation ratio (mc_dropout.py), BatchBALD (batchbald.py)."""
