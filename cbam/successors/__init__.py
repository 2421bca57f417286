"""Attention modules that came after CBAM, each one idea in one small class.

============================  =====================================  ==============================
module                        paper                                  its idea, in one line
============================  =====================================  ==============================
``EfficientChannelAttention``  Wang et al., ECA-Net, CVPR 2020        SE without the bottleneck: a
                                                                     1-D convolution across channels
``CoordinateAttention``       Hou, Zhou & Feng, CVPR 2021            pool along H and along W
                                                                     apart, keeping position
``SimAM``                     Yang et al., ICML 2021                 a parameter-free 3-D map from
                                                                     each neuron's energy
``GlobalContext``             Cao et al., GCNet, ICCV Workshops      one softmax-weighted context,
                              2019                                   *added* to every position
============================  =====================================  ==============================

Like ``cbam.attention``'s modules, each is a factory ``channels -> module`` for ``cbam.resnet``,
sits where SE and CBAM sit (on the residual branch, before the addition), and returns its map
from ``attention(x)`` through a submodule named ``gate`` (``gate_h`` and ``gate_w`` for the two
maps of coordinate attention), so ``cbam.record_attention`` reads it.
"""

from cbam.successors.coordinate import CoordinateAttention
from cbam.successors.eca import EfficientChannelAttention, eca_kernel_size
from cbam.successors.global_context import GlobalContext
from cbam.successors.simam import SimAM

__all__ = [
    "CoordinateAttention",
    "EfficientChannelAttention",
    "GlobalContext",
    "SimAM",
    "eca_kernel_size",
]
