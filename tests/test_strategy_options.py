"""Options reach the strategies that declare them: the experiment's routing, make_strategy's
checks, the CLI's validation options, and the shared number check behind the constructors."""

import inspect

import pytest

from torch_al.checks import check_real
from torch_al.cli import main
from torch_al.experiment import RunConfig, is_ensemble, strategy_options
from torch_al.strategies import REGISTRY, STRATEGIES, Ensemble, MonteCarloDropout, make_strategy, strategy_class


def test_every_routed_option_is_a_parameter_of_every_strategy_it_reaches():
    config = RunConfig()
    for name in STRATEGIES:
        accepted = inspect.signature(STRATEGIES[name]).parameters
        options = strategy_options(config, name)
        assert set(options) <= set(accepted), name
        for field, parameter in REGISTRY[name].run_options.items():
            assert options[parameter] == getattr(config, field), (name, field)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dal", {"sub_queries"}),  # not EBA's steps, although DAL trains in steps too
        ("eba", {"steps", "k", "layers", "tokens"}),
        ("pfk-sum-match", {"k", "layers", "tokens"}),
        ("bgadl", {"passes", "generator_iterations"}),
        ("m2-anchor-distance", {"iterations"}),
        ("learning-loss", {"layers", "tokens"}),
        ("ensemble-bald", set()),
        ("pfk+rotation", {"k", "layers", "tokens"}),
    ],
)
def test_strategy_options_by_name(name, expected):
    assert set(strategy_options(RunConfig(), name)) == expected


def test_the_registry_knows_each_strategy_kind():
    """Committee and validation-matching flags agree with the classes behind the names; a routed
    option reaches exactly the classes that take it (every MC-dropout rule its passes)."""
    for name, spec in REGISTRY.items():
        assert spec.committee == issubclass(spec.strategy_class, Ensemble) == is_ensemble(name), name
        takes = inspect.signature(spec.factory).parameters
        assert spec.matches_validation == ("k" in takes and "layers" in takes), name
        assert ("passes" in spec.run_options) == issubclass(spec.strategy_class, MonteCarloDropout), name


def test_make_strategy_rejects_an_option_the_strategy_does_not_take():
    with pytest.raises(TypeError, match="strategy 'dal' takes no option 'iterations', 'steps'; its options: sub_queries"):
        make_strategy("dal", steps=8, iterations=3, seed=0)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        make_strategy("nope")
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        strategy_class("nope")
    strategy = make_strategy("entropy", seed=1, validation=None, progress=False)  # shared options it lacks are dropped
    assert strategy_class("entropy") is type(strategy)


def test_select_rejects_validation_options_for_a_strategy_that_does_not_match(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["select", "--state", str(tmp_path / "p.pt"), "--data", "x.pt", "--model", "m.pt2", "--budget", "2",
              "--strategy", "entropy", "--layers", "act1"])  # fmt: skip
    assert "--validation, --layers and --tokens are options of pcc/pfk/eba; strategy entropy takes none of them" in capsys.readouterr().err


@pytest.mark.parametrize(
    "value, bounds, error, message",
    [
        (True, {}, TypeError, "rate must be a float, got True"),
        ("1", {}, TypeError, r"rate must be a float, got '1' \(str\)"),
        (float("nan"), {}, ValueError, "rate must be a finite float, got nan"),
        (float("inf"), {"at_least": 0}, ValueError, "rate must be a finite float >= 0, got inf"),
        (-0.5, {"at_least": 0}, ValueError, "rate must be a finite float >= 0, got -0.5"),
        (0, {"above": 0}, ValueError, "rate must be a finite float > 0, got 0"),
        (1.5, {"above": 0, "at_most": 1}, ValueError, "rate must be a finite float > 0 and <= 1, got 1.5"),
    ],
)
def test_check_real_names_the_bounds_it_wanted(value, bounds, error, message):
    with pytest.raises(error, match=message):
        check_real(value, "rate", **bounds)


@pytest.mark.parametrize("value, bounds", [(-3, {}), (0, {"at_least": 0}), (1e-9, {"above": 0}), (1, {"above": 0, "at_most": 1})])
def test_check_real_returns_a_float_inside_the_bounds(value, bounds):
    result = check_real(value, "rate", **bounds)
    assert isinstance(result, float) and result == value
