"""A Hugging Face ``Trainer`` callback that runs one active-learning round when training ends.

Needs ``transformers`` (``pip install transformers``); importing this module without it raises an
ImportError that says so.
"""

import copy
import logging
import os

import torch
from torch.utils.data import Dataset

from torch_al.pool import ActivePool
from torch_al.rounds import RoundAtTrainingEnd

try:
    from transformers import TrainerCallback
except ImportError as error:  # an optional dependency: say what to install
    raise ImportError("torch_al.integrations.transformers needs transformers: pip install transformers") from error

logger = logging.getLogger("torch_al")
POOL_FILE = "torch_al_pool.pt"  # the pool's state inside each Trainer checkpoint folder


class LabeledItems(Dataset):
    """The pool's labeled items as the dicts a ``Trainer`` collates: ``{inputs: x, labels: y}``,
    with the ledger's label. It follows the pool: each ``trainer.train()`` sees the items labeled
    so far (the Trainer builds its dataloader at the start of ``train``).

    Args:
        pool: the :class:`ActivePool`.
        inputs: the model's input argument (``"pixel_values"`` for a ViT, ``"input_ids"`` for text).
        labels: its label argument (``"labels"`` for Hugging Face classifiers).
    """

    def __init__(self, pool: ActivePool, inputs: str = "pixel_values", labels: str = "labels") -> None:
        self.pool, self.inputs, self.labels = pool, inputs, labels

    def __len__(self) -> int:
        return int(self.pool.labeled_mask.sum())

    def __getitem__(self, position: int) -> dict:
        x, y = self.pool[int(self.pool.labeled_indices[position])]
        return {self.inputs: x, self.labels: y}


class ActiveLearningCallback(RoundAtTrainingEnd, TrainerCallback):
    """When ``trainer.train()`` ends: select ``budget`` items with ``strategy`` on the trained
    model, record the query in the pool (with the strategy's class name) and, with an oracle,
    label it; the next ``train()`` on :class:`LabeledItems` then trains on the new labels.

    The pool's state goes into every checkpoint the Trainer saves (``torch_al_pool.pt`` in the
    ``checkpoint-N`` folder, beside the model and optimizer). To resume, restore it before training
    resumes — ``callback.restore(checkpoint)``, then ``trainer.train(resume_from_checkpoint=
    checkpoint)`` — and the run selects what an uninterrupted one does. The Trainer sizes its
    epochs from the dataset before any callback runs, so the pool cannot be swapped in later:
    resuming with a pool that is not the checkpoint's (or from a checkpoint without one) is an
    error, never a run on other labels. With ``state_path`` the pool is also saved there
    (atomically, by the main process) once the query is recorded, before the oracle is asked, and
    again after labelling; a saved query still pending is re-issued, not recomputed.

    Args:
        pool: the :class:`ActivePool` whose labeled items the trainer trains on.
        strategy: any :class:`Strategy` that scores one model (it gets the Trainer's model;
            outputs with a ``logits`` field are read there). Ensembles need E separately trained
            models and are refused.
        budget: items per round.
        oracle: ``oracle(indices) -> labels``; None leaves the query pending for annotators. A
            strategy that asks within its round (GALAXY, DIRECT) needs one.
        state_path: a pool state file to keep up to date, or None.
    """

    trainer = "a Trainer"

    def restore(self, checkpoint: str | os.PathLike) -> ActivePool:
        """Loads the pool's state saved in a Trainer ``checkpoint`` folder; call it before
        ``trainer.train(resume_from_checkpoint=checkpoint)``."""
        return self.pool.load(self._saved_pool(checkpoint))

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        if state.global_step == 0:
            return  # a fresh run: the pool is as the caller made it
        checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        saved = copy.copy(self.pool).load(self._saved_pool(checkpoint))
        if not _same_state(saved.state_dict(), self.pool.state_dict()):
            raise ValueError(
                f"ActiveLearningCallback: training resumes at step {state.global_step} with a pool that is not the one saved in {checkpoint} "
                f"({self.pool!r} here, {saved!r} there): call callback.restore(checkpoint) before trainer.train(resume_from_checkpoint=...)"
            )

    @staticmethod
    def _saved_pool(checkpoint: str | os.PathLike) -> str:
        saved = os.path.join(checkpoint, POOL_FILE)
        if not os.path.exists(saved):
            raise ValueError(f"ActiveLearningCallback: {saved} does not exist; resume from a checkpoint saved with this callback (the pool's labels travel in it)")
        return saved

    def on_save(self, args, state, control, **kwargs) -> None:
        if state.is_world_process_zero:
            self.pool.save(os.path.join(args.output_dir, f"checkpoint-{state.global_step}", POOL_FILE))

    def on_train_end(self, args, state, control, model=None, **kwargs) -> None:
        self.run_round(model, state.is_world_process_zero)
        logger.info("transformers: %r", self.pool)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key] for key in a)
