"""Deprecated name of :mod:`torch_al.checks` (input checks; ``validation=`` elsewhere means a held-out set)."""

import warnings

from torch_al.checks import *  # noqa: F401,F403

warnings.warn("torch_al.validation is renamed torch_al.checks", DeprecationWarning, stacklevel=2)
