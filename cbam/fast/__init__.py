"""Faster routes to the values of ``cbam.attention``, held to it by the tests.

``cbam.attention`` is the paper's Eq. 1-3 as written. What is here computes the same values in
fewer passes over memory: the C kernel for inference on a CPU (``cpu_kernel``) and the
predicates that tell those routes when to step aside (``tracing``).
"""
