"""cbam in other people's code: factory keywords, integer-like sizes, timm, export, tracing,
scripting, hooks, double backward and empty batches. Wherever a faster route exists, the plain
code's graph and values are what comes out."""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import cbam
from cbam import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation

# name: (class, arguments, keywords) of each module the library exports, in its configurations
MODULES = {
    "CBAM": (CBAM, (32,), {}),
    "CBAM with BatchNorm": (CBAM, (32,), {"batch_norm": True}),
    "ChannelAttention": (ChannelAttention, (32,), {}),
    "SqueezeExcitation": (SqueezeExcitation, (32,), {}),
    "SpatialAttention": (SpatialAttention, (), {}),
    "SpatialAttention conv1x1": (
        SpatialAttention,
        (),
        {"channel_reduction": "conv1x1", "channels": 32},
    ),
}


def build(name: str, **factory) -> nn.Module:
    module_cls, args, kwargs = MODULES[name]
    return module_cls(*args, **kwargs, **factory)


# --- factory keywords and integer-like sizes ---------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_every_module_takes_device_and_dtype(name):
    module = build(name, device="meta", dtype=torch.float64)
    tensors = list(module.parameters()) + list(module.buffers())
    assert tensors
    # BatchNorm's num_batches_tracked is an integer counter, left integer as nn.BatchNorm2d does.
    assert all(t.device.type == "meta" for t in tensors)
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())


@pytest.mark.parametrize("name", MODULES)
def test_skip_init_builds_a_working_module(name):
    module_cls, args, kwargs = MODULES[name]
    module = nn.utils.skip_init(module_cls, *args, **kwargs)
    reference = build(name)
    assert module.state_dict().keys() == reference.state_dict().keys()
    module.load_state_dict(reference.state_dict())
    x = torch.randn(2, 32, 6, 6)
    torch.testing.assert_close(module(x), reference(x))


def test_skip_init_builds_a_resnet_with_cbam():
    model = nn.utils.skip_init(cbam.ResNet, cbam.Bottleneck, [3, 4, 6, 3], attention="cbam")
    assert sum(p.numel() for p in model.parameters()) == 28_089_592  # Table 4's 28.09 M


@pytest.mark.parametrize("attention", ["cbam", "se", None, lambda c: CBAM(c, reduction=8)])
def test_resnets_take_device_and_dtype(attention):
    model = cbam.resnet_cifar(20, attention=attention, dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    model = cbam.resnet18(attention=attention, device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_integer_like_sizes_are_accepted_and_stored_as_int():
    class Index:
        def __index__(self):
            return 64

    for channels in (np.int64(64), np.int32(64), Index()):
        block = CBAM(channels, np.int64(16), np.int64(7))
        assert type(block.channel.channels) is int and block.channel.channels == 64
        assert block.channel.hidden_channels == 4 and block.spatial.kernel_size == 7
        assert block(torch.randn(1, 64, 5, 5)).shape == (1, 64, 5, 5)
    model = cbam.resnet_cifar(np.int64(20), np.int64(10), width=np.int64(8))
    assert model.fc.out_features == 10 and model.conv1.out_channels == 8


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "bool True"), (np.True_, "bool"), (64.0, "float 64.0"), (np.float64(64), "float64")],
)
def test_bools_and_floats_are_still_refused_with_what_came(value, shown):
    with pytest.raises(TypeError, match="channels must be an int") as error:
        CBAM(value)
    assert shown in str(error.value)


def test_timm_builds_a_resnet_with_cbam_as_its_attention_layer():
    try:
        import timm
    except ImportError as error:  # timm imports torchvision, which a CPU-only torch may lack
        pytest.skip(f"timm does not import here: {error}")
    model = timm.create_model("resnet18", block_args={"attn_layer": CBAM}, num_classes=10)
    blocks = [m for m in model.modules() if isinstance(m, CBAM)]
    assert len(blocks) == 8 and blocks[0].channel.channels == 64
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    meta = timm.create_model("resnet18", block_args={"attn_layer": CBAM}, device="meta")
    assert {p.device.type for p in meta.parameters()} == {"meta"}


# --- scripting and tracing ---------------------------------------------------------------------

NETWORKS = {
    "resnet50 cbam": (lambda: cbam.resnet50(attention="cbam"), (1, 3, 64, 64)),
    "resnet_cifar(20)": (lambda: cbam.resnet_cifar(20), (2, 3, 32, 32)),
    "resnet_cifar(20) cbam": (lambda: cbam.resnet_cifar(20, attention="cbam"), (2, 3, 32, 32)),
}


def everything():
    """(name, module in eval mode, input) for every module and network the library exports."""
    torch.manual_seed(0)
    cases = [(name, build(name).eval(), torch.randn(2, 32, 9, 10)) for name in MODULES]
    cases += [(name, make().eval(), torch.randn(shape)) for name, (make, shape) in NETWORKS.items()]
    cases += [
        (f"CBAM {arrangement}", CBAM(32, arrangement=arrangement).eval(), torch.randn(2, 32, 9, 10))
        for arrangement in ("spatial-first", "parallel")
    ]
    cases.append(("CBAM no spatial", CBAM(32, spatial=False).eval(), torch.randn(2, 32, 9, 10)))
    return cases


CASES = {name: (module, x) for name, module, x in everything()}


@pytest.mark.parametrize("name", CASES)
def test_jit_script_computes_what_the_module_computes(name):
    module, x = CASES[name]
    scripted = torch.jit.script(module)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), module(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_fx_symbolic_trace_records_the_plain_code(name):
    module, x = CASES[name]
    graph = torch.fx.symbolic_trace(module)
    called = {str(node.target) for node in graph.graph.nodes}
    assert not any("Fused" in c or "cpu_forward" in c or "spatial_conv" in c for c in called)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), module(x), rtol=1e-5, atol=1e-6)


def test_fx_records_the_spatial_convolution_as_the_module_it_is():
    graph = torch.fx.symbolic_trace(CBAM(32))
    modules = [node.target for node in graph.graph.nodes if node.op == "call_module"]
    assert "spatial.conv" in modules and "channel.mlp.0" in modules


def large_input(channels: int = 64) -> torch.Tensor:
    """An input on which training takes the fused path."""
    x = torch.randn(4, channels, 32, 32, requires_grad=True)
    assert x.numel() >= cbam.fast.fused_backward.FUSED_MIN_ELEMENTS
    return x


def test_jit_trace_in_grad_mode_on_a_large_input_passes_its_own_check():
    block = CBAM(64)
    x = large_input()
    assert cbam.fast.why_not(block, x)["fused_backward"] is None  # outside the trace
    traced = torch.jit.trace(block, x)  # check_trace runs the graph again and compares
    other = torch.randn_like(x)
    torch.testing.assert_close(traced(other), block(other))
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "prim::PythonOp" not in kinds and "aten::_convolution" in kinds


def test_jit_trace_without_gradients_passes_its_own_check():
    block = CBAM(16).eval()
    with torch.no_grad():
        traced = torch.jit.trace(block, torch.randn(2, 16, 5, 5))
    kinds = [node.kind() for node in traced.inlined_graph.nodes()]
    assert "aten::mul_" not in kinds


# --- export: torch.export and ONNX --------------------------------------------------------------


def test_torch_export_in_grad_mode_records_one_convolution():
    block = CBAM(64)
    program = torch.export.export(block, (large_input(),))
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert sum("conv2d" in t for t in targets) == 1
    assert not any("slice" in t or "cbam" in t for t in targets), targets


missing = ""
try:
    import onnx
    import onnxruntime
    import onnxscript  # noqa: F401 (the default exporter needs it)
except ImportError as error:
    onnx = onnxruntime = None
    missing = str(error)
needs_onnx = pytest.mark.skipif(
    onnx is None, reason=f"onnx, onnxscript and onnxruntime (the dev extra) are needed: {missing}"
)


def onnx_export(module: nn.Module, x: torch.Tensor, *, dynamo: bool) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' notes on deprecations and torchvision
        if dynamo:
            return torch.onnx.export(module, (x,), dynamo=True, verbose=False).model_proto
        buffer = io.BytesIO()
        torch.onnx.export(module, (x,), buffer, dynamo=False)
        return onnx.load_from_string(buffer.getvalue())


def run_onnx(model: onnx.ModelProto, x: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def op_types(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


@needs_onnx
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize(
    "name", ["CBAM", "CBAM with BatchNorm", "ChannelAttention", "SpatialAttention"]
)
def test_onnx_export_in_grad_mode_runs_in_onnxruntime_as_in_pytorch(name, dynamo):
    module = build(name).eval()
    x = torch.randn(8, 32, 32, 32)  # large enough for the fused path, which must step aside
    assert x.numel() >= cbam.fast.fused_backward.FUSED_MIN_ELEMENTS
    model = onnx_export(module, x, dynamo=dynamo)
    with torch.no_grad():
        expected = module(x)
    torch.testing.assert_close(run_onnx(model, x), expected, rtol=1e-5, atol=1e-5)
    assert op_types(model).count("Conv") == (0 if name == "ChannelAttention" else 1)


@needs_onnx
def test_the_onnx_graph_of_a_cbam_block_is_small(figures):
    model = onnx_export(CBAM(64).eval(), torch.randn(1, 64, 32, 32), dynamo=True)
    types = op_types(model)
    # timm's CbamModule exports to 26 nodes; the shifted-sum form of the 7x7 convolution, which
    # only torch.compile should see, made 332.
    assert len(types) <= 26 and types.count("Conv") == 1 and "Slice" not in types
    figures("ONNX nodes of CBAM(64), dynamo exporter", str(len(types)))


@needs_onnx
def test_resnet50_with_cbam_exports_about_as_fast_as_with_se(figures):
    x = torch.randn(1, 3, 224, 224)
    seconds = {}
    for attention in ("se", "cbam"):
        torch.manual_seed(0)
        model = cbam.resnet50(attention=attention).eval()
        start = time.perf_counter()
        exported = onnx_export(model, x, dynamo=True)
        seconds[attention] = time.perf_counter() - start
        with torch.no_grad():
            expected = model(x)
        torch.testing.assert_close(run_onnx(exported, x), expected, rtol=1e-5, atol=1e-5)
    figures("ONNX export of resnet50, cbam / se", f"{seconds['cbam'] / seconds['se']:.2f}x")
    # The shifted-sum form took over 38 minutes here; the plain code takes seconds, as SE does.
    assert seconds["cbam"] < 3 * seconds["se"] + 10, seconds


# --- hooks, empty batches, double backward ------------------------------------------------------


def hook_everywhere(block: nn.Module) -> tuple[dict[str, int], list]:
    """A forward hook and a full backward hook on every submodule; counts of their calls."""
    calls: dict[str, int] = {}
    handles = []
    for name, module in block.named_modules():
        if not name or isinstance(module, (nn.Sequential, nn.Identity)):
            continue

        def seen(*_, key=name) -> None:
            calls[key] = calls.get(key, 0) + 1

        handles.append(module.register_forward_hook(seen))
    return calls, handles


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("where", ["channel", "spatial", "spatial.conv", "channel.mlp.0"])
def test_a_hook_on_any_submodule_fires_and_the_route_steps_aside(where, grad):
    block = CBAM(64).eval()
    module = block.get_submodule(where)
    fired = []
    handle = module.register_forward_hook(lambda m, args, out: fired.append(out.shape))
    x = large_input().requires_grad_(grad)
    try:
        reasons = cbam.fast.why_not(block, x)
        with torch.set_grad_enabled(grad):
            out = block(x)
    finally:
        handle.remove()
    assert len(fired) == 1
    assert all("hook" in reason for reason in reasons.values()), reasons
    block.fused = False
    with torch.no_grad():
        torch.testing.assert_close(out, block(x))


def test_a_full_backward_hook_on_a_submodule_fires_in_training():
    block = CBAM(64)
    grads = []
    block.channel.register_full_backward_hook(lambda m, gin, gout: grads.append(gout[0].shape))
    block(large_input()).sum().backward()
    assert grads == [(4, 64, 32, 32)]


def test_hooks_on_every_submodule_fire_once_per_call():
    block = CBAM(64).eval()
    calls, handles = hook_everywhere(block)
    with torch.no_grad():
        block(torch.randn(2, 64, 8, 8))
    block(large_input()).sum().backward()
    for handle in handles:
        handle.remove()
    assert calls and all(count == 2 for count in calls.values()), calls


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(
    "make",
    [
        lambda fused: CBAM(16, fused=fused),
        lambda fused: CBAM(16, fused=fused, arrangement="parallel"),
        lambda fused: SpatialAttention(),
        lambda fused: ChannelAttention(16),
    ],
    ids=["CBAM", "parallel", "SpatialAttention", "ChannelAttention"],
)
def test_an_empty_batch_goes_forward_and_backward(make, fused):
    module = make(fused)
    x = torch.randn(0, 16, 7, 7, requires_grad=True)
    assert "empty" in cbam.fast.why_not(CBAM(16), x)["fused_backward"]
    out = module(x)
    out.sum().backward()
    assert out.shape == x.shape and x.grad.shape == x.shape
    assert all(p.grad is not None and not p.grad.any() for p in module.parameters())


def gradient_penalty(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The squared norm of the output's gradient with respect to the input (a WGAN-GP-like
    penalty): a backward that must itself be differentiated."""
    (grad,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
    return grad.square().sum()


@pytest.mark.parametrize("batch_norm", [False, True])
def test_double_backward_above_the_fused_threshold_matches_the_plain_code(batch_norm):
    torch.manual_seed(0)
    block = CBAM(64, batch_norm=batch_norm).double()
    x = large_input().double().detach().requires_grad_()
    assert cbam.fast.why_not(block, x)["fused_backward"] is None
    results = []
    for fused in (True, False):
        block.fused = fused
        block.zero_grad()
        gradient_penalty(block, x).backward()
        results.append([p.grad.clone() for p in block.parameters()] + [*block.buffers()])
        block.load_state_dict(block.state_dict())  # the same running statistics for both
    for fused_value, plain_value in zip(*results, strict=True):
        torch.testing.assert_close(fused_value, plain_value)


def test_gradgradcheck_above_the_fused_threshold():
    """gradgradcheck perturbs every input element, so the large input is a fixed map moved
    along three directions: the block sees 262,144 elements, the check three numbers."""
    torch.manual_seed(0)
    block = CBAM(64).double()
    base = torch.randn(4, 64, 32, 32, dtype=torch.float64)
    directions = torch.randn(3, *base.shape, dtype=torch.float64)
    assert base.numel() >= cbam.fast.fused_backward.FUSED_MIN_ELEMENTS

    def on_the_plane(coefficients: torch.Tensor) -> torch.Tensor:
        x = base + torch.einsum("k,k...->...", coefficients, directions)
        assert cbam.fast.why_not(block, x)["fused_backward"] is None
        # A few weighted sums of the output keep the checked Jacobian small.
        return (block(x) * directions[:2, None]).sum(dim=(1, 2, 3, 4))

    coefficients = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(on_the_plane, (coefficients,))


# --- torch.compile: the shifted-sum convolution only where autograd records nothing -------------


def compiled_graph_sizes(module: nn.Module, x: torch.Tensor, grad: bool) -> tuple[list, object]:
    """The number of nodes of each graph Dynamo hands its backend, and the output."""
    sizes = []

    def backend(graph_module, example_inputs):
        sizes.append(len(graph_module.graph.nodes))
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(module, backend=backend, fullgraph=True)
    with torch.set_grad_enabled(grad):
        out = compiled(x)
    return sizes, out


def test_compiled_inference_sums_shifted_maps_and_training_keeps_the_convolution():
    """Inductor fuses the shifted sums into one loop in inference; in a training graph their
    backward made the cold compile several times longer than SE's, so the convolution stays."""
    block = CBAM(16, fused=False)  # the plain code: the C kernel would hide the convolution
    x = torch.randn(2, 16, 8, 8)
    inference, _ = compiled_graph_sizes(block, x, grad=False)
    training, out = compiled_graph_sizes(block, x.requires_grad_(), grad=True)
    assert inference[0] > 200 and training[0] < 60, (inference, training)
    out.square().sum().backward()
    compiled_grads = [x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    x.grad = None
    block.zero_grad()
    block(x).square().sum().backward()
    eager_grads = [x.grad] + [p.grad for p in block.parameters()]
    for compiled_grad, eager_grad in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(compiled_grad, eager_grad)
