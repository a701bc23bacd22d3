"""plot_history: the curves of a fit, one panel per metric, as the tutorials draw them.

Needs matplotlib (``pip install matplotlib``, or the ``plot`` extra). It draws
on its own Figure (not pyplot's current one), so it works without a display
and leaves the user's pyplot state alone.

Example::

    >>> history = model.fit(x, y, epochs=5, validation_split=0.1)
    >>> from minicnn.utils import plot_history
    >>> plot_history(history, to_file='history.png')
"""
import os

MATPLOTLIB_MESSAGE = ("You must install matplotlib (`pip install matplotlib`, or "
                      "`pip install 'minicnn[plot]'`) for `plot_history` to work.")


def _series(history):
    """({name: 1-based epochs}, {name: values}) from a History or its ``history`` dict."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError("plot_history: expected the History that fit returns (or its .history dict). "
                        f"Received: {type(history).__name__}")
    series = {}
    for name, values in logs.items():
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            raise TypeError(f"plot_history: history[{name!r}] must be a list of numbers, one per epoch. "
                            f"Received: {values!r}") from None
        series[name] = values
    if not any(series.values()):
        raise ValueError("plot_history: the history has no epochs to plot (did fit run?). "
                         f"Received keys: {list(series)}")
    epochs = {}
    for name, values in series.items():
        logged = history.epochs_of(name) if hasattr(history, "epochs_of") else []
        epochs[name] = [e + 1 for e in logged] if len(logged) == len(values) else list(range(1, len(values) + 1))
    return epochs, series


def _panels(series):
    """[(title, [names])]: each metric with its val_ twin, 'loss' first."""
    bases = [n for n in series if not n.startswith("val_")]
    bases += [n[4:] for n in series if n.startswith("val_") and n[4:] not in series]
    bases.sort(key=lambda n: n != "loss")
    return [(base, [n for n in (base, "val_" + base) if n in series]) for base in bases]


def plot_history(history, to_file=None):
    """Plot each metric of a fit per epoch (``loss``, ``accuracy``, ... with their
    ``val_`` curves) and return the matplotlib Figure.

    ``to_file``: also save it there (the format from the extension: .png,
    .svg, .pdf; written atomically). Epochs are counted from 1, each value at
    the epoch the History logged it in (a resumed fit starts where it resumed;
    with ``validation_freq`` the val_ points sit at the validated epochs); a
    plain dict's lists are drawn at epochs 1, 2, ...

    Example: ``plot_history(model.fit(x, y, epochs=5, validation_split=0.1), 'history.png')``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MATPLOTLIB_MESSAGE) from None
    epochs, series = _series(history)
    panels = _panels(series)
    figure = Figure(figsize=(5 * len(panels), 4), constrained_layout=True)
    FigureCanvasAgg(figure)  # draws without a display, whatever pyplot's backend is
    for axes, (title, names) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for name in names:  # each at the epochs it was logged in (validation_freq > 1 skips some)
            axes.plot(epochs[name], series[name], marker="o",
                      label="validation" if name.startswith("val_") else "training")
        axes.set_title(f"model {title}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(title)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend()
    if to_file is not None:
        _save(figure, to_file)
    return figure


def _save(figure, to_file):
    import io
    from ..models.saving import atomic_write  # late: minicnn.models imports minicnn.utils
    to_file = os.fsdecode(os.fspath(to_file))
    buffer = io.BytesIO()
    figure.savefig(buffer, format=os.path.splitext(to_file)[1][1:] or "png")
    atomic_write(to_file, lambda f: f.write(buffer.getvalue()), "plot_history")
