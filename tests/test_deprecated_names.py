"""Public names that moved still import from where they were, with a DeprecationWarning."""

import importlib
import sys

import pytest
import torch

import torch_al
import torch_al.checks
import torch_al.strategies


def test_torch_al_validation_is_torch_al_checks_with_a_warning():
    sys.modules.pop("torch_al.validation", None)
    with pytest.warns(DeprecationWarning, match="torch_al.validation is renamed torch_al.checks"):
        old = importlib.import_module("torch_al.validation")
    assert old.check_budget is torch_al.checks.check_budget
    assert old.LogitsCheck is torch_al.checks.LogitsCheck


def _pool_of(n: int = 6):
    return torch_al.ActivePool(torch.utils.data.TensorDataset(torch.randn(n, 2), torch.arange(n) % 2))


def test_a_strategy_written_for_the_old_hook_name_still_selects_with_a_warning():
    with pytest.warns(DeprecationWarning, match="hook rank is renamed query"):

        class Newest(torch_al.strategies.ItemScoreStrategy):
            def rank(self, model, pool, budget):  # the old name, calling the base class's by it
                return super().rank(model, pool, budget)

            def item_scores(self, model, pool, rows):
                return rows.double()

    with pytest.warns(DeprecationWarning, match="Strategy.rank is renamed Strategy.query"):
        picked = Newest().select(None, _pool_of(), 2)
    assert picked.tolist() == [5, 4]


def test_the_old_hook_names_answer_for_a_new_strategy():
    strategy = torch_al.strategies.Random(seed=3)
    pool = _pool_of()
    with pytest.warns(DeprecationWarning, match="Strategy.rank is renamed Strategy.query"):
        old = strategy.rank(None, pool, 3)
    assert torch.equal(old[0], strategy.query(None, pool, 3)[0])
    assert torch_al.strategies.Random.rank_over_ranks.__doc__ == "Deprecated name of :meth:`query_over_ranks`."
