"""Checks for lesson 04: attention inside a residual bottleneck, and Table 4 by counting.

The bottleneck is compared with the residual computation written out from the learner's own
layers (conv1 ... bn3, downsample), with the attention module placed where the paper puts it:
after the last BatchNorm, before the addition. Table 4 is compared with the paper's rounded
numbers; when a row is off, the learner's networks are inspected (stride placement, MLP biases,
which attention) and their counting function is compared with ``cbam.counting``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cbam import counting, resnet, table4
from cbam.attention import CBAM, ChannelAttention, SpatialAttention
from cbam.checks.own_work import OwnWork
from cbam.checks.report import (
    CheckFailed,
    expect_shape,
    run_seeded_checks,
    tensors_close,
)
from cbam.counting import count_macs, count_params
from cbam.table4 import PAPER_TABLE4, PaperRow

SEED = 0
ATOL, RTOL = 1e-5, 1e-4
LAYERS = ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3")
# The block may hold any of cbam's modules (the factory hands it a cbam.CBAM); the networks of
# table4 are cbam's ResNets. What is the learner's to write: the bottleneck, and the counting.
OWN_BLOCK = OwnWork("Bottleneck", (resnet.Bottleneck,))
OWN_COUNT = OwnWork("count", (counting.count_params, counting.count_macs, counting.macs_by_module,
                              counting._count_flops, table4.table4_rows))

# ---------------------------------------------------------------------------------------------
# check_attention_block


class _Factory:
    """An attention factory that remembers the widths it was asked for."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, channels: int) -> nn.Module:
        self.calls.append(channels)
        return CBAM(channels)


def _randomise_batch_norms(block: nn.Module) -> None:
    """BatchNorms with non-trivial statistics, so that "before bn3" and "after bn3" differ."""
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 1.5)


STORED_FACTORY = ("self.attention is the factory itself, not a module: call it with the "
                  "block's output channel count, attention(planes * self.expansion)")


def _expect_module(block: nn.Module, factory: object) -> None:
    """self.attention is a module; when it is not, say which case went wrong."""
    attention = block.attention
    if isinstance(attention, nn.Module):
        return
    if factory is not None and attention is factory:
        raise CheckFailed(STORED_FACTORY)
    if factory is None:
        kind = "None" if attention is None else "a " + type(attention).__name__
        raise CheckFailed(f"self.attention is {kind}, not an nn.Module: with attention=None use "
                          "nn.Identity()")
    # The check's factory is a private class: its name would mean nothing to the learner.
    kind = "None" if attention is None else "not an nn.Module"
    raise CheckFailed(f"self.attention is {kind}: set it to the module the factory builds, "
                      "attention(planes * self.expansion)")


def _construct(Bottleneck: type, *args, **kwargs) -> nn.Module:
    """``Bottleneck(*args, **kwargs)``; a factory assigned over a module already set under
    .attention makes nn.Module raise a TypeError naming the check's class: say what it means."""
    try:
        return Bottleneck(*args, **kwargs)
    except TypeError as error:
        if "as child module 'attention'" in str(error) and kwargs.get("attention") is not None:
            raise CheckFailed(STORED_FACTORY) from None
        raise


def _build_block(Bottleneck: type, *args, **kwargs) -> nn.Module:
    block = _construct(Bottleneck, *args, **kwargs)
    if not isinstance(block, nn.Module):
        raise CheckFailed(f"Bottleneck(...) gave a {type(block).__name__}; keep it an nn.Module")
    missing = [name for name in (*LAYERS, "attention") if not hasattr(block, name)]
    if missing == ["attention"]:
        raise CheckFailed("the block has no .attention: set self.attention in __init__ "
                          "(nn.Identity() when attention is None)")
    if missing:
        raise CheckFailed(f"the block lacks {', '.join(missing)}: keep the skeleton's layers")
    _expect_module(block, kwargs.get("attention"))
    _randomise_batch_norms(block)
    return block.eval()


def _branch(block: nn.Module, x: torch.Tensor, attention_before_bn3: bool = False) -> torch.Tensor:
    """The residual branch up to (and including) bn3, from the learner's own layers."""
    out = F.relu(block.bn1(block.conv1(x)))
    out = F.relu(block.bn2(block.conv2(out)))
    out = block.conv3(out)
    if attention_before_bn3:
        out = block.attention(out)
    return block.bn3(out)


def _shortcut(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    downsample = getattr(block, "downsample", None)
    return x if downsample is None else downsample(x)


def _placements(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    """The right output, and (output, hint) for the usual wrong placements of the attention."""
    att = block.attention
    branch, shortcut = _branch(block, x), _shortcut(block, x)
    right = F.relu(att(branch) + shortcut)
    wrong = [
        (F.relu(branch + shortcut), "the attention module is never applied in forward: call "
                                    "self.attention on the output of bn3"),
        (F.relu(att(branch + shortcut)), "attention is applied after the residual add: it must "
                                         "refine the residual branch alone, before out + shortcut"),
        (att(F.relu(branch + shortcut)), "attention is applied after the residual add and ReLU: "
                                         "apply it to bn3's output, before out + shortcut"),
        (F.relu(_branch(block, x, attention_before_bn3=True) + shortcut),
         "attention is applied before bn3: apply it to the output of the last BatchNorm"),
        (F.relu(branch + att(shortcut)), "attention was applied to the shortcut: apply it to the "
                                         "residual branch (bn3's output)"),
        (att(branch) + shortcut, "the final ReLU is missing: return relu(out + shortcut)"),
    ]
    return right, wrong


def _expect_block_output(block: nn.Module, x: torch.Tensor, expected_shape: tuple) -> None:
    with torch.no_grad():
        out = block(x.clone())
        expect_shape(out, expected_shape, "the block's output")
        right, wrong = _placements(block, x)
        if tensors_close(out, right):
            return
        for candidate, hint in wrong:
            if tensors_close(out, candidate):
                raise CheckFailed(hint)
    raise CheckFailed("the output has the right shape but differs from "
                      "relu(attention(bn3(...)) + shortcut)")


def _expect_width(factory: _Factory, planes: int, expansion: int) -> None:
    width = planes * expansion
    if factory.calls == [width]:
        return
    if factory.calls == [planes]:
        raise CheckFailed(f"attention was built for planes = {planes} channels, but bn3's output "
                          f"has planes * expansion = {width}: pass planes * self.expansion")
    if not factory.calls:
        raise CheckFailed("the attention factory was never called: it is a function of the "
                          "channel count, so build the module with "
                          "attention(planes * self.expansion)")
    raise CheckFailed(f"attention was built for {factory.calls} channels, expected one call "
                      f"for planes * expansion = {width}")


def _check_plain(Bottleneck: type) -> None:
    block = _build_block(Bottleneck, 64, 16)
    probe = torch.randn(2, 64, 8, 8)
    if not torch.equal(block.attention(probe), probe):
        raise CheckFailed("with attention=None, self.attention should leave its input unchanged "
                          "(nn.Identity())")
    _expect_block_output(block, torch.randn(2, 64, 8, 8), (2, 64, 8, 8))


def _check_width(Bottleneck: type) -> None:
    factory = _Factory()
    block = _construct(Bottleneck, 64, 16, attention=factory)
    if getattr(block, "attention", None) is factory:
        raise CheckFailed(STORED_FACTORY)
    _expect_width(factory, 16, getattr(Bottleneck, "expansion", 4))
    if not isinstance(getattr(block, "attention", None), CBAM):
        raise CheckFailed("self.attention is not the module the factory returned: keep "
                          "self.attention = attention(planes * self.expansion)")


def _check_placement(Bottleneck: type, downsampling: bool) -> None:
    factory = _Factory()
    if downsampling:
        downsample = nn.Sequential(nn.Conv2d(64, 128, 1, stride=2, bias=False),
                                   nn.BatchNorm2d(128))
        block = _build_block(Bottleneck, 64, 32, 2, downsample, attention=factory)
        _expect_width(factory, 32, getattr(Bottleneck, "expansion", 4))
        _expect_block_output(block, torch.randn(2, 64, 8, 8), (2, 128, 4, 4))
    else:
        block = _build_block(Bottleneck, 64, 16, attention=factory)
        _expect_width(factory, 16, getattr(Bottleneck, "expansion", 4))
        _expect_block_output(block, torch.randn(2, 64, 8, 8), (2, 64, 8, 8))


def check_attention_block(Bottleneck: type) -> bool:
    """Lesson 04, exercise "attention-block": a Bottleneck with an ``.attention`` slot."""
    return run_seeded_checks("attention-block", [
        ("without attention, .attention is an identity and the block is a plain bottleneck",
         lambda: _check_plain(Bottleneck)),
        ("attention is built for planes * expansion channels",
         lambda: _check_width(Bottleneck)),
        ("attention refines bn3's output, before the residual add",
         lambda: _check_placement(Bottleneck, downsampling=False)),
        ("a downsampling block (stride 2, projected shortcut) does the same",
         lambda: _check_placement(Bottleneck, downsampling=True)),
    ], own=(Bottleneck, OWN_BLOCK))


# ---------------------------------------------------------------------------------------------
# check_table4

TOY_INPUT = (2, 3, 16, 16)


def _toy() -> nn.Sequential:
    """A convolution with a bias, a BatchNorm (buffers!), pooling and a linear layer."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def _pair(result: object) -> tuple:
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise CheckFailed(f"count returned {type(result).__name__} {result!r}; return a pair "
                          "(parameters, MACs)")
    return tuple(result)


def _whole(number: object) -> bool:
    return isinstance(number, int) and not isinstance(number, bool)


def _expect_ints(params: object, macs: object) -> None:
    """The exercise asks for a pair of ints; a float (flops / 2) is refused with what it was."""
    for what, value in (("parameters", params), ("MACs", macs)):
        if _whole(value):
            continue
        kind = type(value).__name__
        raise CheckFailed(f"the {what} count is a {kind} ({value!r}); count returns a pair of "
                          "ints: use // (flops // 2, not flops / 2) and int(...) for tensors")


def _explain_params(got: object, model: nn.Module) -> None:
    expected = count_params(model)
    if got == expected:
        return
    buffers = sum(b.numel() for b in model.buffers())
    if got == expected + buffers:
        raise CheckFailed("counted buffers (BatchNorm's running statistics) as parameters: "
                          "sum p.numel() over model.parameters() only")
    if isinstance(got, float) and abs(got * 1e6 - expected) < 1:
        raise CheckFailed("returned millions; return the plain number of parameters")
    raise CheckFailed(f"counted {got!r} parameters, expected {expected}")


def _explain_macs(got: object, expected: int, model: nn.Module, input_size: tuple) -> None:
    if got == expected:
        return
    if got == 2 * expected:
        raise CheckFailed("counted FLOPs, 2 per multiply-accumulate: the paper's 'GFLOPs' are "
                          "MACs, so halve FlopCounterMode's total")
    if isinstance(got, float) and abs(got * 1e9 - expected) < 1:
        raise CheckFailed("returned billions; return the plain number of MACs")
    if input_size != (1, 3, 224, 224) and got in (count_macs(model), 2 * count_macs(model)):
        raise CheckFailed("counted a 1x3x224x224 input whatever input_size was: build the input "
                          "with torch.zeros(input_size, ...)")
    raise CheckFailed(f"counted {got!r} MACs, expected {expected}")


def _check_count(count: Callable, on_meta: bool) -> None:
    if on_meta:
        with torch.device("meta"):
            model = _toy()
    else:
        model = _toy()
    try:
        params, macs = _pair(count(model, TOY_INPUT))
    except (CheckFailed, NotImplementedError):
        raise
    except Exception as error:
        if not on_meta:
            raise
        raise CheckFailed(
            f"raised {type(error).__name__} on a meta-device model: create the input on the "
            "model's device, torch.zeros(input_size, device=next(model.parameters()).device)"
        ) from error
    _explain_params(params, model)
    _explain_macs(macs, count_macs(model, TOY_INPUT), model, TOY_INPUT)
    _expect_ints(params, macs)


def _models(table4_models: Callable) -> dict:
    models = table4_models()
    names = [row.model for row in PAPER_TABLE4]
    if not isinstance(models, dict) or sorted(models) != sorted(names):
        got = sorted(models) if isinstance(models, dict) else type(models).__name__
        raise CheckFailed(f"table4_models() should return a dict with the keys {names}, got {got}")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise CheckFailed(f"table4_models()[{name!r}] is a {type(model).__name__}, "
                              "not an nn.Module")
    return models


def _explain_network(model: nn.Module, row: PaperRow) -> None:
    """Say what differs in a network whose counts are not the paper's."""
    if any(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (2, 2)
           for m in model.modules()):
        raise CheckFailed("the stride 2 sits in the 3x3 convolutions (torchvision's v1.5, "
                          "~4.09 GFLOPs); the paper counted ResNet v1: stride_in='1x1'")
    channel = [m for m in model.modules() if isinstance(m, ChannelAttention)]
    spatial = [m for m in model.modules() if isinstance(m, SpatialAttention)]
    if row.attention is None and (channel or spatial):
        raise CheckFailed("the plain ResNet-50 has attention modules: build it with attention=None")
    if row.attention is not None and not channel:
        raise CheckFailed(f"no attention module in the blocks: build it with "
                          f"attention={row.attention!r}")
    if row.attention == "se" and spatial:
        raise CheckFailed("the SE network has spatial attention: build it with attention='se'")
    if row.attention == "cbam" and not spatial:
        raise CheckFailed("the CBAM network has no spatial attention (that is SE's count): "
                          "build it with attention='cbam'")
    if any(m.mlp[0].bias is None for m in channel):
        raise CheckFailed("the attention MLPs have no biases; the paper's counts include them")
    if any(m.hidden_channels != max(m.channels // 16, 1) for m in channel):
        raise CheckFailed("the reduction ratio is not the paper's r = 16")


def _explain_counting(got_params: object, got_macs: object, model: nn.Module,
                      row: PaperRow) -> None:
    """Name a counting slip from the numbers alone, without counting the network again."""
    buffers = sum(b.numel() for b in model.buffers())
    if isinstance(got_params, int) and round((got_params - buffers) / 1e6, 2) == row.params_m:
        raise CheckFailed("counted buffers (BatchNorm's running statistics) as parameters: "
                          "sum p.numel() over model.parameters() only")
    if isinstance(got_macs, int | float) and round(got_macs / 2e9, 3) == row.gflops:
        raise CheckFailed("counted FLOPs, 2 per multiply-accumulate: the paper's 'GFLOPs' are "
                          "MACs, so halve FlopCounterMode's total")
    if isinstance(got_macs, float) and round(got_macs, 3) == row.gflops:
        raise CheckFailed("returned billions; return the plain number of MACs")


def _check_row(count: Callable, models: Callable[[], dict], row: PaperRow) -> None:
    model = models()[row.model].to("meta")  # shapes are all that counting needs
    got_params, got_macs = _pair(count(model))
    rounded = (round(got_params / 1e6, 2), round(got_macs / 1e9, 3))
    if rounded == (row.params_m, row.gflops):
        _expect_ints(got_params, got_macs)
        return
    # Off: a counting slip the numbers show, what the network's structure shows, and only then
    # the network counted by cbam.counting (the slow way) against the learner's counting.
    _explain_counting(got_params, got_macs, model, row)
    _explain_network(model, row)
    params, macs = count_params(model), count_macs(model)
    if (round(params / 1e6, 2), round(macs / 1e9, 3)) != (row.params_m, row.gflops):
        raise CheckFailed(f"the network counts {params / 1e6:.2f} M parameters and "
                          f"{macs / 1e9:.3f} GMACs; the paper has {row.params_m:.2f} M and "
                          f"{row.gflops:.3f}")
    _explain_params(got_params, model)
    _explain_macs(got_macs, macs, model, (1, 3, 224, 224))


def check_table4(count: Callable, table4_models: Callable) -> bool:
    """Lesson 04, exercise "table4": ``count(model, input_size)`` and ``table4_models()``."""
    built: dict = {}

    def models() -> dict:
        # Built once for all rows; a failure is not kept, so each row reports it.
        if "models" not in built:
            built["models"] = _models(table4_models)
        return built["models"]

    checks = [
        ("count gives the parameters and MACs of a small network",
         lambda: _check_count(count, on_meta=False)),
        ("count works on a model on the meta device", lambda: _check_count(count, on_meta=True)),
        ("table4_models() gives the three networks", models),
    ]
    checks += [
        (f"{row.model}: {row.params_m:.2f} M parameters, {row.gflops:.3f} GFLOPs as in the paper",
         lambda row=row: _check_row(count, models, row))
        for row in PAPER_TABLE4
    ]
    return run_seeded_checks("table4", checks, own=(count, OWN_COUNT))
