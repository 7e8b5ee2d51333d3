"""Methods that train a model of their own to choose: discriminative active learning (discriminative.py)."""
