"""A Lightning callback that runs one active-learning round at the end of ``fit``.

Needs ``pytorch_lightning`` (``pip install pytorch-lightning``); importing this module without it
raises an ImportError that says so.
"""

import logging

from torch_al.rounds import RoundAtTrainingEnd

try:
    import pytorch_lightning as pl
except ImportError as error:  # an optional dependency: say what to install
    raise ImportError("torch_al.integrations.lightning needs pytorch_lightning: pip install pytorch-lightning") from error

logger = logging.getLogger("torch_al")


class ActiveLearningCallback(RoundAtTrainingEnd, pl.Callback):
    """At the end of ``trainer.fit``: select ``budget`` items with ``strategy`` on the trained
    module, record the query in the pool (with the strategy's class name, ``pool.pending_strategy``),
    and (with an oracle) label it.

    The pool (and a learning strategy's state) is the callback's state, so every Lightning checkpoint carries it and
    ``trainer.fit(ckpt_path=...)`` restores it. With ``state_path`` the pool is also saved there
    (atomically, by global rank 0) once the query is recorded, before the oracle is asked, and
    again after labelling. A saved query that is still pending is re-issued, not recomputed. Under
    DDP every rank selects (strategies are deterministic), so the ranks' pools stay equal.

    Args:
        pool: the :class:`ActivePool` the training dataloader samples from.
        strategy: any :class:`Strategy` that scores one model; it is given the LightningModule
            as the model. The ensemble strategies (:class:`~torch_al.strategies.Ensemble`) need
            E separately trained members, which one ``fit`` does not make: they are refused here
            (use :class:`~torch_al.ActiveLearningLoop` with a :class:`~torch_al.strategies.Committee`).
            A strategy that learns beside the model (:class:`~torch_al.strategies.LearningLoss`)
            trains only if the LightningModule's ``training_step`` returns
            ``strategy.training_loss(self, x, y, self.current_epoch, self.trainer.max_epochs)`` and
            ``configure_optimizers`` adds ``strategy.extra_parameters(self, example_batch)``; its
            state travels in the callback's state with the pool's.
        budget: items per round.
        oracle: ``oracle(indices) -> labels``; None leaves the query pending for annotators. A
            strategy that asks within its round (GALAXY, DIRECT) needs one: the callback asks it
            every sub-batch of the round, saving each before it is asked.
        state_path: a pool state file to keep up to date, or None.
    """

    trainer = "a fit"

    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.run_round(pl_module, trainer.is_global_zero)
        logger.info("lightning: %r", self.pool)

    def state_dict(self) -> dict:
        return {**self.pool.state_dict(), **{f"strategy/{key}": value for key, value in self.strategy.state_dict().items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.pool.load_state_dict({key: value for key, value in state_dict.items() if not key.startswith("strategy/")})
        self.strategy.load_state_dict({key[9:]: value for key, value in state_dict.items() if key.startswith("strategy/")})
