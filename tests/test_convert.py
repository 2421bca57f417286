"""cbam.convert: weights of timm's CbamModule and of the authors' CBAM, loaded into cbam.CBAM.

Each implementation's forward pass is written out below from its published code (timm's
timm/layers/cbam.py, the authors' MODELS/cbam.py in Jongchan/attention-module), over a state
dict with its key names, so the conversion is checked without either package or a network.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cbam
from cbam import convert


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)  # the inputs, so that a failure repeats


# --- timm's CbamModule, written out --------------------------------------------------------------


def timm_hidden(channels: int, ratio: float = 1 / 16) -> int:
    """make_divisible(channels * ratio, 1, round_limit=0): to the nearest, at least 1."""
    return max(1, int(channels * ratio + 0.5))


def timm_state(channels: int, kernel_size: int = 7, mlp_bias: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = timm_hidden(channels)
    state = {
        "channel.fc1.weight": torch.randn(hidden, channels, 1, 1, generator=g),
        "channel.fc2.weight": torch.randn(channels, hidden, 1, 1, generator=g),
        "spatial.conv.conv.weight": torch.randn(1, 2, kernel_size, kernel_size, generator=g),
        "spatial.conv.bn.weight": torch.rand(1, generator=g) + 0.5,
        "spatial.conv.bn.bias": torch.randn(1, generator=g),
        "spatial.conv.bn.running_mean": torch.randn(1, generator=g),
        "spatial.conv.bn.running_var": torch.rand(1, generator=g) + 0.5,
        "spatial.conv.bn.num_batches_tracked": torch.tensor(7),
    }
    if mlp_bias:
        state["channel.fc1.bias"] = torch.randn(hidden, generator=g)
        state["channel.fc2.bias"] = torch.randn(channels, generator=g)
    return state


def timm_forward(state, x, training=False):
    """CbamModule.forward: ChannelAttn (mean and amax, each through fc1-ReLU-fc2, summed,
    sigmoid), then SpatialAttn ([mean, amax] over channels, ConvNormAct without activation)."""

    def mlp(pooled):
        fc1 = state["channel.fc1.weight"], state.get("channel.fc1.bias")
        hidden = F.relu(F.conv2d(pooled, *fc1))
        return F.conv2d(hidden, state["channel.fc2.weight"], state.get("channel.fc2.bias"))

    x = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
    weight = state["spatial.conv.conv.weight"]
    logits = F.batch_norm(
        F.conv2d(pooled, weight, padding=weight.shape[-1] // 2),
        state["spatial.conv.bn.running_mean"],
        state["spatial.conv.bn.running_var"],
        state["spatial.conv.bn.weight"],
        state["spatial.conv.bn.bias"],
        training=training,
        momentum=0.1,
        eps=1e-5,
    )
    return x * torch.sigmoid(logits)


# --- the authors' CBAM, written out --------------------------------------------------------------


def authors_state(channels: int, reduction: int = 16, spatial: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = channels // reduction
    state = {
        "ChannelGate.mlp.1.weight": torch.randn(hidden, channels, generator=g),
        "ChannelGate.mlp.1.bias": torch.randn(hidden, generator=g),
        "ChannelGate.mlp.3.weight": torch.randn(channels, hidden, generator=g),
        "ChannelGate.mlp.3.bias": torch.randn(channels, generator=g),
    }
    if spatial:
        state |= {
            "SpatialGate.spatial.conv.weight": torch.randn(1, 2, 7, 7, generator=g),
            "SpatialGate.spatial.bn.weight": torch.rand(1, generator=g) + 0.5,
            "SpatialGate.spatial.bn.bias": torch.randn(1, generator=g),
            "SpatialGate.spatial.bn.running_mean": torch.randn(1, generator=g),
            "SpatialGate.spatial.bn.running_var": torch.rand(1, generator=g) + 0.5,
            "SpatialGate.spatial.bn.num_batches_tracked": torch.tensor(3),
        }
    return state


def authors_forward(state, x, pool_types=("avg", "max"), training=False):
    """CBAM.forward: ChannelGate (each pooling through Flatten-Linear-ReLU-Linear, summed,
    sigmoid), then SpatialGate (ChannelPool's [max, mean], BasicConv: conv, BatchNorm with
    momentum 0.01, no ReLU; sigmoid)."""
    size = x.shape[2:]
    pools = {
        "avg": lambda: F.avg_pool2d(x, size, stride=size),
        "max": lambda: F.max_pool2d(x, size, stride=size),
        "lp": lambda: F.lp_pool2d(x, 2, size, stride=size),
        "lse": lambda: torch.logsumexp(x.flatten(2), dim=2, keepdim=True),
    }

    def mlp(pooled):
        hidden = F.relu(F.linear(pooled.flatten(1), *_pair(state, "ChannelGate.mlp.1")))
        return F.linear(hidden, *_pair(state, "ChannelGate.mlp.3"))

    x = x * torch.sigmoid(sum(mlp(pools[p]()) for p in pool_types))[:, :, None, None]
    if "SpatialGate.spatial.conv.weight" not in state:
        return x
    compressed = torch.cat([torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)], 1)
    logits = F.batch_norm(
        F.conv2d(compressed, state["SpatialGate.spatial.conv.weight"], padding=3),
        state["SpatialGate.spatial.bn.running_mean"],
        state["SpatialGate.spatial.bn.running_var"],
        state["SpatialGate.spatial.bn.weight"],
        state["SpatialGate.spatial.bn.bias"],
        training=training,
        momentum=0.01,
        eps=1e-5,
    )
    return x * torch.sigmoid(logits)


def _pair(state, name):
    return state[f"{name}.weight"], state[f"{name}.bias"]


def clone(state):
    return {k: v.clone() for k, v in state.items()}


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [16, 24, 64, 72])
@pytest.mark.parametrize("mlp_bias", [False, True])
def test_timm_weights_give_timms_outputs(channels, mlp_bias):
    state = timm_state(channels, mlp_bias=mlp_bias)
    block = convert.from_timm(clone(state)).eval()
    assert block.channel.hidden_channels == timm_hidden(channels)
    x = torch.randn(3, channels, 9, 11)
    torch.testing.assert_close(block(x), timm_forward(state, x))


def test_timm_hidden_widths_differ_from_the_floor_at_24_and_72():
    widths = {c: convert.from_timm(timm_state(c)).channel.hidden_channels for c in (24, 64, 72)}
    assert widths == {24: 2, 64: 4, 72: 5}
    assert [cbam.CBAM(c).channel.hidden_channels for c in (24, 64, 72)] == [1, 4, 4]


def test_timm_weights_train_as_in_timm():
    state = timm_state(32, kernel_size=3)
    block = convert.from_timm(clone(state)).train()
    x = torch.randn(4, 32, 6, 6)
    torch.testing.assert_close(block(x), timm_forward(state, x, training=True))
    torch.testing.assert_close(block.spatial.bn.running_mean, state["spatial.conv.bn.running_mean"])
    torch.testing.assert_close(block.spatial.bn.running_var, state["spatial.conv.bn.running_var"])


@pytest.mark.parametrize(
    "pool_types", [("avg", "max"), ("max", "avg"), ("avg",), ("avg", "max", "lp"), ("lse",)]
)
def test_the_authors_weights_give_their_outputs(pool_types):
    # In float64: F.lp_pool2d sums squares as an average times the count, which rounds
    # differently in float32 from the sum it equals.
    state = {k: v.double() for k, v in authors_state(64).items()}
    block = convert.from_authors(clone(state), pool_types=pool_types).eval()
    x = torch.randn(3, 64, 9, 11, dtype=torch.float64)
    torch.testing.assert_close(block(x), authors_forward(state, x, pool_types))


def test_the_authors_pooling_order_is_undone_by_swapping_the_conv_inputs():
    state = authors_state(32)
    block = convert.from_authors(clone(state))
    conv = state["SpatialGate.spatial.conv.weight"]
    assert torch.equal(block.spatial.conv.weight[:, 0], conv[:, 1])  # mean
    assert torch.equal(block.spatial.conv.weight[:, 1], conv[:, 0])  # max


def test_the_authors_weights_train_as_in_their_code():
    """Training mode: batch statistics in the output, and running statistics moved by their
    momentum of 0.01."""
    state = authors_state(32)
    block = convert.from_authors(clone(state)).train()
    assert block.spatial.bn.momentum == 0.01
    x = torch.randn(4, 32, 6, 6)
    torch.testing.assert_close(block(x), authors_forward(state, x, training=True))
    for name in ("running_mean", "running_var"):
        moved = getattr(block.spatial.bn, name)
        torch.testing.assert_close(moved, state[f"SpatialGate.spatial.bn.{name}"])
        assert not torch.equal(moved, authors_state(32)[f"SpatialGate.spatial.bn.{name}"])


def test_the_authors_block_without_spatial_gate():
    state = authors_state(32, spatial=False)
    block = convert.from_authors(clone(state)).eval()
    assert block.spatial is None
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(block(x), authors_forward(state, x))


def test_a_block_is_found_in_a_networks_state_by_its_prefix():
    network = {f"layer1.0.cbam.{k}": v for k, v in authors_state(32).items()}
    network["layer1.0.conv1.weight"] = torch.randn(32, 32, 3, 3)
    block = convert.from_authors(network, prefix="layer1.0.cbam.").eval()
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(block(x), authors_forward(authors_state(32), x))


def test_converted_weights_keep_their_dtype():
    state = {k: v.double() if v.is_floating_point() else v for k, v in timm_state(32).items()}
    block = convert.from_timm(state)
    assert {p.dtype for p in block.parameters()} == {torch.float64}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: convert.from_timm(authors_state(32)), "key 'channel.fc1.weight'"),
        (lambda: convert.from_authors(timm_state(32)), "key 'ChannelGate.mlp.1.weight'"),
        (
            lambda: convert.from_timm({**timm_state(32), "channel.extra": torch.ones(1)}),
            "9 entries and 8 were converted",
        ),
        (
            lambda: convert.from_authors(
                {k: v for k, v in authors_state(32).items() if not k.endswith("mlp.3.bias")}
            ),
            "lacks 'ChannelGate.mlp.3.bias'",
        ),
        (lambda: convert.from_timm([1, 2]), "expected a state dict .* got list"),
    ],
    ids=["timm given the authors'", "authors' given timm's", "unknown key", "missing", "a list"],
)
def test_a_state_from_elsewhere_is_refused_with_what_came(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_against_timm_itself_where_it_imports():
    try:
        from timm.layers import CbamModule
    except ImportError as error:  # timm imports torchvision, which a CPU-only torch may lack
        pytest.skip(f"timm does not import here: {error}")
    torch.manual_seed(0)
    for channels in (24, 64, 72):
        theirs = CbamModule(channels).eval()
        with torch.no_grad():
            for p in theirs.parameters():
                p.normal_()
        ours = convert.from_timm(theirs).eval()
        x = torch.randn(2, channels, 7, 7)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x))
            torch.testing.assert_close(ours(x), timm_forward(theirs.state_dict(), x))
