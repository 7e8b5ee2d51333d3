"""``python -m torch_al ...`` is the ``torch-al`` command."""

import sys

from torch_al.cli import main

sys.exit(main())
