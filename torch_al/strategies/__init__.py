"""Selection strategies: ``strategy.select(model, pool, budget) -> LongTensor`` of global indices."""

from collections.abc import Callable

from torch_al.pseudo_labeled_pool import PseudoLabelSet
from torch_al.strategies.base import ItemScoreStrategy, ScoreStrategy, SelectionCost, Strategy, SubBatch, predict_probabilities
from torch_al.strategies.bayesian.batchbald import BatchBALD, batchbald_select
from torch_al.strategies.bayesian.mc_dropout import BALD, MaxEntropy, MonteCarloDropout, VariationRatio
from torch_al.strategies.committees.ensembles import Committee, Ensemble, EnsembleBALD, EnsembleEntropy, EnsembleVariationRatio, VoteEntropy
from torch_al.strategies.distribution_matching.fisher_kernel import EBA, PCC, PFK
from torch_al.strategies.distribution_matching.matching import DistributionMatching
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
from torch_al.strategies.learned.learning_loss import LearningLoss, LossPredictionModule, pairwise_ranking_loss
from torch_al.strategies.low_budget.features import FeatureStrategy
from torch_al.strategies.low_budget.maxherding import MaxHerding
from torch_al.strategies.low_budget.probcover import ProbCover
from torch_al.strategies.low_budget.typiclust import TypiClust
from torch_al.strategies.low_budget.uherding import UHerding
from torch_al.strategies.random_sampling import Random
from torch_al.strategies.registry import REGISTRY, SHARED_OPTIONS, StrategySpec, make_strategy, strategy_class, strategy_spec
from torch_al.strategies.staged import PFKThenDIRECT, Staged
from torch_al.strategies.uncertainty.ceal import CEAL, ceal_pseudo_labels
from torch_al.strategies.uncertainty.emoc import EMOC
from torch_al.strategies.uncertainty.uncertainty_sampling import Entropy, LeastConfidence, Margin
from torch_al.strategies.within_round import AsksWithinRound, RoundLabels

# A name → class view of the registry, for code that only needs the classes.
STRATEGIES: dict[str, Callable[..., Strategy]] = {name: spec.factory for name, spec in REGISTRY.items()}


__all__ = [
    "AsksWithinRound",
    "BADGE",
    "BALD",
    "BGADL",
    "BatchBALD",
    "CEAL",
    "ClassBalanced",
    "DIRECT",
    "EBA",
    "EMOC",
    "GALAXY",
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
    "FeatureStrategy",
    "LearningLoss",
    "LeastConfidence",
    "LossPredictionModule",
    "M2VAAL",
    "MaxHerding",
    "Margin",
    "MaxEntropy",
    "MonteCarloDropout",
    "PFKThenDIRECT",
    "ProbCover",
    "PseudoLabelSet",
    "REGISTRY",
    "RoundLabels",
    "Random",
    "ScoreStrategy",
    "SelectionCost",
    "Staged",
    "Strategy",
    "StrategySpec",
    "SubBatch",
    "SuggestiveAnnotation",
    "TypiClust",
    "UHerding",
    "VAAL",
    "VariationRatio",
    "VoteEntropy",
    "batchbald_select",
    "ceal_pseudo_labels",
    "make_strategy",
    "pairwise_ranking_loss",
    "predict_probabilities",
    "strategy_class",
    "strategy_spec",
]
