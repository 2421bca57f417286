# %% [markdown]
# # 04 · CBAM in ResNet
#
# A CBAM block on its own refines one feature map. Its value shows inside a network, where it
# refines the output of every residual block. This lesson places it there, in the one position
# the paper uses, and then reproduces the cost side of the paper's ImageNet table (parameters
# and GFLOPs of ResNet-50, with SE and with CBAM) exactly, by counting rather than training.
#
# The ResNet family comes from the library: `cbam.resnet` builds ResNet-18 to -101 with any
# attention module in its blocks, and `cbam.counting` counts parameters and multiply-accumulates.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cbam
from cbam.counting import count_params, macs_by_module
from cbam.resnet import resnet50
from cbam.table4 import PAPER_TABLE4

_ = torch.manual_seed(0)  # the one seed of this lesson

# %% [markdown]
# ## The idea: refine the residual, not the identity
#
# A residual block computes a correction $\mathcal{F}(x)$ and adds it to its input. CBAM is
# applied to the correction alone, just before the addition:
#
# $$
# y = \operatorname{ReLU}\big(x + \operatorname{CBAM}(\mathcal{F}(x))\big)
# \qquad\text{rather than}\qquad
# y = \operatorname{ReLU}\big(\operatorname{CBAM}(x + \mathcal{F}(x))\big).
# $$
#
# In the first form the identity path $x \to y$ passes no gate at all, so the signal and its
# gradient travel through a deep stack of blocks as freely as in a plain ResNet. The attention
# only decides how much of each block's correction to let through.
#
# In ResNet-50 the block is a *bottleneck*: a $1 \times 1$ convolution reduces the width to
# `planes`, a $3 \times 3$ convolution works at that width, and a last $1 \times 1$ convolution
# expands it by `expansion = 4` back to `planes * 4`, followed by a BatchNorm. CBAM goes after
# that last BatchNorm, so it sees `planes * 4` channels.

# %% [markdown]
# ## Shapes through a bottleneck
#
# Walk one feature map, layer by layer, through a bottleneck of ResNet-50's first stage built by
# the library (`planes = 64`, so the output has 256 channels; this is the second or third block
# of the stage, whose input already has 256 channels):

# %%
block = cbam.resnet.Bottleneck(256, 64, attention="cbam").eval()
x = torch.randn(1, 256, 56, 56)

steps = [("input", x)]
out = block.relu(block.bn1(block.conv1(x)))
steps.append(("1x1 reduce", out))
out = block.relu(block.bn2(block.conv2(out)))
steps.append(("3x3", out))
out = block.bn3(block.conv3(out))
steps.append(("1x1 expand + bn3", out))
out = block.attention(out)
steps.append(("CBAM", out))
out = block.relu(out + x)
steps.append(("+ identity, ReLU", out))

for name, tensor in steps:
    print(f"{name:>17}: {tuple(tensor.shape)}")
print("same as block(x):", torch.allclose(out, block(x)))

# %% [markdown]
# The attention module receives exactly the tensor that is about to be added to the identity:
# 256 channels, the block's full output width. Its channel MLP is therefore
# $256 \to 16 \to 256$, not $64 \to 4 \to 64$.

# %% [markdown]
# ## Exercise `attention-block`: a bottleneck with an attention slot
#
# Below is a ResNet bottleneck with everything but the attention. Fill in the two marked places:
#
# 1. In `__init__`: `attention` is either `None` or a *factory*, a callable that takes a number
#    of channels and returns a module (for example the class `cbam.CBAM` itself, or
#    `cbam.SqueezeExcitation`). Set `self.attention` to `nn.Identity()` when it is `None`, and
#    otherwise to the module the factory builds for the block's output width.
# 2. In `forward`: apply `self.attention` to the output of `bn3`, then add the shortcut and apply
#    the ReLU. Return the result.
#
# **How it is checked.** `check_attention_block` builds your block with and without attention,
# records the width your factory call asks for, and compares the output with the residual
# computation written out from your own layers. It names the usual slips: attention after the
# addition, before `bn3`, on the shortcut, or built for the wrong number of channels.

# %% tags=["exercise"] exercise="attention-block"
class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand, attention on the result, then the residual addition."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, attention=None):
        super().__init__()
        # ResNet v1: a downsampling block puts its stride in the first 1x1 convolution.
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample  # None, or a module that reshapes x like the branch
        ### BEGIN SOLUTION
        if attention is None:
            self.attention = nn.Identity()
        else:
            self.attention = attention(planes * self.expansion)
        ### END SOLUTION

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        ### BEGIN SOLUTION
        out = self.attention(out)
        return self.relu(out + shortcut)
        ### END SOLUTION


# %% tags=["nbval-check-output"] check="attention-block"
from cbam.checks.resnet import check_attention_block

check_attention_block(Bottleneck)

# %% [markdown]
# Your block has the same layers under the same names as the library's, so the library's
# weights load into it and both compute the same function. The library's bottleneck is what the
# ResNets in `cbam.resnet` are built from.

# %%
mine = Bottleneck(256, 64, attention=cbam.CBAM).eval()
mine.load_state_dict(block.state_dict())
print("same output as cbam.resnet.Bottleneck:", torch.allclose(mine(x), block(x), atol=1e-5))

# %% [markdown]
# ## Pitfall: the attention built for `planes` channels
#
# The width inside a bottleneck changes twice, and `planes` is the name at hand. The first commit
# of the authors' code built the attention module with `planes` channels instead of
# `planes * expansion`. The block then hands a 256-channel tensor to a module built for 64.
# With the library's modules the error says so:

# %%
too_narrow = cbam.CBAM(64)  # planes, where planes * expansion = 256 was needed
try:
    too_narrow(torch.randn(1, 256, 14, 14))
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# Code without input checks fails one step later, inside the MLP's first linear layer, with a
# matrix-shape error that mentions neither CBAM nor channels:

# %%
mlp_for_planes = nn.Linear(64, 64 // 16)
pooled = torch.randn(1, 256)  # the average-pooled descriptor of a 256-channel map
try:
    mlp_for_planes(pooled)
except RuntimeError as error:
    print("RuntimeError raised:", "shapes cannot be multiplied" in str(error))

# %% [markdown]
# ## Pitfall: attention after the addition
#
# Moving the attention one line down, after `out + shortcut`, still runs and still trains. It
# changes what the block can represent. A residual block can become the identity by setting its
# correction to zero (a BatchNorm with zero scale does it). With the gate after the addition
# that escape is gone: every block multiplies the whole signal, identity included, by numbers
# below 1.
#
# Build both variants from the library's block, zero the last BatchNorm's scale so that the
# correction vanishes, and stack sixteen of them (ResNet-50 has sixteen bottlenecks; small ones
# are enough here):

# %%
class AttentionAfterAdd(cbam.resnet.Bottleneck):
    """The misplaced variant: the gate multiplies the sum, shortcut included."""

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.attention(out + shortcut))


def stack(block_type):
    blocks = [block_type(64, 16, attention="cbam") for _ in range(16)]
    for b in blocks:
        nn.init.zeros_(b.bn3.weight)  # the residual correction is zero
    return nn.Sequential(*blocks).eval()


features = torch.rand(1, 64, 8, 8)  # non-negative, like the output of a ReLU
with torch.no_grad():
    before = stack(cbam.resnet.Bottleneck)(features)
    after = stack(AttentionAfterAdd)(features)
print("attention before the add, output == input:", torch.equal(before, features))
print("attention after the add,  output == input:", torch.equal(after, features))
print("after the add, norm shrank below 1e-6 of the input:",
      bool(after.norm() < 1e-6 * features.norm()))

# %% [markdown]
# With the gate before the addition, sixteen blocks that have nothing to add pass the input
# through untouched. With the gate after it, each block dims the signal (lesson 03 measured
# what a fresh block passes on), and sixteen of them all but erase it.
#
# Training runs backward through the same products, so the gradients should vanish too. Check
# it rather than assume it: run a backward pass through both stacks, from the sum of the
# output (a gradient of 1 at every output position), and look at what reaches the input and
# the first block's weights. Its only weights with a gradient are the BatchNorm scale
# $\gamma$ just zeroed, the one that lets the block start adding a correction; with
# $\gamma = 0$ nothing reaches the convolutions before it, in either placement.

# %%
def backward_through(block_type):
    """Input gradient, first block's gamma gradient, output gradient of a stack's output sum."""
    net = stack(block_type)
    inputs = features.clone().requires_grad_()
    output = net(inputs)
    output.sum().backward()
    return inputs.grad, net[0].bn3.weight.grad, torch.ones_like(output)


grad_in_before, gamma_before, grad_out = backward_through(cbam.resnet.Bottleneck)
grad_in_after, gamma_after, _ = backward_through(AttentionAfterAdd)
print("attention before the add, input gradient == output gradient:",
      torch.equal(grad_in_before, grad_out))
print("attention after the add,  input gradient below 1e-6 of the output gradient:",
      bool(grad_in_after.norm() < 1e-6 * grad_out.norm()))
print("first block's gamma gradient, after / before the add, below 1e-6:",
      bool(gamma_after.norm() < 1e-6 * gamma_before.norm()))

# %% [markdown]
# Both vanish. With the gate before the addition, the gradient of the output reaches the input
# unchanged, as it does in a plain ResNet, and the first block's $\gamma$ gets a gradient it can
# grow from. With the gate after it, the gradient is multiplied by the gates of all sixteen
# blocks on its way down and arrives at the bottom, input and first block alike, all but erased:
# a deep network built this way starts training with vanishing activations and gradients. (The
# stacks are in eval mode, so that each BatchNorm uses its initial statistics and the forward
# pass is the one printed above; the gates, not the BatchNorms, do the shrinking.)

# %% [markdown]
# ## Counting instead of training: parameters and multiply-accumulates
#
# Table 4 of the paper lists, for ResNet-50 on ImageNet-1K, the number of parameters, the
# "GFLOPs" of one $224 \times 224$ image and the error rates. The first two depend only on the
# architecture, so they can be reproduced exactly by counting.
#
# - **Parameters** are every weight and bias: $\sum_{p} \operatorname{numel}(p)$ over
#   `model.parameters()`. BatchNorm's running mean and variance are *buffers*, not parameters.
# - **GFLOPs** in the paper are in fact billions of *multiply-accumulates* (MACs) in the
#   convolutions and linear layers. A convolution with $C_{in}$ inputs, $C_{out}$ outputs, a
#   $k \times k$ kernel and an $H_{out} \times W_{out}$ output performs
#   $$\text{MACs} = C_{out} \, H_{out} \, W_{out} \, C_{in} \, k^2 .$$
#   BatchNorm, ReLU, pooling and the element-wise products of a gate are not counted.
#
# `torch.utils.flop_counter.FlopCounterMode` counts the matrix products and convolutions that a
# forward pass runs, at **2 FLOPs per multiply-accumulate**:

# %%
conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
with FlopCounterMode(display=False) as counter:
    conv(torch.zeros(1, 3, 32, 32))
print("FlopCounterMode total:", counter.get_total_flops())
print("MACs by the formula:  ", 8 * 32 * 32 * 3 * 3**2)

# %% [markdown]
# Counting needs shapes, not values. On the `meta` device a tensor has a shape and a dtype but
# no storage, so a ResNet-50 built there costs no memory and no initialisation, and a forward
# pass only propagates shapes, so counting even a full-size network is quick on a laptop:

# %%
with torch.device("meta"):
    meta_model = resnet50()
print(next(meta_model.parameters()).device, tuple(next(meta_model.parameters()).shape))

# %% [markdown]
# ## Exercise `table4`: reproduce the cost columns of Table 4
#
# Write two functions.
#
# 1. `count(model, input_size=(1, 3, 224, 224))` returns a pair of ints (not floats: halve
#    with `//`) `(parameters, macs)`: the number of parameters of `model` (buffers excluded) and the
#    multiply-accumulates of one forward pass on a zero tensor of shape `input_size`, counted
#    with `FlopCounterMode` (remember: 2 FLOPs per MAC). Create the input on the model's device,
#    `next(model.parameters()).device`, so that meta-device models work, and run the forward in
#    `torch.no_grad()`.
# 2. `table4_models()` returns a dict with the three networks of Table 4, built with
#    `resnet50` on the meta device, under the keys `"ResNet-50"`, `"ResNet-50 + SE"` and
#    `"ResNet-50 + CBAM"` (attention `None`, `"se"` and `"cbam"`).
#
# **How it is checked.** `check_table4` runs `count` on a small network (on the CPU and on the
# meta device) and compares it with `cbam.counting`; then it counts your three networks with
# your `count` and compares with the paper's rounded numbers: 25.56 M / 3.858, 28.09 M / 3.860
# and 28.09 M / 3.864. A mismatch is explained: FLOPs instead of MACs, buffers counted, the
# stride in the wrong convolution, missing biases, the wrong attention module.

# %% tags=["exercise"] exercise="table4"
def count(model, input_size=(1, 3, 224, 224)):
    ### BEGIN SOLUTION
    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(input_size, device=device))
    return params, counter.get_total_flops() // 2
    ### END SOLUTION


def table4_models():
    ### BEGIN SOLUTION
    with torch.device("meta"):
        return {
            "ResNet-50": resnet50(),
            "ResNet-50 + SE": resnet50(attention="se"),
            "ResNet-50 + CBAM": resnet50(attention="cbam"),
        }
    ### END SOLUTION


# %% tags=["nbval-check-output"] check="table4"
from cbam.checks.resnet import check_table4

check_table4(count, table4_models)

# %% [markdown]
# Your counts beside the paper's, rounded as the paper prints them:

# %%
models = table4_models()
counted = {name: count(model) for name, model in models.items()}

print(f"{'model':<17} {'params (M)':>10} {'paper':>6} {'GFLOPs':>8} {'paper':>6}")
for row in PAPER_TABLE4:
    params, macs = counted[row.model]
    print(f"{row.model:<17} {params / 1e6:>10.2f} {row.params_m:>6.2f} "
          f"{macs / 1e9:>8.3f} {row.gflops:>6.3f}")

# %% [markdown]
# Every digit matches. Two things stand out. SE and CBAM have the same rounded parameter count:
# the spatial gate adds $2 \cdot 7^2 = 98$ weights per block, 1,568 in the whole network. And
# attention of either kind adds about 10 % of parameters but less than 0.2 % of
# multiply-accumulates:

# %%
base_params, base_macs = counted["ResNet-50"]
for name in ("ResNet-50 + SE", "ResNet-50 + CBAM"):
    params, macs = counted[name]
    extra_params, extra_macs = params - base_params, macs - base_macs
    print(f"{name:<17} +{extra_params:>9,} params ({extra_params / base_params:.2%})"
          f"   +{extra_macs:>9,} MACs ({extra_macs / base_macs:.3%})")

# %% [markdown]
# ## Where the overhead sits, stage by stage
#
# ResNet-50 has four stages of 3, 4, 6 and 3 bottlenecks, with output widths 256 to 2048 and
# resolutions $56^2$ down to $7^2$. Within a stage every block holds the same attention module
# working on maps of the same shape, so one module, counted alone on the meta device, gives the
# stage's overhead once multiplied by the number of blocks. `macs_by_module` splits that count by
# submodule: the column "spatial" is the share spent in the spatial gate's convolution, the rest
# is the channel MLP.
#
# The stage's own convolutions need no counter at all. In ResNet v1 every convolution of a stage,
# the downsampling shortcut included, outputs maps of the stage's resolution, so the formula
# above gives each one directly.

# %%
def conv_macs(conv, side):
    """C_out * H_out * W_out * C_in * k^2 for a convolution whose output is side x side."""
    k_h, k_w = conv.kernel_size
    return conv.out_channels * side * side * conv.in_channels * k_h * k_w


cbam_model = models["ResNet-50 + CBAM"]
sides = {"layer1": 56, "layer2": 28, "layer3": 14, "layer4": 7}  # the stem takes 224 to 56

stages = []
for stage, side in sides.items():
    layer = getattr(cbam_model, stage)
    width = layer[0].bn3.num_features
    one = macs_by_module(layer[0].attention, (1, width, side, side))  # one block's module
    convs = sum(conv_macs(m, side) for name, m in layer.named_modules()
                if isinstance(m, nn.Conv2d) and "attention" not in name)
    stages.append({
        "stage": stage,
        "blocks": len(layer),
        "width": width,
        "params": sum(count_params(b.attention) for b in layer),
        "macs": len(layer) * one[""],
        "spatial_macs": len(layer) * one.get("spatial.conv", 0),
        "stage_macs": convs + len(layer) * one[""],
    })

print(f"{'stage':<7} {'blocks':>6} {'width':>6} {'+params':>10} {'+MACs':>10} "
      f"{'spatial':>8} {'of stage':>9}")
for st in stages:
    print(f"{st['stage']:<7} {st['blocks']:>6} {st['width']:>6} {st['params']:>10,} "
          f"{st['macs']:>10,} {st['spatial_macs'] / st['macs']:>8.0%} "
          f"{st['macs'] / st['stage_macs']:>9.2%}")

# The pieces add up: the stem's 7x7 convolution (112 x 112 outputs), four stages, the classifier.
stem = conv_macs(cbam_model.conv1, 112)
head = cbam_model.fc.in_features * cbam_model.fc.out_features
print("stem + stages + classifier == the count of the whole network:",
      stem + sum(st["stage_macs"] for st in stages) + head == counted["ResNet-50 + CBAM"][1])

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
names = [st["stage"] for st in stages]
axes[0].bar(names, [st["params"] / 1e6 for st in stages], color="tab:blue")
axes[0].set_title("CBAM parameters per stage (M)")
mlp_macs = [(st["macs"] - st["spatial_macs"]) / 1e6 for st in stages]
axes[1].bar(names, mlp_macs, color="tab:blue", label="channel MLP")
axes[1].bar(names, [st["spatial_macs"] / 1e6 for st in stages], bottom=mlp_macs,
            color="tab:orange", label="spatial conv")
axes[1].set_title("CBAM multiply-accumulates per stage (M)")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The parameters pile up in the last stage: the channel MLP grows with the square of the width,
# and 2048 channels dominate. The multiply-accumulates have two sources that scale differently.
# The MLP runs on two pooled vectors, so its cost follows its parameters and peaks in the last
# stage too. The $7 \times 7$ convolution runs at every position, so it costs most where the
# maps are large: in the first stage, at $56 \times 56$, it is almost all of the attention's
# work. Against the convolutions of each stage both are tiny, which is why the paper can call
# CBAM lightweight. (Lesson 07 shows that few multiply-accumulates do not mean little time: the
# gates read and write whole feature maps.)

# %% [markdown]
# The explorer shows one CBAM of a stage at a time. Set $C$, $H$ and $W$ to each stage in turn
# (256 at 56, 512 at 28, 1024 at 14, 2048 at 7): the parameters grow with $C^2$, while the maps
# the spatial gate works on shrink four-fold from one stage to the next.

# %% tags=["nbval-ignore-output"]
from cbam.widgets import ShapeExplorer

ShapeExplorer(batch=1, channels=256, height=56, width=56)

# %% [markdown]
# ## Pitfall: which convolution carries the stride
#
# A bottleneck that halves the resolution has to put its stride 2 somewhere. The original
# ResNet (v1) puts it in the first $1 \times 1$ convolution, so the $3 \times 3$ convolution
# already runs at the reduced resolution. torchvision's ResNet-50 ("v1.5") moved it to the
# $3 \times 3$ convolution, which is more accurate. The $3 \times 3$ convolution still produces
# the same number of outputs; it is the first $1 \times 1$ convolution, no longer strided, that
# now runs at the full input resolution, on four times as many positions, in the first block of
# stages 2 to 4. The parameters are the same; the multiply-accumulates are not:

# %%
with torch.device("meta"):
    v15 = resnet50(stride_in="3x3")
params, macs = count(v15)
print(f"ResNet-50 v1.5: {params / 1e6:.2f} M params, {macs / 1e9:.3f} GFLOPs "
      f"(v1: {counted['ResNet-50'][1] / 1e9:.3f})")

# The first 1x1 convolution of stages 2 to 4: side x side outputs in v1, twice the side in v1.5.
firsts = [(getattr(v15, s)[0].conv1, side) for s, side in sides.items() if s != "layer1"]
extra = sum(conv_macs(conv, 2 * side) - conv_macs(conv, side) for conv, side in firsts)
print(f"those three convolutions: +{extra:,} MACs, the whole difference:",
      extra == macs - counted["ResNet-50"][1])

# %% [markdown]
# The paper's 3.858 is the v1 count. A ResNet-50 taken from torchvision and counted with the
# same tool gives about 4.09, which is not an error in the tool and not an error in the paper:
# they describe two different networks.

# %% [markdown]
# ## Adding CBAM to a network you have already trained
#
# The block's place is settled; what of a network that was trained without attention? A fresh
# CBAM multiplies every feature map by two gates in (0, 1), so dropped into a trained network it
# changes what every later layer receives. `cbam.insertion.insert_attention` puts it into every
# residual block as $x + b\,(\mathrm{CBAM}(x) - x)$, with $b$ a learned scalar that starts at 0:
# at the moment of insertion the network computes exactly what it did, and fine-tuning moves $b$
# as far as attention helps. One of the course's stored networks (lesson 05 trains them), a
# plain one, both ways, on 500 validation images (whole percents: another processor may round an
# image or two the other way):

# %%
import copy

from cbam import experiments
from cbam.experiments.runner import datasets
from cbam.insertion import insert_attention

experiment, quick = experiments.get_experiment("attention"), experiments.QUICK
_, val_set, _, num_classes = datasets(quick)
trained = experiments.build_model(experiment, "baseline", 0, quick, num_classes)
trained.load_state_dict(experiments.load_model_state("attention", "baseline", 0))
trained.eval()
images, labels = val_set.images[:500], val_set.labels[:500]


def accuracy(model):
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


with torch.random.fork_rng():
    torch.manual_seed(0)
    as_is = insert_attention(copy.deepcopy(trained), "cbam", initial=1.0)  # CBAM(x) itself
    preserved = insert_attention(copy.deepcopy(trained), "cbam")  # x + 0 * (CBAM(x) - x)
with torch.no_grad():
    same = torch.equal(preserved(images), trained(images))
print(f"trained network:          {accuracy(trained):.0%}")
print(f"CBAM inserted as it is:   {accuracy(as_is):.0%}")
print(f"CBAM inserted at b = 0:   {accuracy(preserved):.0%}, the same logits: {same}")

# %% [markdown]
# Inserted as it is, the network has lost what it learned; inserted at $b = 0$ it has lost
# nothing, and a few epochs of fine-tuning (`cbam.train.fit` at a small learning rate) decide
# whether attention earns its place. `python -m cbam.insertion` measures that recipe on the five
# stored networks, with and without CBAM from the same weights on the same batches; the README's
# section on trained networks gives what it found, and the course's experiments in lesson 05 say
# how to read such a difference.

# %% [markdown]
# ## The error rates cannot be counted
#
# The last two columns of Table 4 are top-1 and top-5 error on the ImageNet-1K validation set
# after training each network on 1.28 million images. No amount of counting reproduces them;
# it takes the dataset and days of GPU time. As reported by the paper:
#
# | model | params | GFLOPs | top-1 err (%) | top-5 err (%) |
# | --- | --- | --- | --- | --- |
# | ResNet-50 | 25.56 M | 3.858 | 24.56 | 7.50 |
# | ResNet-50 + SE | 28.09 M | 3.860 | 23.14 | 6.70 |
# | ResNet-50 + CBAM | 28.09 M | 3.864 | 22.66 | 6.31 |
#
# This course reproduced the first two columns and cites the last two. Lesson 05 trains small
# ResNets on tasks small enough for a laptop, in four variants: plain, with SE, with CBAM's
# channel module alone, and with CBAM. There you can watch the comparison happen yourself, at a
# much smaller scale.

# %% [markdown]
# ## Pitfalls
#
# - **Attention after the residual addition** gates the identity path too; deep stacks then
#   shrink the signal block after block. Apply it to the output of the last BatchNorm, before
#   `out + shortcut`.
# - **The wrong width.** The module must be built for `planes * expansion` channels, the width
#   of `bn3`'s output, not `planes`. Bottlenecks make this easy to get wrong; basic blocks
#   (ResNet-18/34, `expansion = 1`) hide the mistake.
# - **FLOPs versus MACs.** `FlopCounterMode` reports 2 FLOPs per multiply-accumulate; the paper's
#   "GFLOPs" are MACs. Halve the counter's total before comparing.
# - **v1 versus v1.5.** Table 4's 3.858 is ResNet v1 (stride in the first $1 \times 1$);
#   torchvision's ResNet-50 is v1.5 (stride in the $3 \times 3$) and counts about 4.09.
# - **Biases in the MLP.** The paper's parameter counts include the biases of the attention
#   MLPs; building them with `bias=False` drops $h + C$ parameters per block, and the count
#   no longer matches the paper's 28.09 M.
# - **Buffers are not parameters.** Summing over `model.state_dict()` also counts BatchNorm's
#   running statistics and overstates the parameters.
