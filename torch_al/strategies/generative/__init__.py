"""Generative methods: a generative model of the pool's images drives the selection. VAAL
(vaal.py); the networks they share (networks.py)."""
