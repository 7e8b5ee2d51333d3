"""Every strategy name and what the library knows about it, in one place: ``make_strategy``, the
CLI and the experiment read it. A new strategy is its own module (its rule, and its form over ranks
as ``query_over_ranks``) plus one entry here."""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from torch_al.strategies.base import Strategy
from torch_al.strategies.bayesian.batchbald import BatchBALD
from torch_al.strategies.bayesian.mc_dropout import BALD, MaxEntropy, VariationRatio
from torch_al.strategies.committees.ensembles import EnsembleBALD, EnsembleEntropy, EnsembleVariationRatio, VoteEntropy
from torch_al.strategies.distribution_matching.fisher_kernel import EBA, PCC, PFK
from torch_al.strategies.distribution_matching.matching import COMBINES, ESTIMATORS
from torch_al.strategies.diversity.badge import BADGE
from torch_al.strategies.diversity.coreset import CoreSet
from torch_al.strategies.diversity.suggestive import SuggestiveAnnotation
from torch_al.strategies.generative.bgadl import BGADL
from torch_al.strategies.generative.m2_vaal import M2VAAL
from torch_al.strategies.generative.vaal import VAAL
from torch_al.strategies.imbalance.class_balanced import ClassBalanced
from torch_al.strategies.imbalance.direct import DIRECT
from torch_al.strategies.imbalance.galaxy import GALAXY
from torch_al.strategies.learned.discriminative import DiscriminativeAL
from torch_al.strategies.learned.learning_loss import LearningLoss
from torch_al.strategies.low_budget.maxherding import MaxHerding
from torch_al.strategies.low_budget.probcover import ProbCover
from torch_al.strategies.low_budget.typiclust import TypiClust
from torch_al.strategies.low_budget.uherding import UHerding
from torch_al.strategies.random_sampling import Random
from torch_al.strategies.staged import PFKThenDIRECT
from torch_al.strategies.uncertainty.ceal import CEAL
from torch_al.strategies.uncertainty.emoc import EMOC
from torch_al.strategies.uncertainty.uncertainty_sampling import Entropy, LeastConfidence, Margin


@dataclass(frozen=True)
class StrategySpec:
    """What a strategy name stands for.

    Attributes:
        factory: builds the strategy from its options (a class, or a class with options bound).
        run_options: the ``torch-al run`` / :class:`~torch_al.experiment.RunConfig` fields the
            strategy takes, each mapped to its constructor parameter: an option reaches only the
            strategies that name it, so a parameter that merely shares a field's name (DAL's
            discriminator steps, EBA's integrated-gradient steps) can never capture it.
        committee: scores a committee of separately trained models (``--members``), not one model.
        matches_validation: needs a labeled validation set and descriptor layers (``--validation``,
            ``--layers``).
    """

    factory: Callable[..., Strategy]
    run_options: Mapping[str, str] = field(default_factory=dict)
    committee: bool = False
    matches_validation: bool = False

    @property
    def strategy_class(self) -> type[Strategy]:
        return self.factory.func if isinstance(self.factory, partial) else self.factory


_MC_DROPOUT = {"passes": "passes"}
_MATCHING = {"k": "k", "layers": "layers", "tokens": "tokens"}
_VAAL = {"vaal_iterations": "iterations"}
_ESTIMATOR_NAMES = {"argmax": "argmax", "validation_match": "match", "true": "true", "trace_cov": "trace", "mutual_info": "mi"}


def _matching(factory: Callable[..., Strategy], **more: str) -> StrategySpec:
    return StrategySpec(factory, {**_MATCHING, **more}, matches_validation=True)


REGISTRY: dict[str, StrategySpec] = {
    "random": StrategySpec(Random),
    "entropy": StrategySpec(Entropy),
    "margin": StrategySpec(Margin),
    "least-confidence": StrategySpec(LeastConfidence),
    "ceal": StrategySpec(CEAL, {"delta0": "delta0", "decay": "decay"}),
    "emoc": StrategySpec(EMOC),
    "coreset": StrategySpec(CoreSet),
    "badge": StrategySpec(BADGE),
    "suggestive": StrategySpec(SuggestiveAnnotation),
    "learning-loss": StrategySpec(LearningLoss, {"layers": "layers", "tokens": "tokens"}),
    "dal": StrategySpec(DiscriminativeAL, {"sub_queries": "sub_queries"}),
    "max-entropy": StrategySpec(MaxEntropy, _MC_DROPOUT),
    "bald": StrategySpec(BALD, _MC_DROPOUT),
    "batchbald": StrategySpec(BatchBALD, {**_MC_DROPOUT, "shortlist": "shortlist"}),
    "variation-ratio": StrategySpec(VariationRatio, _MC_DROPOUT),
    "ensemble-entropy": StrategySpec(EnsembleEntropy, committee=True),
    "ensemble-bald": StrategySpec(EnsembleBALD, committee=True),
    "ensemble-variation-ratio": StrategySpec(EnsembleVariationRatio, committee=True),
    "qbc-vote-entropy": StrategySpec(VoteEntropy, committee=True),
    "vaal": StrategySpec(VAAL, _VAAL),
    "bgadl": StrategySpec(BGADL, {**_MC_DROPOUT, "generator_iterations": "generator_iterations"}),
    "m2-vaal": StrategySpec(M2VAAL, _VAAL),
    "m2-anchor-distance": StrategySpec(partial(M2VAAL, rule="anchor-distance"), _VAAL),
    "m2-confidence-distance": StrategySpec(partial(M2VAAL, rule="confidence-distance"), _VAAL),
    "balanced-entropy": StrategySpec(ClassBalanced),
    "balanced-margin": StrategySpec(partial(ClassBalanced, criterion="margin")),
    "typiclust": StrategySpec(TypiClust),
    "probcover": StrategySpec(ProbCover),
    "maxherding": StrategySpec(MaxHerding),
    "uherding": StrategySpec(UHerding),
    "galaxy": StrategySpec(GALAXY),
    "direct": StrategySpec(DIRECT, {"annotators": "annotators"}),
    "pfk-direct": _matching(PFKThenDIRECT, annotators="annotators"),
    "pcc": _matching(PCC),
    "eba": _matching(EBA, steps="steps"),
    "pfk": _matching(PFK),
    # Every kernel form with every pseudo-label estimator, e.g. "pfk-sum-match", for the ablations.
    **{
        f"pfk-{combine}-{_ESTIMATOR_NAMES[estimator]}": _matching(partial(PFK, combine=combine, estimator=estimator))
        for combine in COMBINES
        for estimator in ESTIMATORS
    },
}

SHARED_OPTIONS = ("seed", "batch_size", "progress", "validation")


def strategy_spec(name: str) -> StrategySpec:
    """The :class:`StrategySpec` of a CLI name; a ValueError lists the names for an unknown one."""
    if name not in REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def strategy_class(name: str) -> type[Strategy]:
    """The class behind a CLI name (``"pfk-sum-match"`` → :class:`PFK`)."""
    return strategy_spec(name).strategy_class


def make_strategy(name: str, **options) -> Strategy:
    """A strategy by its CLI name (``REGISTRY``). The shared options (``SHARED_OPTIONS``) go to
    the constructors that take them, so one call site serves every strategy; any other option the
    constructor does not take is an error, never silently dropped."""
    factory = strategy_spec(name).factory
    accepted = inspect.signature(factory).parameters
    unknown = sorted(key for key in options if key not in accepted and key not in SHARED_OPTIONS)
    if unknown:
        raise TypeError(f"strategy {name!r} takes no option {', '.join(map(repr, unknown))}; its options: {', '.join(accepted)}")
    return factory(**{key: value for key, value in options.items() if key in accepted})
