"""cbam.attention against Eq. 1-3 written out with plain tensor ops, with the same weights.

Also: the fast routes (in-place inference, the fused training backward, the convolution routes)
against the plain computation, gradients in float64, low precision, channels_last,
torch.compile, and the benchmark's naive baseline.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cbam
import cbam.fast.fused_backward
from cbam.attention import (
    ARRANGEMENTS,
    CBAM,
    POOL_TYPES,
    ChannelAttention,
    SpatialAttention,
    SqueezeExcitation,
)
from cbam.fast.spatial_conv import _SameConv, conv_as_shifted_sums


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine a thread pool stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fused_for_small_inputs(monkeypatch):
    """The fused training path normally waits for large inputs; the tests' are small."""
    monkeypatch.setattr(cbam.fast.fused_backward, "FUSED_MIN_ELEMENTS", 0)


# ---------------------------------------------------------------------------------------------
# The equations, written out


def channel_map_reference(x: torch.Tensor, module: ChannelAttention) -> torch.Tensor:
    """Eq. 2: sigmoid(sum over poolings of W1 relu(W0 d + b0) + b1), as (N, C, 1, 1)."""
    first, second = module.mlp[0], module.mlp[2]

    def mlp(d):
        hidden = d @ first.weight.T
        if first.bias is not None:
            hidden = hidden + first.bias
        out = torch.clamp(hidden, min=0) @ second.weight.T
        return out if second.bias is None else out + second.bias

    h, w = x.shape[2], x.shape[3]
    descriptors = {
        "avg": lambda: x.sum(dim=(2, 3)) / (h * w),
        "max": lambda: x.flatten(2).max(dim=2).values,
        "lp": lambda: F.lp_pool2d(x, 2, (h, w)).flatten(1),
        "lse": lambda: x.flatten(2).exp().sum(dim=2).log(),
    }
    logits = sum(mlp(descriptors[p]()) for p in module.pool_types)
    return torch.sigmoid(logits)[:, :, None, None]


def spatial_map_reference(x: torch.Tensor, module: SpatialAttention) -> torch.Tensor:
    """Eq. 3: sigmoid(conv_kxk([mean_c x; max_c x])) with zero padding k // 2, as (N, 1, H, W).

    With ``channel_reduction="conv1x1"`` the two maps are instead sum_c w[m, c] x[:, c].
    """
    conv = module.conv
    if module.reduce is None:
        pooled = torch.stack([x.sum(dim=1) / x.shape[1], x.max(dim=1).values], dim=1)
    else:
        w = module.reduce.weight[:, :, 0, 0]
        pooled = torch.stack(
            [sum(w[m, c] * x[:, c] for c in range(x.shape[1])) for m in range(2)], dim=1
        )
    k = conv.weight.shape[-1]
    p = k // 2
    padded = torch.zeros(x.shape[0], 2, x.shape[2] + 2 * p, x.shape[3] + 2 * p, dtype=x.dtype)
    padded[:, :, p : p + x.shape[2], p : p + x.shape[3]] = pooled
    s = torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=x.dtype)
    for c, i, j in itertools.product(range(2), range(k), range(k)):
        s = s + conv.weight[0, c, i, j] * padded[:, c, i : i + x.shape[2], j : j + x.shape[3]]
    if conv.bias is not None:
        s = s + conv.bias[0]
    s = s[:, None]
    if isinstance(module.bn, nn.BatchNorm2d):
        bn = module.bn
        if bn.training:
            mean, var = s.mean(), s.var(unbiased=False)
        else:
            mean, var = bn.running_mean[0], bn.running_var[0]
        s = (s - mean) / torch.sqrt(var + bn.eps) * bn.weight[0] + bn.bias[0]
    return torch.sigmoid(s)


def cbam_reference(x: torch.Tensor, block: CBAM) -> torch.Tensor:
    """Eq. 1 in the block's arrangement."""
    if block.spatial is None:
        return channel_map_reference(x, block.channel) * x
    if block.arrangement == "channel-first":
        y = channel_map_reference(x, block.channel) * x
        return spatial_map_reference(y, block.spatial) * y
    if block.arrangement == "spatial-first":
        y = spatial_map_reference(x, block.spatial) * x
        return channel_map_reference(y, block.channel) * y
    return channel_map_reference(x, block.channel) * spatial_map_reference(x, block.spatial) * x


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Weights (and BatchNorm statistics) away from their initial values, so nothing is 0/1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        for b in module.buffers():
            if b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
    return module


# Shapes with small C (1, 2, 3, 7), a batch of 1, non-square maps.
SHAPES = [(1, 1, 5, 7), (2, 2, 6, 4), (1, 3, 7, 7), (2, 7, 9, 5), (3, 16, 8, 11), (2, 32, 4, 4)]
KERNELS = [1, 3, 5, 7, 9]
REDUCTIONS = [1, 2, 4, 16, 0.5]
POOLINGS = [
    ("avg",),
    ("max",),
    ("lp",),
    ("lse",),
    ("avg", "max"),
    ("max", "avg"),
    ("lp", "lse"),
    POOL_TYPES,
]


def cbam_cases():
    cases = []
    combos = itertools.product(ARRANGEMENTS, POOLINGS)
    for index, (arrangement, pool_types) in enumerate(combos):
        shape = SHAPES[index % len(SHAPES)]
        cases.append(
            (
                shape,
                REDUCTIONS[index % len(REDUCTIONS)],
                KERNELS[index % len(KERNELS)],
                arrangement,
                pool_types,
            )
        )
    return cases


def ids(case):
    shape, reduction, k, arrangement, pools = case
    return f"{'x'.join(map(str, shape))}-r{reduction}-k{k}-{arrangement}-{'+'.join(pools)}"


# ---------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize("case", cbam_cases(), ids=[ids(c) for c in cbam_cases()])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_cbam_matches_the_equations(case, grad):
    shape, reduction, k, arrangement, pool_types = case
    torch.manual_seed(0)
    block = randomize(
        CBAM(shape[1], reduction, k, arrangement=arrangement, pool_types=pool_types)
    ).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        out = block(x)
    expected = cbam_reference(x.detach(), block)
    torch.testing.assert_close(out.detach(), expected)
    assert out.requires_grad == grad


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", KERNELS)
def test_spatial_attention_matches_eq3(shape, k):
    torch.manual_seed(1)
    module = randomize(SpatialAttention(k)).double()
    x = torch.randn(*shape, dtype=torch.float64)
    attention = module.attention(x)
    assert attention.shape == (shape[0], 1, shape[2], shape[3])
    torch.testing.assert_close(attention, spatial_map_reference(x, module))
    torch.testing.assert_close(module(x), x * spatial_map_reference(x, module))


@pytest.mark.parametrize("shape", SHAPES[1:4])
@pytest.mark.parametrize("k", [3, 7])
def test_spatial_attention_with_a_learned_1x1_reduction(shape, k):
    """Table 2's alternative: a 1x1 convolution to two maps instead of mean & max over C."""
    torch.manual_seed(3)
    module = randomize(
        SpatialAttention(k, channel_reduction="conv1x1", channels=shape[1])
    ).double()
    assert module.reduce.weight.shape == (2, shape[1], 1, 1)
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(module.attention(x), spatial_map_reference(x, module))
    assert "channel_reduction='conv1x1'" in repr(module)


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_cbam_with_a_learned_1x1_reduction_runs_the_plain_code(arrangement, grad, monkeypatch):
    """The fast routes pool over channels; a block that learns the reduction must not take them."""
    taken = []
    monkeypatch.setattr(cbam.fast.cpu_kernel, "forward", lambda *a: taken.append("kernel"))
    fused = cbam.fast.fused_backward._FusedChannelFirst
    monkeypatch.setattr(fused, "apply", lambda *a: taken.append("fused"))
    torch.manual_seed(4)
    block = randomize(CBAM(16, 4, 7, arrangement=arrangement, channel_reduction="conv1x1"))
    x = torch.randn(2, 16, 12, 12, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        out = block(x)
    assert taken == []
    torch.testing.assert_close(out.detach(), cbam_reference(x.detach(), block))


def test_gradcheck_learned_1x1_reduction():
    torch.manual_seed(5)
    module = randomize(SpatialAttention(3, channel_reduction="conv1x1", channels=3)).double()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pool_types", POOLINGS, ids="+".join)
def test_channel_attention_matches_eq2(shape, reduction, pool_types):
    torch.manual_seed(2)
    module = randomize(ChannelAttention(shape[1], reduction, pool_types=pool_types)).double()
    assert module.hidden_channels == max(int(shape[1] // reduction), 1)
    x = torch.randn(*shape, dtype=torch.float64)
    attention = module.attention(x)
    assert attention.shape == (shape[0], shape[1], 1, 1)
    torch.testing.assert_close(attention, channel_map_reference(x, module))
    torch.testing.assert_close(module(x), x * channel_map_reference(x, module))


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_without_spatial_module_is_channel_attention(arrangement):
    torch.manual_seed(3)
    block = randomize(CBAM(7, 2, arrangement=arrangement, spatial=False)).double()
    assert block.spatial is None
    x = torch.randn(2, 7, 5, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(block(x), channel_map_reference(x, block.channel) * x)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_batch_norm_in_the_spatial_gate(training, arrangement):
    torch.manual_seed(4)
    block = randomize(CBAM(16, 4, 5, arrangement=arrangement, batch_norm=True)).double()
    block.train(training)
    assert isinstance(block.spatial.bn, nn.BatchNorm2d)
    x = torch.randn(3, 16, 6, 7, dtype=torch.float64, requires_grad=True)
    expected = cbam_reference(x.detach(), block)  # before the forward updates running stats
    torch.testing.assert_close(block(x), expected)


def test_gate_starts_at_one_half_with_zero_initialised_batch_norm():
    """The authors zero-init the BatchNorm weight, so the spatial gate starts at exactly 0.5."""
    module = SpatialAttention(batch_norm=True)
    nn.init.zeros_(module.bn.weight)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(module.attention(x), torch.full((2, 1, 5, 5), 0.5))


def test_inference_does_not_modify_the_input():
    torch.manual_seed(5)
    for arrangement in ARRANGEMENTS:
        block = CBAM(16, arrangement=arrangement)
        x = torch.randn(2, 16, 6, 6)
        before = x.clone()
        with torch.no_grad():
            out = block(x)
        assert torch.equal(x, before)
        assert out.data_ptr() != x.data_ptr()
        with torch.inference_mode():
            block(x)
        assert torch.equal(x, before)


def test_the_same_output_with_and_without_autograd():
    torch.manual_seed(6)
    block = CBAM(32)
    x = torch.randn(2, 32, 7, 5)
    with torch.no_grad():
        inference = block(x)
    training = block(x.clone().requires_grad_())
    torch.testing.assert_close(inference, training.detach(), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# The MLP two ways, and SE


@pytest.mark.parametrize("channels, reduction, bias", [(16, 4, True), (7, 2, False), (1, 16, True)])
def test_linear_mlp_equals_1x1_conv_mlp(channels, reduction, bias):
    torch.manual_seed(7)
    module = randomize(ChannelAttention(channels, reduction, bias=bias))
    first, second = module.mlp[0], module.mlp[2]
    hidden = module.hidden_channels
    conv_mlp = nn.Sequential(
        nn.Conv2d(channels, hidden, 1, bias=bias),
        nn.ReLU(),
        nn.Conv2d(hidden, channels, 1, bias=bias),
    )
    with torch.no_grad():
        conv_mlp[0].weight.copy_(first.weight[:, :, None, None])
        conv_mlp[2].weight.copy_(second.weight[:, :, None, None])
        if bias:
            conv_mlp[0].bias.copy_(first.bias)
            conv_mlp[2].bias.copy_(second.bias)
    assert sum(p.numel() for p in conv_mlp.parameters()) == sum(
        p.numel() for p in module.mlp.parameters()
    )
    descriptor = torch.randn(3, channels)
    torch.testing.assert_close(
        conv_mlp(descriptor[:, :, None, None]).flatten(1), module.mlp(descriptor)
    )


def test_squeeze_excitation_is_average_pooled_channel_attention():
    torch.manual_seed(8)
    se = randomize(SqueezeExcitation(32, 8))
    channel = ChannelAttention(32, 8, pool_types=("avg",))
    channel.load_state_dict(se.state_dict())
    assert se.pool_types == ("avg",)
    x = torch.randn(2, 32, 5, 6)
    torch.testing.assert_close(se(x), channel(x))
    torch.testing.assert_close(se.attention(x), channel_map_reference(x, se))


# ---------------------------------------------------------------------------------------------
# Gradients


def fast_gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)


@pytest.mark.parametrize("pool_types", POOLINGS, ids="+".join)
def test_gradcheck_channel_attention(pool_types):
    torch.manual_seed(9)
    module = randomize(ChannelAttention(7, 2, pool_types=pool_types)).double()
    fast_gradcheck(module, torch.randn(2, 7, 4, 5, dtype=torch.float64, requires_grad=True))


@pytest.mark.parametrize("k", [1, 3, 7])
def test_gradcheck_spatial_attention(k):
    torch.manual_seed(10)
    module = randomize(SpatialAttention(k, batch_norm=True, bias=True)).double()
    fast_gradcheck(module, torch.randn(2, 5, 6, 4, dtype=torch.float64, requires_grad=True))


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_gradcheck_cbam(arrangement, fused):
    torch.manual_seed(11)
    block = randomize(CBAM(6, 2, 3, arrangement=arrangement, fused=fused)).double()
    fast_gradcheck(block, torch.randn(2, 6, 5, 4, dtype=torch.float64, requires_grad=True))


def test_full_gradcheck_of_the_fused_block_with_batch_norm():
    torch.manual_seed(12)
    block = randomize(CBAM(4, 2, 3, batch_norm=True)).double()
    x = torch.randn(2, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


def test_same_conv_gradients_and_double_backward():
    torch.manual_seed(13)
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(1, dtype=torch.float64, requires_grad=True)
    expected = F.conv2d(x, weight, bias, padding=1)
    torch.testing.assert_close(_SameConv.apply(x, weight, bias), expected)
    assert torch.autograd.gradcheck(_SameConv.apply, (x, weight, bias))
    assert torch.autograd.gradgradcheck(_SameConv.apply, (x, weight, bias))


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("bias", [False, True])
def test_shifted_sums_equal_the_convolution(k, bias):
    torch.manual_seed(14)
    pooled = torch.randn(3, 2, 6, 9, dtype=torch.float64)
    weight = torch.randn(1, 2, k, k, dtype=torch.float64)
    b = torch.randn(1, dtype=torch.float64) if bias else None
    torch.testing.assert_close(
        conv_as_shifted_sums(pooled, weight, b), F.conv2d(pooled, weight, b, padding=k // 2)
    )


def gradients(block: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    block.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    block(x).backward(grad)
    return [x.grad] + [p.grad for p in block.parameters()]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", ["plain", "bias_conv", "batch_norm", "eval_batch_norm"])
def test_fused_backward_equals_autograd_through_the_equations(shape, variant):
    torch.manual_seed(15)
    block = CBAM(shape[1], 2, 5, batch_norm=variant.endswith("batch_norm"))
    if variant == "bias_conv":
        block.spatial.conv = nn.Conv2d(2, 1, 5, padding=2)
    block = randomize(block).double().train(variant != "eval_batch_norm")
    x = torch.randn(*shape, dtype=torch.float64)
    grad = torch.randn(*shape, dtype=torch.float64)
    fused = gradients(block, x, grad)
    assert all(g is not None for g in fused)

    x_ref = x.clone().requires_grad_()
    block.zero_grad(set_to_none=True)
    cbam_reference(x_ref, block).backward(grad)
    expected = [x_ref.grad] + [p.grad for p in block.parameters()]
    for got, want in zip(fused, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_the_fused_path_is_the_one_taken_in_training():
    block = CBAM(16)
    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    assert type(block(x).grad_fn).__name__ == "_FusedChannelFirstBackward"
    block.fused = False
    assert type(block(x).grad_fn).__name__ == "MulBackward0"


def test_by_default_only_large_inputs_take_the_fused_path(monkeypatch):
    monkeypatch.undo()  # the library's own threshold
    threshold = cbam.fast.fused_backward.FUSED_MIN_ELEMENTS
    block = CBAM(16)
    small = torch.randn(1, 16, 4, 4, requires_grad=True)
    large = torch.randn(1, 16, 1, threshold // 16, requires_grad=True)
    assert type(block(small).grad_fn).__name__ == "MulBackward0"
    assert type(block(large).grad_fn).__name__ == "_FusedChannelFirstBackward"


def test_ties_share_the_gradient_as_amax_does():
    """Equal maxima over H, W (a constant channel) and over C (equal channels) split it."""
    torch.manual_seed(16)
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    x[:, 1] = 0.25  # a constant channel: every pixel is its maximum
    x[:, 2] = x[:, 3]  # two equal channels: ties in the channel maximum
    grad = torch.randn_like(x)
    block = randomize(CBAM(6, 2, 3)).double()
    fused = gradients(block, x, grad)
    block.fused = False
    plain = gradients(block, x, grad)
    for got, want in zip(fused, plain, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("trainable", ["input", "parameters"])
def test_fused_backward_when_only_some_inputs_need_gradients(trainable):
    torch.manual_seed(17)
    block = randomize(CBAM(8, 2, 3)).double()
    block.requires_grad_(trainable == "parameters")
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64, requires_grad=trainable == "input")
    grad = torch.randn_like(x)
    out = block(x)
    assert type(out.grad_fn).__name__ == "_FusedChannelFirstBackward"
    out.backward(grad)
    fused = [x.grad] + [p.grad for p in block.parameters()]
    block.fused = False
    x2 = x.detach().clone().requires_grad_(x.requires_grad)
    block.zero_grad(set_to_none=True)
    block(x2).backward(grad)
    plain = [x2.grad] + [p.grad for p in block.parameters()]
    for got, want in zip(fused, plain, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want)


def test_backward_can_run_twice_with_retain_graph():
    torch.manual_seed(18)
    block = CBAM(8, 2, 3).double()
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    out = block(x)
    out.sum().backward(retain_graph=True)
    first = x.grad.clone()
    out.sum().backward()
    torch.testing.assert_close(x.grad, 2 * first)


def test_double_backward_through_every_path():
    """A backward with create_graph=True takes the plain code's gradient, also on the fused
    path (tests/test_ecosystem.py checks it above the fused path's size threshold)."""
    torch.manual_seed(19)
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    block = randomize(CBAM(8, 2, 3, fused=False)).double()
    assert torch.autograd.gradgradcheck(block, (x,), fast_mode=True)
    second = []
    for fused in (False, True):
        block.fused = fused
        (grad,) = torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
        second.append(torch.autograd.grad(grad.square().sum(), x)[0])
    torch.testing.assert_close(*second)
    assert torch.autograd.gradgradcheck(block, (x,), fast_mode=True)


def test_torch_func_transforms_see_the_plain_computation():
    """vmap and grad from torch.func cannot run hand-written autograd Functions."""
    torch.manual_seed(26)
    block = randomize(CBAM(8, 2, 3)).double()
    x = torch.randn(3, 8, 4, 5, dtype=torch.float64)
    params = dict(block.named_parameters())

    def loss(p, sample):
        return torch.func.functional_call(block, p, (sample[None],)).square().sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, x)
    for i in range(x.shape[0]):
        block.zero_grad(set_to_none=True)
        loss(params, x[i]).backward()
        for name, p in block.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad)


# ---------------------------------------------------------------------------------------------
# Precision, memory format, compile, CUDA


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_low_precision_on_cpu(dtype, grad):
    torch.manual_seed(20)
    block = randomize(CBAM(16, 4))
    x = torch.randn(2, 16, 6, 6)
    expected = cbam_reference(x, block)
    low = CBAM(16, 4).to(dtype)
    low.load_state_dict(block.state_dict())
    x_low = x.to(dtype).requires_grad_(grad)
    try:
        with torch.set_grad_enabled(grad):
            out = low(x_low)
            if grad:
                out.backward(torch.ones_like(out))
    except (RuntimeError, NotImplementedError) as error:  # only a missing kernel may skip
        if "not implemented" not in str(error).lower():
            raise
        pytest.skip(f"torch {torch.__version__} has no CPU {dtype} kernel: {error}")
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.02)
    if grad:
        assert x_low.grad.dtype == dtype and torch.isfinite(x_low.grad).all()


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_channels_last_input_gives_the_same_values_and_keeps_its_layout(arrangement):
    torch.manual_seed(21)
    block = randomize(CBAM(16, 4, arrangement=arrangement))
    x = torch.randn(2, 16, 5, 7)
    x_last = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, out = block(x), block(x_last)
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last)

    grad = torch.randn_like(x)
    expected_grads = gradients(block, x, grad)
    got_grads = gradients(block, x_last, grad.contiguous(memory_format=torch.channels_last))
    for got, want in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("fused", [True, False], ids=["C kernel", "inductor's code"])
def test_torch_compile_gives_the_same_output(fused):
    torch.manual_seed(22)
    block = randomize(CBAM(16, 4, 5, fused=fused)).eval()
    x = torch.randn(2, 16, 6, 7)
    compiled = torch.compile(block, dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), block(x), rtol=1e-4, atol=1e-5)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_cuda_matches_cpu(arrangement):
    torch.manual_seed(23)
    block = randomize(CBAM(32, 4, arrangement=arrangement))
    x = torch.randn(2, 32, 9, 7)
    grad = torch.randn_like(x)
    expected = gradients(block, x, grad)
    with torch.no_grad():
        expected_out = block(x)
    block.cuda()
    with torch.no_grad():
        torch.testing.assert_close(block(x.cuda()).cpu(), expected_out, rtol=1e-4, atol=1e-5)
    got = gradients(block, x.cuda(), grad.cuda())
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g.cpu(), e, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_cuda_fused_backward_equals_the_plain_one():
    torch.manual_seed(24)
    block = randomize(CBAM(16, 4, batch_norm=True)).double().cuda()
    x = torch.randn(2, 16, 6, 5, dtype=torch.float64, device="cuda")
    grad = torch.randn_like(x)
    fused = gradients(block, x, grad)
    block.fused = False
    plain = gradients(block, x, grad)
    for got, want in zip(fused, plain, strict=True):
        torch.testing.assert_close(got, want)


# ---------------------------------------------------------------------------------------------
# The benchmark's baseline and command line (timings are the benchmark's job, not the tests')


@pytest.mark.parametrize("bias", [True, False])
def test_naive_baseline_computes_what_cbam_computes(bias):
    from cbam.bench import NaiveCBAM

    torch.manual_seed(25)
    block = randomize(CBAM(32, bias=bias))
    naive = NaiveCBAM.from_cbam(block)
    x = torch.randn(2, 32, 6, 5)
    torch.testing.assert_close(naive(x), block(x))
    torch.testing.assert_close(naive(x), cbam_reference(x, block))


def test_naive_baseline_refuses_a_block_it_cannot_copy():
    from cbam.bench import NaiveCBAM

    with pytest.raises(ValueError, match="kernel_size=7"):
        NaiveCBAM.from_cbam(CBAM(32, kernel_size=3))


def test_bench_command_prints_the_table_and_the_goals(capsys):
    from cbam.bench import main

    assert main(["--shape", "1", "16", "6", "6", "--repeats", "2", "--no-compile"]) == 0
    out = capsys.readouterr().out
    for text in ("x.clone()", "naive", "cbam.CBAM", "goals:", "faster than naive"):
        assert text in out


def test_bench_times_the_compiled_module_against_the_floor(capsys):
    from cbam.bench import main

    assert main(["--shape", "1", "16", "6", "6", "--repeats", "2", "--block", "2"]) == 0
    out = capsys.readouterr().out
    floor = out.split("against the memory floor")[1]
    for text in ("x.clone()", "cbam.CBAM compiled", "compiled forward <= 2.5x x.clone()"):
        assert text in floor
    assert "rounds of 2 calls each" in out


@pytest.mark.parametrize("option", ["--repeats", "--block"])
def test_bench_command_rejects_a_count_below_one(option, capsys):
    from cbam.bench import main

    with pytest.raises(SystemExit) as exit_info:
        main([option, "0"])
    assert exit_info.value.code == 2
    assert f"{option} must be >= 1, got 0" in capsys.readouterr().err


def test_bench_command_rejects_a_bad_shape(capsys):
    from cbam.bench import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--shape", "1", "8", "6", "6"])
    assert exit_info.value.code == 2
    assert "C >= 16" in capsys.readouterr().err


def test_package_exports():
    assert cbam.CBAM is CBAM and cbam.record_attention is not None
