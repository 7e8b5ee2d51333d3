"""Self-supervised pretraining on the pool's unlabeled images, before the first round: rotation
prediction (rotation.py, the PFK paper's initial model) and SimCLR (simclr.py)."""

from torch_al.pretraining.heads import head_slot
from torch_al.pretraining.rotation import ROTATIONS, rotated_batch, rotation_pretrain
from torch_al.pretraining.simclr import augmented_views, nt_xent_loss, simclr_pretrain

__all__ = ["ROTATIONS", "augmented_views", "head_slot", "nt_xent_loss", "rotated_batch", "rotation_pretrain", "simclr_pretrain"]
