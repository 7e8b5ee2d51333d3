"""A labeling page in the browser for a pool's pending query (``torch-al annotate``).

>>> server = LabelingServer(LabelingSession(pool, "pool.pt"))  # doctest: +SKIP
>>> print(server.url); server.serve_forever()                     # doctest: +SKIP
"""

from torch_al.labeling_page.server import LabelingServer
from torch_al.labeling_page.session import AnswerRefused, LabelingSession

__all__ = ["AnswerRefused", "LabelingServer", "LabelingSession"]
