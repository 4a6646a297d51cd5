"""What runs a generator for `gan sample` and `gan translate` (``--backend``): eager PyTorch (the default), or ONNX
Runtime on the graph that `gan export` writes.

ONNX Runtime runs the same fp32 network (outputs within ~1e-5 of PyTorch's; a pixel in 10,000 may round to the next
grey level). On this project's 2-core AMD EPYC, one thread each, it was 1.0-1.1x PyTorch's speed (bench/speed.py); with
two threads on a machine busy with other work it was up to 2x faster, because its threads sleep instead of spinning
while they wait (PyTorch's OpenMP threads spin). It stays an option, not the default: the gain is the machine's load,
and the first run per set of weights pays for the export.

The graph is exported once per set of weights and kept in the cache folder (``GAN_CACHE``, else
``$XDG_CACHE_HOME/gancli`` or ``~/.cache/gancli``) as ``onnx/<key>.onnx``, the key a sha256 of the network's
weights, the graph's identity and the exporter's versions: another model, another gancli or torch never reuses it.
A cache that cannot be written only costs the export on the next run.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

BACKENDS = ("torch", "onnxruntime")


def installed() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def check(backend: str) -> str:
    """``--backend``'s name, normalised; a ValueError for an unknown one, or for onnxruntime when it is not
    installed. Needs no model: the CLI calls it before loading one."""
    from gancli.use.export import INSTALL

    name = backend.strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown --backend {backend!r}: use {', '.join(BACKENDS)}")
    if name == "onnxruntime" and not installed():
        raise ValueError(f"--backend onnxruntime needs the onnx and onnxruntime packages: {INSTALL}")
    return name


def choose(backend: str, device: torch.device) -> str:
    """``--backend`` -> the backend that runs: torch or onnxruntime; a ValueError for what cannot run here."""
    backend = check(backend)
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise ValueError(f"--backend onnxruntime runs on the CPU, not {device}: add --device cpu or use "
                             "--backend torch")
    return backend


def cache_dir() -> Path:
    root = os.environ.get("GAN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gancli"
    return Path(root) / "onnx"


def graph_key(graph, config: dict) -> str:
    """The weights (every tensor's bytes), the graph's inputs and identity, and the versions that made the file."""
    from gancli.use.export import OPSET
    from gancli.version import __version__

    h = hashlib.sha256()
    for name, value in graph.module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().float().contiguous().cpu().numpy().tobytes())
    identity = {"architecture": config.get("architecture"), "arch_args": config.get("arch_args"),
                "inputs": list(graph.inputs), "suffix": graph.suffix, "gancli": __version__,
                "torch": torch.__version__, "opset": OPSET}
    h.update(json.dumps(identity, sort_keys=True, default=str).encode())
    return h.hexdigest()


def onnx_bytes(model, graph) -> bytes:
    """The graph as ONNX: from the cache, or exported (and cached)."""
    from gancli.data.imageio import atomic_write, make_parent
    from gancli.use.export import metadata, to_onnx

    path = cache_dir() / f"{graph_key(graph, model.config)}.onnx"
    if path.is_file():
        return path.read_bytes()
    data = to_onnx(graph, metadata(model, graph))
    try:
        make_parent(path)
        atomic_write(path, lambda f: f.write(data))
    except OSError:
        pass  # a read-only home: the export is redone next time, nothing else changes
    return data


class OnnxRunner:
    """One graph in an ONNX Runtime session, as many threads as torch uses (OMP_NUM_THREADS): tensors in, a float
    CPU tensor out."""

    def __init__(self, data: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # threads that sleep rather than spin while they wait: on a busy machine (training in the background) the
        # spinning pool ran the DCGAN 1.5x slower than with spinning off; unloaded it costs nothing measurable
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        feed = {n: t.detach().cpu().contiguous().numpy() for n, t in zip(self.names, tensors)}
        return torch.from_numpy(self.session.run(None, feed)[0])


def onnx_runners(model, direction: str | None = None) -> dict[str, OnnxRunner]:
    """The model's graphs (a translator's: only ``direction``) as runners, by their suffix ("" for a sampler)."""
    from gancli.use.export import graphs_for

    graphs = graphs_for(model, direction)
    return {g.suffix: OnnxRunner(onnx_bytes(model, g)) for g in graphs}


def use(model, backend: str = "torch", direction: str | None = None) -> str:
    """Run ``model``'s generator with ``backend`` (torch, onnxruntime) from now on; a translator readies only
    ``direction``. Returns the backend that runs. Truncation, StackGAN's stage I and the like are not in the
    exported graph: those requests keep running on PyTorch (``GANModel.generate`` uses a runner only without
    generator options)."""
    model.backend = choose(backend, model.device)
    model.runners = onnx_runners(model, direction) if model.backend == "onnxruntime" else {}
    return model.backend
