"""Methods that train a network of their own beside the task model: learning loss (learning_loss.py)."""
