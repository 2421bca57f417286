"""The successors against their papers' equations written out element by element."""

from __future__ import annotations

import pytest
import torch

import cbam
from cbam.successors import (
    CoordinateAttention,
    EfficientChannelAttention,
    GlobalContext,
    SimAM,
    eca_kernel_size,
)


def _feature_map(seed: int = 0, shape=(2, 6, 4, 5)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_eca_kernel_size_follows_eq_12():
    # |log2(C)/2 + 1/2| truncated, then the next odd number: ECA-Net's own table of k by C.
    assert [eca_kernel_size(c) for c in (16, 64, 256, 512, 2048)] == [3, 3, 5, 5, 7]
    assert eca_kernel_size(128, gamma=1, b=0) == 7  # log2(128) = 7, odd already


def test_eca_is_a_convolution_across_neighbouring_channels():
    x = _feature_map()
    module = EfficientChannelAttention(6, kernel_size=3).double()
    w = module.conv.weight.detach()[0, 0]
    gap = x.mean(dim=(2, 3))
    expected = torch.empty_like(x)
    for n in range(2):
        for c in range(6):
            # Zero padding at both ends of the channel axis, as Conv1d's padding k // 2.
            total = sum(w[j] * gap[n, c + j - 1] for j in range(3) if 0 <= c + j - 1 < 6)
            expected[n, c] = x[n, c] * torch.sigmoid(total)
    torch.testing.assert_close(module(x), expected)


def test_eca_with_max_sums_the_two_descriptors_before_the_sigmoid():
    x = _feature_map(1)
    module = EfficientChannelAttention(6, pool_types=("avg", "max")).double()
    conv = module.conv
    logits = conv(x.mean(dim=(2, 3))[:, None]) + conv(x.amax(dim=(2, 3))[:, None])
    torch.testing.assert_close(module(x), x * torch.sigmoid(logits[:, 0, :, None, None]))


def test_eca_has_k_weights_and_refuses_an_even_kernel():
    assert sum(p.numel() for p in EfficientChannelAttention(2048).parameters()) == 7
    with pytest.raises(ValueError, match="odd"):
        EfficientChannelAttention(64, kernel_size=4)


def test_simam_weights_each_neuron_by_its_inverse_energy():
    x = _feature_map(2)
    lam = 1e-4
    out = SimAM(6, e_lambda=lam)(x)
    n, c, h, w = x.shape
    for i in range(n):
        for k in range(c):
            values = x[i, k].flatten()
            for p in range(h * w):
                t = values[p]
                # Eq. 5 of the paper, with the other M - 1 neurons' mean and variance (M = HW)
                # replaced as its closed form does by the channel's mean and the M - 1 variance.
                mu = values.mean()
                var = ((values - mu) ** 2).sum() / (h * w - 1)
                energy = 4 * (var + lam) / ((t - mu) ** 2 + 2 * var + 2 * lam)
                expected = t * torch.sigmoid(1 / energy)
                torch.testing.assert_close(out[i, k].flatten()[p], expected)


def test_simam_has_no_parameters_and_needs_two_positions():
    assert list(SimAM(8).parameters()) == []
    with pytest.raises(ValueError, match="H \\* W >= 2"):
        SimAM(8)(torch.randn(1, 8, 1, 1))
    with pytest.raises(ValueError, match="e_lambda"):
        SimAM(8, e_lambda=0)


def test_coordinate_attention_follows_eq_4_to_9():
    x = _feature_map(3)
    module = CoordinateAttention(6, reduction=2, min_mid=3).double().eval()
    n, c, h, w = x.shape
    z_h = x.mean(dim=3)  # Eq. 4: (N, C, H)
    z_w = x.mean(dim=2)  # Eq. 5: (N, C, W)
    conv1, bn, _ = module.shared
    f = torch.nn.functional

    def shared(z):  # F_1, then BatchNorm (running statistics in eval) and hard-swish: Eq. 6
        y = torch.einsum("mc,ncl->nml", conv1.weight[:, :, 0, 0], z) + conv1.bias[:, None]
        y = (y - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps)
        y = y * bn.weight[:, None] + bn.bias[:, None]
        return y * f.relu6(y + 3) / 6

    f_h, f_w = shared(z_h), shared(z_w)
    g_h = torch.sigmoid(
        torch.einsum("cm,nml->ncl", module.conv_h.weight[:, :, 0, 0], f_h)
        + module.conv_h.bias[:, None]
    )  # Eq. 7
    g_w = torch.sigmoid(
        torch.einsum("cm,nml->ncl", module.conv_w.weight[:, :, 0, 0], f_w)
        + module.conv_w.bias[:, None]
    )  # Eq. 8
    expected = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            expected[:, :, i, j] = x[:, :, i, j] * g_h[:, :, i] * g_w[:, :, j]  # Eq. 9
    torch.testing.assert_close(module(x), expected)
    assert module.mid_channels == 3 and CoordinateAttention(64).mid_channels == 8


def test_global_context_adds_one_softmax_pooled_context_everywhere():
    x = _feature_map(4)
    module = GlobalContext(6, reduction=2).double()
    torch.nn.init.normal_(module.transform[-1].weight)  # the zero start would hide the transform
    n, c, h, w = x.shape
    logits = torch.einsum("c,nchw->nhw", module.key.weight[0, :, 0, 0], x) + module.key.bias[0]
    alpha = torch.exp(logits) / torch.exp(logits).sum(dim=(1, 2), keepdim=True)
    context = torch.stack(
        [sum(alpha[i, p, q] * x[i, :, p, q] for p in range(h) for q in range(w)) for i in range(n)]
    )
    first, norm, _, last = module.transform
    hidden = context @ first.weight[:, :, 0, 0].T + first.bias
    hidden = torch.nn.functional.layer_norm(
        hidden, (hidden.shape[1],), norm.weight[:, 0, 0], norm.bias[:, 0, 0], norm.eps
    )
    added = torch.relu(hidden) @ last.weight[:, :, 0, 0].T + last.bias
    torch.testing.assert_close(module(x), x + added[:, :, None, None])
    torch.testing.assert_close(module.attention(x).sum(dim=(2, 3)), torch.ones(n, 1).double())


def test_a_new_global_context_block_is_the_identity():
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(GlobalContext(16)(x), x)


@pytest.mark.parametrize(
    "factory",
    [EfficientChannelAttention, CoordinateAttention, SimAM, GlobalContext],
    ids=lambda f: f.__name__,
)
def test_each_plugs_into_a_resnet_trains_and_names_a_wrong_input(factory):
    model = cbam.resnet_cifar(8, 4, attention=factory, width=16)
    images = torch.randn(3, 3, 16, 16)
    loss = torch.nn.functional.cross_entropy(model(images), torch.tensor([0, 1, 2]))
    loss.backward()
    grads = [p.grad for name, p in model.named_parameters() if ".attention." in name]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with cbam.record_attention(model) as maps:
        model(images)
    assert len(maps) in (3, 6) and all(len(v) == 1 for v in maps.values())
    with pytest.raises(ValueError, match="16"):
        factory(16)(torch.randn(1, 8, 4, 4))


def test_record_attention_names_both_coordinate_maps():
    model = cbam.resnet_cifar(8, 4, attention=CoordinateAttention, width=16)
    with cbam.record_attention(model) as maps:
        model(torch.randn(2, 3, 16, 16))
    assert maps["layer2.0.attention.gate_h"][0].shape == (2, 32, 8, 1)
    assert maps["layer2.0.attention.gate_w"][0].shape == (2, 32, 1, 8)
    g_h = maps["layer1.0.attention.gate_h"][0]
    assert 0 < float(g_h.min()) and float(g_h.max()) < 1


def test_costs_count_what_table_4_counts():
    """SE on a ResNet-50 adds what the paper's Table 4 says: 28.09 M against 25.56 M params."""
    from cbam.resnet import resnet50
    from cbam.successors.cost import PAPER_SETTINGS, costs

    wanted = {name: PAPER_SETTINGS[name] for name in ("baseline", "se", "simam")}
    rows = {row.name: row for row in costs(lambda f: resnet50(attention=f), wanted, (1, 3, 64, 64))}
    assert round(rows["baseline"].params / 1e6, 2) == 25.56
    assert round(rows["se"].params / 1e6, 2) == 28.09
    assert rows["simam"].params == rows["baseline"].params  # no parameters
    assert rows["simam"].macs == rows["baseline"].macs  # elementwise work is not counted
    assert rows["se"].forward is None and rows["se"].training is None  # not timed


def test_costs_time_each_network_against_the_plain_one():
    from cbam.successors.cost import costs, format_costs

    factories = {"baseline": None, "eca": EfficientChannelAttention, "gc": GlobalContext}
    rows = costs(lambda f: cbam.resnet_cifar(8, 4, attention=f, width=16), factories,
                 (4, 3, 16, 16), rounds=3)  # fmt: skip
    base = rows[0]
    assert base.name == "baseline" and base.forward == (1.0, 1.0, 1.0)
    for row in rows[1:]:
        median, low, high = row.training
        assert 0 < low <= median <= high
    table = format_costs(rows)
    assert table.splitlines()[0].split()[0] == "module" and "gc" in table
    with pytest.raises(ValueError, match="baseline"):
        costs(lambda f: cbam.resnet_cifar(8, 4, attention=f), {"eca": None}, (1, 3, 16, 16))


def test_costs_leave_the_callers_random_stream_alone():
    from cbam.successors.cost import costs

    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    costs(lambda f: cbam.resnet_cifar(8, 4, attention=f), {"baseline": None}, (1, 3, 16, 16))
    assert torch.equal(torch.rand(3), expected)
