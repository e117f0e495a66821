"""How large a figure's text is where the documentation shows it.

A figure saved at ``dpi`` is ``width_in * dpi`` pixels wide; the documentation
site shows it in a text column about 900 pixels wide, shrunk to fit when it is
wider (never enlarged). :func:`text_heights` draws a figure and measures, at
that displayed scale, the height of every tick label, axis label, legend
entry and title: the height of the text's line box (ascent plus descent of
its font, the same for any string of one font size; a mathtext label such as
``10^{-2}`` is measured over its whole box). :data:`MIN_TEXT_PX` is the
criterion the figures are held to: 8 pixels, below which digits blur.

Only the figure object is needed, so the check does not depend on where the
figures are registered.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SHOWN_WIDTH_PX = 900  # the text column of the documentation's results pages
MIN_TEXT_PX = 8.0


def display_scale(fig: Figure, *, dpi: float = 130, shown_width_px: float = SHOWN_WIDTH_PX
                  ) -> float:
    """How much the PNG saved at ``dpi`` is shrunk to fit ``shown_width_px`` (at most 1)."""
    native = fig.get_figwidth() * dpi
    return min(1.0, shown_width_px / native)


def _texts(fig: Figure):
    """(kind, Text) for every text a reader must read: ticks, labels, legends, titles."""
    if fig.get_suptitle():
        yield "suptitle", fig._suptitle
    for legend in fig.legends:
        yield from (("legend", t) for t in legend.get_texts())
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for kind, axis in (("x tick label", ax.xaxis), ("y tick label", ax.yaxis)):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for label in (tick.label1, tick.label2):
                    yield kind, label
        yield "x label", ax.xaxis.label
        yield "y label", ax.yaxis.label
        for title in (ax.title, ax._left_title, ax._right_title):
            yield "title", title
        if ax.get_legend() is not None:
            yield from (("legend", t) for t in ax.get_legend().get_texts())
        yield from (("text", t) for t in ax.texts)


def text_heights(fig: Figure, *, dpi: float = 130,
                 shown_width_px: float = SHOWN_WIDTH_PX) -> pd.DataFrame:
    """Every visible text of ``fig`` and its height in pixels as displayed.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : float
        The resolution the figure is saved at (``plots.save_figure``'s 130).
    shown_width_px : float
        The width of the column the PNG is shown in; a wider PNG is shrunk.

    Returns
    -------
    DataFrame
        One row per text: ``kind`` ("x tick label", "legend", ...), ``text``,
        ``fontsize_pt``, ``height_px`` (line-box height per line, as
        displayed), sorted by ``height_px``.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    original_dpi = fig.dpi
    fig.set_dpi(dpi)
    try:
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        scale = display_scale(fig, dpi=dpi, shown_width_px=shown_width_px)
        rows = []
        for kind, text in _texts(fig):
            string = text.get_text()
            if not string.strip() or not text.get_visible():
                continue
            extent = text.get_window_extent(renderer)
            if extent.width <= 0 or extent.height <= 0:
                continue
            lines = string.count("\n") + 1
            rows.append({"kind": kind, "text": string, "fontsize_pt": text.get_fontsize(),
                         "height_px": extent.height / lines * scale})
    finally:
        fig.set_dpi(original_dpi)
    table = pd.DataFrame(rows, columns=["kind", "text", "fontsize_pt", "height_px"])
    return table.sort_values("height_px", kind="stable").reset_index(drop=True)


def smallest_text(fig: Figure, **kwargs) -> pd.Series:
    """The row of :func:`text_heights` with the smallest displayed height."""
    table = text_heights(fig, **kwargs)
    if table.empty:
        raise ValueError("the figure has no visible text")
    return table.iloc[0]
