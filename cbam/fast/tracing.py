"""Whether code runs under torch.compile's tracing, an export, or a torch.func transform.

Some routes in ``cbam`` are only for plain eager execution (hand-written autograd Functions,
calls into C, in-place writes); these tell them when to step aside.
"""

import torch
import torch.fx


def recording(x: torch.Tensor) -> str | None:
    """What records ``x``'s computation as a graph for another runtime, or None.

    Under all of them the graph must hold the plain code's standard operations: a trace cannot
    see into C, an autograd Function or a branch on ``requires_grad``, FX hands a Proxy where a
    tensor's values would be read, and ONNX wants one Conv where the plain code has one.
    """
    if isinstance(x, torch.fx.Proxy):
        return "torch.fx is tracing the call symbolically"
    # Both ONNX exporters trace with one of these (the TorchScript one with torch.jit.trace, the
    # default one with torch.export); is_in_onnx_export itself costs microseconds per call, so
    # it only names the reason.
    if torch.jit.is_scripting() or torch.jit.is_tracing() or _export_flag():
        if torch.onnx.is_in_onnx_export():
            return "torch.onnx is exporting the call"
        if _export_flag():
            return "torch.export is tracing the call"
        return "torch.jit is tracing or scripting the call"
    return None


def compiling() -> bool:
    """Inside torch.compile's tracing (Dynamo)."""
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling and is_compiling())


def transformed() -> bool:
    """Inside torch.func (vmap, grad, ...), which hand-written autograd Functions would break."""
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active and active())


def exporting() -> bool:
    """Inside torch.jit.trace (also behind torch.onnx's TorchScript export) or torch.export.

    A trace records PyTorch operations only, so a call into C would be missing from it; and an
    exported graph should hold standard operations that other runtimes know.
    """
    return torch.jit.is_tracing() or _export_flag()


def _export_flag() -> bool:
    """``torch.compiler.is_exporting()``, read where Dynamo cannot fold it to a constant.

    Dynamo answers the call itself while it traces: torch 2.11 answers True in every trace,
    torch.compile's included (2.13 reads the flag). The flag the function returns is read
    directly where there is one.
    """
    flag = getattr(torch.compiler, "_is_exporting_flag", None)
    if isinstance(flag, bool):
        return flag
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.4
    return bool(is_exporting and is_exporting())
