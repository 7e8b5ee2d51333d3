"""Learning curves. matplotlib is imported when a plot is made; nothing is shown."""

from collections.abc import Mapping, Sequence


def learning_curve(
    results: Mapping[str, Sequence[Mapping] | Mapping[str, Sequence]],
    metric: str = "accuracy",
    title: str | None = None,
    band: str | tuple[str, str] | None = None,
):
    """Test metric against the number of labels, one line per strategy.

    Args:
        results: strategy name → its curve: per-round records with ``"labeled"`` and ``metric``
            keys (what :meth:`ActiveLearningLoop.run` returns), or a mapping of per-round lists
            under the same keys (a summary over seeds).
        metric: the key on the y axis.
        title: the plot title.
        band: drawn as a band around each line: a key of per-round half-widths (e.g. a std over
            seeds), or two keys of per-round lower and upper bounds (e.g. a 95% interval).

    Returns:
        A ``matplotlib.figure.Figure`` (save it with ``fig.savefig(path)``; never shown).
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    many = len(results) > 10
    figure = Figure(figsize=(8, 5) if many else (6, 4), layout="constrained")
    axes = figure.add_subplot()
    # tab20's strong shades, then its light ones: 20 colours, no two lines alike up to 20 lines.
    palette = colormaps["tab20"].colors[0::2] + colormaps["tab20"].colors[1::2] if many else colormaps["tab10"].colors
    for index, name in enumerate(results):
        curve = results[name]
        column = (lambda key: list(curve[key])) if isinstance(curve, Mapping) else (lambda key: [r[key] for r in curve])
        x, y = column("labeled"), column(metric)
        style = "-" if index < 10 else "--"  # a light shade of an earlier line's hue: dashed, to tell them apart
        (line,) = axes.plot(x, y, style, color=palette[index % len(palette)], marker="o", markersize=3, label=name)
        if band is not None:
            low, high = (column(band[0]), column(band[1])) if isinstance(band, tuple) else ([a - w for a, w in zip(y, column(band))], [a + w for a, w in zip(y, column(band))])
            axes.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
    axes.set_xlabel("labeled items")
    axes.set_ylabel(metric.replace("_", " "))
    axes.grid(alpha=0.3)
    if results:
        axes.legend(fontsize=7, ncols=2 if len(results) > 8 else 1)
    if title:
        axes.set_title(title, fontsize=10)
    return figure
