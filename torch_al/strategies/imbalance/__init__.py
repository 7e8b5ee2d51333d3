"""Strategies for class-imbalanced pools that search each class's boundary with labels asked inside the round."""
