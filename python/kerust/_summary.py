"""``model.summary()`` as Keras 3 prints it (box-drawn table, totals with sizes), plus an HTML form."""

from __future__ import annotations

import html
from typing import Any, List, Tuple

_WIDTHS = (33, 24, 15)


def _rows(model: Any) -> List[Tuple[str, str, str]]:
    if model._core is None:
        return [(f"{layer.name} ({layer.class_name})", "?", "0 (unbuilt)") for layer in model._layers]
    rows = []
    for name, cls, shape, params, _ in model._core.layer_info():
        rows.append((f"{name} ({cls})", str((None, *shape)).replace("None,)", "None)"), f"{params:,}"))
    return rows


def _size(n_params: int) -> str:
    size = n_params * 4.0
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def _totals(model: Any) -> Tuple[int, int]:
    if model._core is None:
        return 0, 0
    info = model._core.layer_info()
    return sum(i[3] for i in info), sum(i[4] for i in info)


def _cell(text: str, width: int, right: bool = False) -> str:
    text = text if len(text) <= width - 2 else text[: width - 3] + "…"
    return " " + (text.rjust(width - 2) if right else text.ljust(width - 2)) + " "


def render_summary(model: Any) -> str:
    w = _WIDTHS
    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "┳".join("━" * n for n in w) + "┓")
    lines.append("┃" + _cell("Layer (type)", w[0]) + "┃" + _cell("Output Shape", w[1]) + "┃"
                 + _cell("Param #", w[2], right=True) + "┃")
    lines.append("┡" + "╇".join("━" * n for n in w) + "┩")
    rows = _rows(model)
    for i, (a, b, c) in enumerate(rows):
        lines.append("│" + _cell(a, w[0]) + "│" + _cell(b, w[1]) + "│" + _cell(c, w[2], right=True) + "│")
        if i + 1 < len(rows):
            lines.append("├" + "┼".join("─" * n for n in w) + "┤")
    lines.append("└" + "┴".join("─" * n for n in w) + "┘")
    total, trainable = _totals(model)
    lines.append(f" Total params: {total:,} ({_size(total)})")
    lines.append(f" Trainable params: {trainable:,} ({_size(trainable)})")
    lines.append(f" Non-trainable params: {total - trainable:,} ({_size(total - trainable)})")
    return "\n".join(lines)


def render_summary_html(model: Any) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td style='text-align:right'>{c}</td></tr>"
        for a, b, c in _rows(model)
    )
    total, trainable = _totals(model)
    return (
        f"<div><b>Model: \"{html.escape(model.name)}\"</b><table>"
        "<thead><tr><th>Layer (type)</th><th>Output Shape</th><th>Param #</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        f"<p>Total params: {total:,} ({_size(total)})<br>Trainable params: {trainable:,} ({_size(trainable)})<br>"
        f"Non-trainable params: {total - trainable:,} ({_size(total - trainable)})</p></div>"
    )
