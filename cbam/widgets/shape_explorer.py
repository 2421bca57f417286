"""The shape explorer: every tensor's shape on its way through CBAM, and the parameters it costs.

In a lesson, end a cell with ``ShapeExplorer()`` (or ``display(ShapeExplorer(module="channel"))``)
and move the sliders; an impossible setting shows the module's own error message.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import torch
from torch import nn

from cbam.attention import ARRANGEMENTS, CBAM, ChannelAttention, SpatialAttention
from cbam.validation import check_positive_int
from cbam.widgets.base import Explorer, error_html

MODULES = ("cbam", "channel", "spatial")
STYLE = {"description_width": "110px"}  # one width: the two columns of controls line up
Step = tuple[str, tuple[int, ...]]


def build_module(
    module: str,
    channels: int,
    reduction: float = 16,
    kernel_size: int = 7,
    arrangement: str = "channel-first",
) -> nn.Module:
    """The real module (``CBAM``, ``ChannelAttention`` or ``SpatialAttention``) on the meta
    device: it has every parameter's shape but no memory, so any size is instant."""
    if module not in MODULES:
        raise ValueError(f"module must be one of {MODULES}, got {module!r}")
    # Building draws no random numbers on meta; fork_rng guarantees the lesson's seed is untouched.
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        if module == "channel":
            return ChannelAttention(channels, reduction)
        if module == "spatial":
            return SpatialAttention(kernel_size)
        return CBAM(channels, reduction, kernel_size, arrangement=arrangement)


def _hidden_label(hidden: int, channels: int, reduction: float | None) -> str:
    """The MLP's first layer; where C // r is below the minimum width, the width it really has."""
    if reduction is None:
        return f"channel: Linear C → hidden width {hidden}, ReLU"
    quotient = int(channels // reduction)
    if quotient == hidden:
        return f"channel: Linear C → C // r = {hidden}, ReLU"
    return (f"channel: Linear C → max(C // r, 1) = {hidden}, ReLU "
            f"(C // r = {quotient}, so the hidden width is {hidden})")


def trace_shapes(
    model: nn.Module, batch: int, channels: int, height: int, width: int,
    reduction: float | None = None,
) -> list[Step]:
    """Run ``model`` on an (N, C, H, W) meta tensor and return (step, shape) in the order the
    steps happen.

    Forward hooks on the submodules (MLP, conv, gates) read the shapes, so the order is the
    module's own. Where a map multiplies features, the product's shape is the broadcast of the
    map's shape with the features' (every feature map in the block is N x C x H x W); each map
    is applied as soon as it is made, except in CBAM's parallel arrangement, which applies both
    maps to x at the end. ``reduction``, when given, lets the MLP's step show C // r.
    """
    for name, value in (("batch", batch), ("height", height), ("width", width)):
        check_positive_int(name, value)
    x = torch.zeros(batch, channels, height, width, device="meta")
    parallel = isinstance(model, CBAM) and model.arrangement == "parallel"
    steps: list[Step] = []
    maps: list[torch.Size] = []
    handles = []

    def after(module: nn.Module, label: str, applied: str | None = None) -> None:
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            steps.append((label, tuple(output.shape)))
            if applied:
                maps.append(output.shape)
                if not parallel:
                    steps.append((applied, tuple(torch.broadcast_shapes(output.shape, x.shape))))

        handles.append(module.register_forward_hook(hook))

    def before(module: nn.Module, label: str) -> None:
        def hook(_module: nn.Module, inputs: tuple) -> None:
            steps.append((label, tuple(inputs[0].shape)))

        handles.append(module.register_forward_pre_hook(hook))

    channel = model if isinstance(model, ChannelAttention) else getattr(model, "channel", None)
    spatial = model if isinstance(model, SpatialAttention) else getattr(model, "spatial", None)
    if channel is not None:
        pools = "; ".join(channel.pool_types)
        before(channel.mlp, f"channel: [{pools}] pooled over H, W, stacked (P, N, C)")
        after(channel.mlp[0], _hidden_label(channel.hidden_channels, channels, reduction))
        after(channel.mlp[2], "channel: Linear back to C")
        before(channel.gate, "channel: sum over the P descriptors")
        after(
            channel.gate,
            "channel: map M_c = sigmoid(sum)",
            applied="channel: M_c ⊗ input, broadcast over H, W",
        )
    if spatial is not None:
        k = spatial.kernel_size
        before(spatial.conv, "spatial: [mean; max] over C")
        after(spatial.conv, f"spatial: {k}×{k} conv, padding {k // 2}")
        after(
            spatial.gate,
            "spatial: map M_s = sigmoid(conv)",
            applied="spatial: M_s ⊗ input, broadcast over C",
        )

    # eval and no_grad: the plain inference path (a training path may fuse steps away).
    was_training = model.training
    try:
        with torch.no_grad():
            output = model.eval()(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if parallel:
        steps.append(
            ("x ⊗ M_c ⊗ M_s, both maps from x", tuple(torch.broadcast_shapes(*maps, x.shape)))
        )
    return [("input x", tuple(x.shape)), *steps, ("output", tuple(output.shape))]


def shape_flow(
    batch: int,
    channels: int,
    height: int,
    width: int,
    reduction: float = 16,
    kernel_size: int = 7,
    arrangement: str = "channel-first",
    *,
    module: str = "cbam",
) -> list[Step]:
    """Every intermediate shape, in order, as an (N, C, H, W) input flows through the module.

    >>> shape_flow(2, 64, 32, 32, module="channel")[-2]
    ('channel: M_c ⊗ input, broadcast over H, W', (2, 64, 32, 32))
    """
    model = build_module(module, channels, reduction, kernel_size, arrangement)
    return trace_shapes(model, batch, channels, height, width, reduction)


def parameter_table(model: nn.Module) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, count) of each parameter tensor of ``model``."""
    return [(name, tuple(p.shape), p.numel()) for name, p in model.named_parameters()]


def _describe(
    module: str, channels: int, reduction: float, kernel_size: int, arrangement: str
) -> str:
    if module == "channel":
        return f"ChannelAttention(channels={channels}, reduction={reduction})"
    if module == "spatial":
        return f"SpatialAttention(kernel_size={kernel_size})"
    return (
        f"CBAM(channels={channels}, reduction={reduction}, kernel_size={kernel_size}, "
        f"arrangement={arrangement!r})"
    )


class ShapeExplorer(Explorer):
    """Sliders for N, C, H, W, r and k, and the module and arrangement to follow; shows the shape
    of every intermediate tensor and the parameters of the module.

    Use in a lesson: ``ShapeExplorer()`` as a cell's last line, or ``display(ShapeExplorer())``.
    Keyword arguments set the starting values, e.g. ``ShapeExplorer(module="spatial")``.

    Attributes for code (and tests): ``controls`` (name -> control widget), ``steps`` (the
    (step, shape) list shown), ``params`` (the parameter table shown), ``error`` (the message
    shown instead, or None), ``shape_text`` (what the output shows, as plain text).
    """

    def __init__(
        self,
        *,
        module: str = "cbam",
        batch: int = 2,
        channels: int = 64,
        height: int = 32,
        width: int = 32,
        reduction: int = 16,
        kernel_size: int = 7,
        arrangement: str = "channel-first",
    ) -> None:
        def slider(description: str, value: int, low: int, high: int) -> widgets.IntSlider:
            # continuous_update=False: one redraw when the handle is released, not one per pixel.
            return widgets.IntSlider(
                value=value,
                min=low,
                max=max(high, value),
                description=description,
                continuous_update=False,
                style=STYLE,
            )

        self.controls = {
            "module": widgets.Dropdown(
                options=[
                    ("CBAM", "cbam"),
                    ("channel attention", "channel"),
                    ("spatial attention", "spatial"),
                ],
                value=module,
                description="module",
                style=STYLE,
            ),
            "arrangement": widgets.Dropdown(
                options=list(ARRANGEMENTS),
                value=arrangement,
                description="arrangement",
                style=STYLE,
            ),
            "batch": slider("N (batch)", batch, 1, 16),
            # C starts at 0 and k takes even values on purpose: the module's errors are lessons too.
            "channels": slider("C (channels)", channels, 0, 2048),  # ResNet-50 reaches 2048
            "height": slider("H (height)", height, 1, 128),
            "width": slider("W (width)", width, 1, 128),
            "reduction": slider("r (reduction)", reduction, 1, 64),
            "kernel_size": slider("k (kernel size)", kernel_size, 1, 15),
        }
        self.output = widgets.HTML()
        c = self.controls
        columns = widgets.HBox(
            [
                widgets.VBox([c["module"], c["arrangement"], c["reduction"], c["kernel_size"]]),
                widgets.VBox([c["batch"], c["channels"], c["height"], c["width"]]),
            ]
        )
        self.widget = widgets.VBox([columns, self.output])
        self.steps: list[Step] = []
        self.params: list[tuple[str, tuple[int, ...], int]] = []
        self.error: str | None = None
        self.shape_text = ""
        self._watch_controls()
        self.update()

    def update(self) -> None:
        values = {name: control.value for name, control in self.controls.items()}
        module = values["module"]
        # Show only the controls that change the chosen module.
        self.controls["arrangement"].disabled = module != "cbam"
        self.controls["reduction"].disabled = module == "spatial"
        self.controls["kernel_size"].disabled = module == "channel"
        title = _describe(
            module,
            values["channels"],
            values["reduction"],
            values["kernel_size"],
            values["arrangement"],
        )
        try:
            model = build_module(
                module,
                values["channels"],
                values["reduction"],
                values["kernel_size"],
                values["arrangement"],
            )
            self.steps = trace_shapes(
                model, values["batch"], values["channels"], values["height"], values["width"],
                values["reduction"],
            )
            self.params = parameter_table(model)
        except (ValueError, TypeError, RuntimeError) as error:
            self.steps, self.params = [], []
            self.error = f"{type(error).__name__}: {error}"
            self.shape_text = f"{title}\n{self.error}"
            self.output.value = f"<b><code>{html.escape(title)}</code></b>" + error_html(error)
            return
        self.error = None
        self.shape_text = _as_text(title, self.steps, self.params)
        self.output.value = _as_html(title, self.steps, self.params)


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _as_text(title: str, steps: list[Step], params: list[tuple[str, tuple[int, ...], int]]) -> str:
    width = max(len(step) for step, _ in steps)
    lines = [title] + [f"{step:<{width}}  {_shape(shape)}" for step, shape in steps]
    lines.append("parameters:")
    lines += [f"  {name} {_shape(shape)}: {count:,}" for name, shape, count in params]
    lines.append(f"  total: {sum(count for *_, count in params):,}")
    return "\n".join(lines)


def _as_html(title: str, steps: list[Step], params: list[tuple[str, tuple[int, ...], int]]) -> str:
    # ipywidgets 8 gives an HTML widget a control's line height (28 px): too tall for a table.
    cell = 'style="text-align:left; padding:1px 14px 1px 0; line-height:1.35"'
    rows = "".join(
        f"<tr><td {cell}>{html.escape(step)}</td><td {cell}><code>{_shape(shape)}</code></td></tr>"
        for step, shape in steps
    )
    param_rows = "".join(
        f"<tr><td {cell}><code>{name}</code></td><td {cell}><code>{_shape(shape)}</code></td>"
        f'<td {cell} align="right">{count:,}</td></tr>'
        for name, shape, count in params
    )
    total = sum(count for *_, count in params)
    return (
        f"<b><code>{html.escape(title)}</code></b>"
        f'<table style="border-collapse:collapse">'
        f"<tr><th {cell}>step</th><th {cell}>shape</th></tr>"
        f"{rows}</table>"
        f'<table style="border-collapse:collapse; margin-top:6px">'
        f"<tr><th {cell}>parameter</th><th {cell}>shape</th><th {cell}>count</th></tr>"
        f"{param_rows}<tr><td {cell}><b>total</b></td><td {cell}></td>"
        f'<td {cell} align="right"><b>{total:,}</b></td></tr></table>'
    )
