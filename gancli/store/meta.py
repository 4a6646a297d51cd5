"""Building a config's networks on the meta device (``build_on_meta``): their shapes and sizes, without the memory
or the time, refused early when a config implies more than a model may have here (``gancli.store.config``'s
limits).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)
from torch.overrides import TorchFunctionMode

from gancli.store.config import MAX_MODULES, MAX_PARAMETERS, WeightsError


def build_on_meta(builder, args: dict, where, architecture: str = "") -> dict[str, nn.Module]:
    """The networks a config implies, built on the meta device: shapes and counts, no memory. Refuses, while
    building, more than MAX_MODULES layers or MAX_PARAMETERS tensors' elements."""
    try:
        with torch.device("meta"), _MetaShortcuts(), _build_limits(where):
            nets = builder(**args)
    except WeightsError:
        raise
    except (TypeError, ValueError, RuntimeError, ArithmeticError, IndexError, KeyError) as e:
        raise WeightsError(f"{where}: arch_args do not build a {architecture or 'network'} "
                           f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"[:400]) from None
    total = sum(t.numel() for net in nets.values() for t in net.state_dict().values())
    if total > MAX_PARAMETERS:
        raise WeightsError(_too_many(where, total))
    return nets


def _too_many(where, count: int) -> str:
    return (f"{where}: arch_args imply {count:,} parameters, more than the {MAX_PARAMETERS:,} a model may have "
            "here; refusing to build it")


class _MetaShortcuts(TorchFunctionMode):
    """Shapes without the cost: on the meta device, torch runs random initialisation and arithmetic through Python
    reference ops whose first use imports torch._dynamo (3 s, every load). A build only needs shapes, so random
    fills are skipped and random factories and scalar arithmetic return empty tensors of the right shape. Any other
    operation runs as usual: correct, only slower."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else kwargs.get("tensor")
        if func in _RANDOM_FILLS and getattr(first, "is_meta", False):
            return first
        if func in _RANDOM_FACTORIES and "out" not in kwargs:
            size = kwargs.get("size", args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size))
                              else args)
            return torch.empty(size, dtype=kwargs.get("dtype"), device="meta")
        if func in _SCALAR_ARITHMETIC and len(args) == 2 and not kwargs and getattr(first, "is_meta", False) \
                and isinstance(args[1], (int, float)):
            return torch.empty(first.shape, dtype=torch.result_type(first, args[1]), device="meta")
        if func is torch.norm_except_dim and getattr(first, "is_meta", False):  # weight norm's g
            dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
            shape = [] if dim == -1 else [n if i == dim else 1 for i, n in enumerate(first.shape)]
            return torch.empty(shape, dtype=first.dtype, device="meta")
        return func(*args, **kwargs)


_RANDOM_FILLS = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.random_, torch.Tensor.bernoulli_,
                 torch.Tensor.exponential_, torch.Tensor.log_normal_, torch.Tensor.cauchy_, torch.Tensor.geometric_,
                 nn.init.normal_, nn.init.uniform_, nn.init.trunc_normal_, nn.init.orthogonal_, nn.init.sparse_,
                 nn.init.kaiming_normal_, nn.init.kaiming_uniform_, nn.init.xavier_normal_, nn.init.xavier_uniform_}
_RANDOM_FACTORIES = {torch.randn, torch.rand}
_SCALAR_ARITHMETIC = {torch.Tensor.div, torch.Tensor.mul, torch.Tensor.add, torch.Tensor.sub, torch.Tensor.__truediv__,
                      torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.__add__, torch.Tensor.__radd__,
                      torch.Tensor.__sub__, torch.div, torch.mul, torch.add, torch.sub}


@contextmanager
def _build_limits(where):
    """Count layers and tensor elements as the builder registers them (this thread's only), and stop it early."""
    me, counts = threading.get_ident(), {"modules": 0, "elements": 0}

    def on_module(module, name, sub):
        if threading.get_ident() == me and sub is not None:
            counts["modules"] += 1
            if counts["modules"] > MAX_MODULES:
                raise WeightsError(f"{where}: arch_args imply more than {MAX_MODULES:,} layers; refusing to build them")

    def on_tensor(module, name, tensor):
        if threading.get_ident() == me and tensor is not None:
            counts["elements"] += tensor.numel()
            if counts["elements"] > MAX_PARAMETERS:  # shared or re-registered tensors count twice: an upper bound
                raise WeightsError(_too_many(where, counts["elements"]))

    handles = [register_module_module_registration_hook(on_module),
               register_module_parameter_registration_hook(on_tensor),
               register_module_buffer_registration_hook(on_tensor)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
