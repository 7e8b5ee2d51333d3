"""Diversity and hybrid methods: core-set (coreset.py), Suggestive annotation (suggestive.py), BADGE (badge.py)."""
