"""Public names that moved still import from where they were, with a DeprecationWarning."""

import importlib
import sys

import pytest

import torch_al.checks


def test_torch_al_validation_is_torch_al_checks_with_a_warning():
    sys.modules.pop("torch_al.validation", None)
    with pytest.warns(DeprecationWarning, match="torch_al.validation is renamed torch_al.checks"):
        old = importlib.import_module("torch_al.validation")
    assert old.check_budget is torch_al.checks.check_budget
    assert old.LogitsCheck is torch_al.checks.LogitsCheck
