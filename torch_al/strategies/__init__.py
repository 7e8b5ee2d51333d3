"""Selection strategies: ``strategy.select(model, pool, budget) -> LongTensor`` of global indices."""

import inspect
from collections.abc import Callable
from functools import partial

from torch_al.pseudo_labeled_pool import PseudoLabelSet
from torch_al.strategies.base import ItemScoreStrategy, ScoreStrategy, SelectionCost, Strategy, predict_probabilities
from torch_al.strategies.bayesian.batchbald import BatchBALD, batchbald_select
from torch_al.strategies.bayesian.mc_dropout import BALD, MaxEntropy, MonteCarloDropout, VariationRatio
from torch_al.strategies.committees.ensembles import Committee, Ensemble, EnsembleBALD, EnsembleEntropy, EnsembleVariationRatio, VoteEntropy
from torch_al.strategies.distribution_matching.fisher_kernel import EBA, PCC, PFK
from torch_al.strategies.distribution_matching.matching import COMBINES, ESTIMATORS, DistributionMatching
from torch_al.strategies.learned.learning_loss import LearningLoss, LossPredictionModule, pairwise_ranking_loss
from torch_al.strategies.diversity.badge import BADGE
from torch_al.strategies.diversity.coreset import CoreSet
from torch_al.strategies.diversity.suggestive import SuggestiveAnnotation
from torch_al.strategies.generative.bgadl import BGADL
from torch_al.strategies.generative.m2_vaal import M2VAAL
from torch_al.strategies.generative.vaal import VAAL
from torch_al.strategies.learned.discriminative import DiscriminativeAL
from torch_al.strategies.random_sampling import Random
from torch_al.strategies.uncertainty.ceal import CEAL, ceal_pseudo_labels
from torch_al.strategies.uncertainty.emoc import EMOC
from torch_al.strategies.uncertainty.uncertainty_sampling import Entropy, LeastConfidence, Margin

_ESTIMATOR_NAMES = {"argmax": "argmax", "validation_match": "match", "true": "true", "trace_cov": "trace", "mutual_info": "mi"}

STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "random": Random,
    "entropy": Entropy,
    "margin": Margin,
    "least-confidence": LeastConfidence,
    "ceal": CEAL,
    "emoc": EMOC,
    "coreset": CoreSet,
    "badge": BADGE,
    "suggestive": SuggestiveAnnotation,
    "learning-loss": LearningLoss,
    "dal": DiscriminativeAL,
    "max-entropy": MaxEntropy,
    "bald": BALD,
    "batchbald": BatchBALD,
    "variation-ratio": VariationRatio,
    "ensemble-entropy": EnsembleEntropy,
    "ensemble-bald": EnsembleBALD,
    "ensemble-variation-ratio": EnsembleVariationRatio,
    "qbc-vote-entropy": VoteEntropy,
    "vaal": VAAL,
    "bgadl": BGADL,
    "m2-vaal": M2VAAL,
    "m2-anchor-distance": partial(M2VAAL, rule="anchor-distance"),
    "m2-confidence-distance": partial(M2VAAL, rule="confidence-distance"),
    "pcc": PCC,
    "eba": EBA,
    "pfk": PFK,
    # Every kernel form with every pseudo-label estimator, e.g. "pfk-sum-match", for the ablations.
    **{
        f"pfk-{combine}-{_ESTIMATOR_NAMES[estimator]}": partial(PFK, combine=combine, estimator=estimator)
        for combine in COMBINES
        for estimator in ESTIMATORS
    },
}


SHARED_OPTIONS = ("seed", "batch_size", "progress", "validation")


def _factory(name: str) -> Callable[..., Strategy]:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def strategy_class(name: str) -> type[Strategy]:
    """The class behind a CLI name (``"pfk-sum-match"`` → :class:`PFK`)."""
    factory = _factory(name)
    return factory.func if isinstance(factory, partial) else factory


def make_strategy(name: str, **options) -> Strategy:
    """A strategy by its CLI name (``STRATEGIES``). The shared options (``SHARED_OPTIONS``) go to
    the constructors that take them, so one call site serves every strategy; any other option the
    constructor does not take is an error, never silently dropped."""
    factory = _factory(name)
    accepted = inspect.signature(factory).parameters
    unknown = sorted(key for key in options if key not in accepted and key not in SHARED_OPTIONS)
    if unknown:
        raise TypeError(f"strategy {name!r} takes no option {', '.join(map(repr, unknown))}; its options: {', '.join(accepted)}")
    return factory(**{key: value for key, value in options.items() if key in accepted})


__all__ = [
    "BADGE",
    "BALD",
    "BGADL",
    "BatchBALD",
    "CEAL",
    "EBA",
    "EMOC",
    "ItemScoreStrategy",
    "PCC",
    "PFK",
    "SHARED_OPTIONS",
    "STRATEGIES",
    "Committee",
    "CoreSet",
    "DiscriminativeAL",
    "DistributionMatching",
    "Ensemble",
    "EnsembleBALD",
    "EnsembleEntropy",
    "EnsembleVariationRatio",
    "Entropy",
    "LearningLoss",
    "LeastConfidence",
    "LossPredictionModule",
    "M2VAAL",
    "Margin",
    "MaxEntropy",
    "MonteCarloDropout",
    "PseudoLabelSet",
    "Random",
    "ScoreStrategy",
    "SelectionCost",
    "Strategy",
    "SuggestiveAnnotation",
    "VAAL",
    "VariationRatio",
    "VoteEntropy",
    "batchbald_select",
    "ceal_pseudo_labels",
    "make_strategy",
    "pairwise_ranking_loss",
    "predict_probabilities",
    "strategy_class",
]
