"""Generative methods: a generative model of the pool's images drives the selection (VAAL,
vaal.py; M2-VAAL and its latent-distance rules, m2_vaal.py) or adds training images near the
query (BGADL, bgadl.py); the networks they share (networks.py), reading pool images (images.py)."""
