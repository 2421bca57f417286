"""Faster routes to the values of ``cbam.attention``, held to it by the tests.

``cbam.attention`` is the paper's Eq. 1-3 as written. What is here computes the same values in
fewer passes over memory: the C kernel for inference on a CPU (``cpu_kernel``) and the spatial
gate's one-output convolution (``spatial_conv``). ``tracing`` tells them when to step aside;
``layout`` gives their gradients the strides DistributedDataParallel expects.
"""
