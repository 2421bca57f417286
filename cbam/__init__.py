"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018), built to be learned and used.

>>> import torch, cbam
>>> block = cbam.CBAM(64)                  # r = 16, k = 7, channel then spatial, as in the paper
>>> block(torch.randn(2, 64, 32, 32)).shape
torch.Size([2, 64, 32, 32])
"""

from cbam.attention import CBAM, ChannelAttention, SpatialAttention, SqueezeExcitation
from cbam.counting import count_macs, count_params, macs_by_module
from cbam.maps import record_attention
from cbam.resnet import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    ResNet,
    make_attention,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet_cifar,
)

__version__ = "0.1.0"

__all__ = [
    "CBAM",
    "ChannelAttention",
    "SpatialAttention",
    "SqueezeExcitation",
    "record_attention",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "ResNet",
    "make_attention",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet_cifar",
    "count_macs",
    "count_params",
    "macs_by_module",
]
