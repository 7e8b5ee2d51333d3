"""Methods that train a network of their own to choose: learning loss (learning_loss.py), discriminative active learning (discriminative.py)."""
