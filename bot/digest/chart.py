"""The digest's 14-day chart: enrolments and completed lessons per day, as a PNG.

matplotlib draws on its Agg canvas through the object API (no pyplot, so no display, no
global figure state, safe in a worker thread). Rendering takes ~100 ms of CPU: callers run
it with `asyncio.to_thread` so the event loop keeps answering Slack meanwhile.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date


def render_chart(days: Sequence[date], enrolments: Sequence[int], completions: Sequence[int], *,
                 completions_label: str = "Lessons completed") -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    positions = list(range(len(days)))
    width = 0.4
    axes.bar([p - width / 2 for p in positions], enrolments, width, label="New enrolments", color="#2b8cbe")
    axes.bar([p + width / 2 for p in positions], completions, width, label=completions_label, color="#31a354")
    axes.set_xticks(positions)
    axes.set_xticklabels([f"{d:%a}\n{d.day}" for d in days], fontsize=8)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize=8)
    if days:
        axes.set_title(f"{days[0]:%d %b} – {days[-1]:%d %b}", fontsize=9, loc="right", pad=6)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
