"""``model.summary()`` as Keras 3 prints it (box-drawn table, cells wrapped at spaces, totals with sizes), plus an
HTML form. Functional models get Keras's "Connected to" column; ``expand_nested`` lists the layers of nested
models under theirs (``└ name``), ``show_trainable`` adds the "Trainable" column (Y / N, ``-`` for no weights)."""

from __future__ import annotations

import html
from typing import Any, List, Optional, Tuple

# Keras's column widths: Sequential, functional, and with the "Trainable" column.
_WIDTHS = {(False, False): (33, 24, 15), (True, False): (21, 19, 12, 19), (False, True): (29, 23, 12, 7),
           (True, True): (19, 17, 11, 16, 7)}

Row = Tuple[str, ...]


def _shape_text(shape: Any) -> str:
    return str(tuple(shape)).replace("None,)", "None)")


def _connected(model: Any, layer: Any, keys: dict) -> str:
    """``name[node][tensor]`` of every input of every call of `layer` in `model` ("-" for an InputLayer); `keys` is
    `model._node_key()`."""
    if getattr(layer, "_is_input_layer", False):
        return "-"
    own = model._node_ids()
    parts = []
    for node in layer._inbound_nodes:
        if id(node) not in own:
            continue
        for t in node.call_tensors:
            name, index, tensor = model._history_of(t, keys)
            parts.append(f"{name}[{index}][{tensor}]")
    return ", ".join(parts) if parts else "-"


def _sequential_like(model: Any) -> bool:
    """Keras's test for a "Connected to" column: a functional model whose graph is a chain (one node per
    depth, each with at most one input, no layer called twice) prints like a Sequential one."""
    nodes = [n for n in model._nodes if not getattr(n.operation, "_derived", False)]  # no mask ops
    if any(len(n.call_tensors) > 1 for n in nodes):
        return False
    ids = [id(n.operation) for n in nodes]
    if len(set(ids)) != len(ids) or len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    # a chain: each node reads the previous node's output (the first reads the input)
    prev = model.inputs[0]
    for n in nodes:
        if n.call_tensors[0] is not prev or len(n.outputs) != 1:
            return False
        prev = n.outputs[0]
    return prev is model.outputs[0]


def _trainable_mark(layer: Any, params: int) -> str:
    if params == 0:
        return "-"
    return "Y" if layer.trainable else "N"


def _layer_stats(model: Any, layer: Any, info: list) -> Tuple[str, int]:
    """(output shape text, parameter count) of a layer or nested model inside the built top-level `model`; `info`
    is its engine's `layer_info()`."""
    from .models import Model

    if getattr(layer, "_is_input_layer", False):
        return _shape_text(layer.shape), 0
    if isinstance(layer, Model):
        shape = layer.outputs[0].shape if layer.outputs else ("?",)
        return _shape_text(shape), sum(_layer_stats(model, sub, info)[1] for sub in layer.layers)
    from ._custom import is_custom

    if is_custom(layer):  # its output at its first call; its own variables and its sublayers' weights
        outs = layer._inbound_nodes[0].outputs if layer._inbound_nodes else []
        shape = outs[0].shape if len(outs) == 1 else tuple(t.shape for t in outs) if outs else ("?",)
        return _shape_text(shape), int(sum(w.size for w in layer.get_weights()))
    row = info[model._unit_index[id(layer)]]
    outs = layer._inbound_nodes[0].outputs if layer._inbound_nodes else []
    if len(outs) > 1:  # several outputs (return_state, merge_mode=None): the engine packs them into one
        return _shape_text(tuple(t.shape for t in outs)), int(row[3])
    return _shape_text((None, *row[2])), int(row[3])


def _rows(model: Any, expand_nested: bool, show_trainable: bool) -> List[Row]:
    from .models import Functional, Model

    functional = isinstance(model, Functional) and not _sequential_like(model)
    if model._core is None:
        return [(f"{layer.name} ({layer.class_name})", "?", "0 (unbuilt)") for layer in model._layers]
    rows: List[Row] = []
    info = model._core.layer_info()  # one engine call for the whole table
    keys = model._node_key() if functional else {}

    def add(container: Any, layer: Any, depth: int) -> None:
        shape, params = _layer_stats(model, layer, info)
        prefix = "   " * depth + ("└ " if depth else "")
        row: List[str] = [f"{prefix}{layer.name} ({layer.class_name})", shape, f"{params:,}"]
        if functional:
            row.append(_connected(container, layer, keys) if depth == 0 else "-")
        if show_trainable:
            row.append(_trainable_mark(layer, params))
        rows.append(tuple(row))
        if expand_nested and isinstance(layer, Model):
            for sub in layer.layers:
                if not getattr(sub, "_is_input_layer", False):
                    add(layer, sub, depth + 1)

    for layer in model.layers:
        add(model, layer, 0)
    return rows


def _optimizer_params(model: Any) -> Tuple[int, int]:
    """(count, bytes) of the optimizer's variables once it has state (Keras counts them after its optimizer is
    built): `iterations` (an int64), the learning rate unless a schedule gives it, and every slot."""
    if not model.compiled or model._core is None or model._core.iterations == 0:
        return 0, 0
    from .saving import _head_count

    _, _, slots = model._core.get_optimizer_state()
    count = _head_count(model) + sum(int(a.size) for per_weight in slots for a in per_weight)
    return count, 4 * count + 4


def _bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


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


def _wrap(text: str, width: int) -> List[str]:
    """Greedy word wrap at spaces into `width` characters; a word longer than a line is cut with "…". Leading
    spaces (a nested layer's indent) stay on the first line."""
    indent = len(text) - len(text.lstrip(" "))
    lines: List[str] = []
    current = " " * indent
    text = text[indent:]
    for word in text.split(" "):
        if len(word) > width:
            word = word[: width - 1] + "…"
        candidate = f"{current} {word}" if current.strip() else current + word
        if len(candidate) <= width:
            current = candidate
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return lines


def _cells(texts: Row, widths: Tuple[int, ...], align: Tuple[str, ...]) -> List[str]:
    wrapped = [_wrap(t, w - 2) for t, w in zip(texts, widths)]
    height = max(len(c) for c in wrapped)
    out = []
    for i in range(height):
        parts = []
        for lines, w, a in zip(wrapped, widths, align):
            text = lines[i] if i < len(lines) else ""
            inner = w - 2
            cell = text.rjust(inner) if a == "r" else text.center(inner) if a == "c" else text.ljust(inner)
            parts.append(" " + cell + " ")
        out.append("│" + "│".join(parts) + "│")
    return out


def render_summary(model: Any, expand_nested: bool = False, show_trainable: bool = False) -> str:
    from .models import Functional

    functional = isinstance(model, Functional) and not _sequential_like(model)
    w = _WIDTHS[(functional, bool(show_trainable))]
    headers: List[str] = ["Layer (type)", "Output Shape", "Param #"]
    align: List[str] = ["l", "l", "r"]
    if functional:
        headers.append("Connected to")
        align.append("l")
    if show_trainable:
        headers.append("Trainable" if w[-1] - 2 >= len("Trainable") else "Trai…")
        align.append("c")
    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "┳".join("━" * n for n in w) + "┓")
    head = []
    for text, width, a in zip(headers, w, align):
        inner = width - 2
        head.append(" " + (text.rjust(inner) if a == "r" else text.ljust(inner)) + " ")
    lines.append("┃" + "┃".join(head) + "┃")
    lines.append("┡" + "╇".join("━" * n for n in w) + "┩")
    rows = _rows(model, expand_nested, show_trainable)
    for i, row in enumerate(rows):
        if model._core is None:
            row = row + ("",) * (len(w) - len(row))
        lines.extend(_cells(row, w, tuple(align)))
        if i + 1 < len(rows):
            lines.append("├" + "┼".join("─" * n for n in w) + "┤")
    lines.append("└" + "┴".join("─" * n for n in w) + "┘")
    total, trainable = _totals(model)
    opt_count, opt_bytes = _optimizer_params(model)
    lines.append(f" Total params: {total + opt_count:,} ({_bytes(total * 4.0 + opt_bytes)})")
    lines.append(f" Trainable params: {trainable:,} ({_size(trainable)})")
    lines.append(f" Non-trainable params: {total - trainable:,} ({_size(total - trainable)})")
    if opt_count:
        lines.append(f" Optimizer params: {opt_count:,} ({_bytes(opt_bytes)})")
    return "\n".join(lines)


def render_summary_html(model: Any, expand_nested: Optional[bool] = False) -> str:
    from .models import Functional

    functional = isinstance(model, Functional) and not _sequential_like(model)
    heads = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:right'>{html.escape(c)}</td>" if k == 2 else
                         f"<td>{html.escape(c)}</td>" for k, c in enumerate(row)) + "</tr>"
        for row in _rows(model, bool(expand_nested), False)
    )
    total, trainable = _totals(model)
    return (
        f"<div><b>Model: \"{html.escape(model.name)}\"</b><table>"
        "<thead><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead>"
        f"<tbody>{body}</tbody></table>"
        f"<p>Total params: {total:,} ({_size(total)})<br>Trainable params: {trainable:,} ({_size(trainable)})<br>"
        f"Non-trainable params: {total - trainable:,} ({_size(total - trainable)})</p></div>"
    )
