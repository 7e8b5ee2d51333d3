"""Learning curves. matplotlib is imported when a plot is made; nothing is shown."""

from collections.abc import Mapping, Sequence


def learning_curve(results: Mapping[str, Sequence[Mapping]], metric: str = "accuracy", title: str | None = None):
    """Test metric against the number of labels, one line per strategy.

    Args:
        results: strategy name → per-round records with ``"labeled"`` and ``metric`` keys (what
            :meth:`ActiveLearningLoop.run` returns).
        metric: the record key on the y axis.
        title: the plot title.

    Returns:
        A ``matplotlib.figure.Figure`` (save it with ``fig.savefig(path)``; never shown).
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    for name, records in results.items():
        axes.plot([r["labeled"] for r in records], [r[metric] for r in records], marker="o", label=name)
    axes.set_xlabel("labeled items")
    axes.set_ylabel(metric.replace("_", " "))
    axes.grid(alpha=0.3)
    if results:
        axes.legend()
    if title:
        axes.set_title(title, fontsize=10)
    return figure
