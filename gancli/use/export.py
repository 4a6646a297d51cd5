"""``gan export``: a model's generator as an ONNX or TorchScript file that runs without gancli.

What each family's generator takes and gives is the family's to say (``Family.export_graphs``): samplers take z (and
a class label or caption word ids), translators and super-resolution models take images. Every file is fp32 (zoo
weights stored in fp16 are loaded as fp32), has a dynamic batch axis (and dynamic height and width where the network
is fully convolutional), and carries the model's configuration as metadata: ONNX ``metadata_props`` (one entry per
key, strings as they are and the rest as JSON, and all of it as JSON under ``config.json``), TorchScript an extra
file ``config.json``.

A file is made in memory, run once against PyTorch on its example inputs and on inputs of other shapes (the dynamic
axes), and only then written, through a temporary file and a rename: an export that fails leaves nothing behind
and never a user's earlier file half-overwritten.
"""
from __future__ import annotations

import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from gancli.data.imageio import atomic_write, make_parent
from gancli.version import __version__

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
INSTALL = "pip install onnx onnxruntime  (in a gancli checkout: pip install '.[export]')"
OPSET = 17
TOLERANCE = 1e-3  # largest |file - PyTorch| an export may show on its checks; fp32 exports are ~1e-6 apart


@dataclass
class Written:
    path: Path
    bytes: int
    seconds: float
    max_diff: float  # the largest |file's output - PyTorch's| over the checks
    suffix: str


def check_format(fmt: str | None, output: Path) -> str:
    """The format, from --format or else -o's extension; a mismatch is refused before any work."""
    implied = SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        if implied is None:
            raise ValueError(f"give --format onnx or --format torchscript (or end -o in .onnx or .pt), not "
                             f"{output.name!r}")
        return implied
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown --format {fmt!r}: use onnx or torchscript")
    if implied is not None and implied != fmt:
        raise ValueError(f"--format {fmt} does not match the extension of {output.name} (use {FORMATS[fmt]})")
    return fmt


def check_installed(fmt: str):
    """Say at once, before the model loads, that ONNX export cannot work here. TorchScript needs only torch."""
    if fmt != "onnx":
        return
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ValueError(f"--format onnx needs the onnx and onnxruntime packages: {INSTALL}") from None


def check_writable(path: Path):
    """The nearest existing folder on ``path`` must take a new file (missing folders are made when it is written);
    ``path`` itself must not be a folder (a translator's ``out.a2b.onnx`` is not the -o the command checked)."""
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder")
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: {folder} is not writable")


def targets(output: Path, graphs) -> list[Path]:
    """One graph: ``output`` itself. Several (a translator's two directions): ``out.a2b.onnx``, ``out.b2a.onnx``."""
    if len(graphs) == 1:
        return [output]
    return [output.with_name(f"{output.stem}.{g.suffix}{output.suffix}") for g in graphs]


def graphs_for(model, direction: str | None = None) -> list:
    """The model's graphs as fp32 CPU modules in eval mode; with ``direction``, only that one (translators)."""
    if direction is not None:
        if not model.is_translation:
            raise ValueError(f"--direction is for translation models; {model.config.get('name', 'this model')} is "
                             f"a {model.architecture} model")
        direction = model.direction(direction)
    model.generator.float().eval()  # fp16 zoo weights are fp32 once loaded; float() holds that for any source
    graphs = model.family.export_graphs(model)
    if direction is not None:
        graphs = [g for g in graphs if g.suffix == direction]
    for g in graphs:
        g.module.float().eval()
    return graphs


def task_of(model) -> str:
    """What a config.json that does not say its task (one written by hand) would say: from what the model does."""
    words = {"translate": "translation", "upscale": "super-resolution"}
    if model.image_operation:
        return words.get(model.image_operation, model.image_operation)
    return "text-to-image" if model.takes_text else "conditional" if model.is_conditional else "unconditional"


def metadata(model, graph) -> dict:
    """What a program needs to run the file without gancli: the model's identity and classes, its inputs and
    outputs (names, shapes, meaning) and the value range of images."""
    config = model.config
    meta = {"producer": f"gancli {__version__}", "name": config.get("name") or "", "architecture": model.architecture,
            "task": config.get("task") or task_of(model), "image_size": model.image_size,
            "channels": model.channels, "value_range": [-1, 1], "layout": "NCHW"}
    if model.latent_dim and "z" in graph.inputs:
        meta["latent_dim"] = model.latent_dim
    if model.class_names:
        meta["class_names"] = model.class_names
    if model.is_translation:
        meta["domains"] = model.domains
    meta["inputs"] = [{"name": k, "shape": _shape(k, v, graph), "dtype": str(v.dtype).removeprefix("torch."),
                       "meaning": graph.meanings[k]} for k, v in graph.inputs.items()]
    meta["outputs"] = [{"name": k, "dtype": "float32", **v} for k, v in graph.outputs.items()]
    return meta | graph.metadata | {"arch_args": config.get("arch_args", {})}


def _shape(name: str, example: torch.Tensor, graph) -> list:
    axes = graph.dynamic.get(name, {})
    return [axes.get(i, n) for i, n in enumerate(example.shape)]


def export(model, fmt: str, output: Path, direction: str | None = None) -> list[Written]:
    """Write the model's generator (each of its graphs) to ``output`` in ``fmt``; returns what was written."""
    graphs = graphs_for(model, direction)
    paths = targets(output, graphs)
    for path in paths:
        check_writable(path)
    written = []
    for graph, path in zip(graphs, paths):
        t0 = time.perf_counter()
        meta = metadata(model, graph)
        data = to_onnx(graph, meta) if fmt == "onnx" else to_torchscript(graph, meta)
        diff = check(data, fmt, graph)
        make_parent(path)
        atomic_write(path, lambda f: f.write(data))
        written.append(Written(path, len(data), time.perf_counter() - t0, diff, graph.suffix))
    return written


def to_onnx(graph, meta: dict) -> bytes:
    """The TorchScript-based exporter (``dynamo=False``): 20-30x faster here than torch.export's and it needs no
    onnxscript; it traces the graph once, so anything shape-dependent must be traced with torch ops (the checks
    catch what is not)."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # its deprecation notice is for us, not for the user
        try:
            torch.onnx.export(graph.module, tuple(graph.inputs.values()), buffer, dynamo=False, opset_version=OPSET,
                              input_names=list(graph.inputs), output_names=list(graph.outputs),
                              dynamic_axes=graph.dynamic)
        except torch.onnx.errors.UnsupportedOperatorError as e:  # an operator ONNX lacks: name it, offer the other
            raise ValueError(f"this model cannot be exported to ONNX ({str(e).splitlines()[0]}); TorchScript "
                             f"can (-o NAME.pt)") from None
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in (meta | {"config.json": meta}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    proto.producer_name, proto.doc_string = "gancli", f"{meta['name'] or meta['architecture']}: see metadata_props"
    return proto.SerializeToString()


def to_torchscript(graph, meta: dict) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings (what they warn of, the checks test); jit's deprecation
        traced = torch.jit.trace(graph.module, tuple(graph.inputs.values()), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={"config.json": json.dumps(meta, indent=1)})
    return buffer.getvalue()


def run_file(data: bytes, fmt: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The exported file's output for ``inputs``, run by onnxruntime or the TorchScript interpreter."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # its failures come back as exceptions; no second copy on stderr
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; it still runs
        return torch.jit.load(io.BytesIO(data), map_location="cpu")(*inputs.values())


def check(data: bytes, fmt: str, graph) -> float:
    """Run the file on the example and on each check (other batch sizes and sides) against PyTorch: the largest
    difference, or a RuntimeError (an exporter bug: nothing is written) where it is too far or the shape differs."""
    worst = 0.0
    for inputs in [graph.inputs, *graph.checks]:
        with torch.no_grad():
            want = graph.module(*inputs.values()).float()
        got = run_file(data, fmt, inputs)
        if got.shape != want.shape:
            raise RuntimeError(f"the exported {fmt} file gives shape {tuple(got.shape)} for inputs "
                               f"{[tuple(v.shape) for v in inputs.values()]}, PyTorch {tuple(want.shape)}")
        worst = max(worst, float((got - want).abs().max()))
    if worst > TOLERANCE:
        raise RuntimeError(f"the exported {fmt} file differs from PyTorch by up to {worst:.2g}")
    return worst


def read_metadata(path: str | Path) -> dict:
    """An exported file's metadata (either format), as ``metadata`` made it."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props["config.json"])
    extra = {"config.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra["config.json"])
