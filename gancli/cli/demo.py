"""`gan demo`."""
from __future__ import annotations

from typing import Optional

import typer

from gancli.cli.common import DEVICE, command, fail, out


@command()
def demo(
    name: Optional[str] = typer.Argument(None, help="Open on this model: a zoo name, model folder, training run or "
                                                    "owner/repo[@revision] (default: the zoo's first sampler)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (0.0.0.0 shows the page to your "
                                                         "network: it has no login)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: the first free one from 7860)."),
    device: str = DEVICE,
):
    """The zoo in a local web page (Gradio): sample, interpolate and mix, translate and upscale photos, classify
    digits, each model beside its card. Needs `pip install 'gancli[demo]'`.

    Example: `gan demo`; `gan demo stylegan-fashion`; `gan demo runs/mnist --port 8000`
    """
    from gancli.demo import server

    if server.missing():
        fail(server.missing())
    if port is not None and not 0 < port < 65536:
        fail(f"--port must be from 1 to 65535, not {port}")
    server.serve(name, host, port, device, on_ready=lambda url: out.print(f"gan demo: {url}  (Ctrl-C to stop)",
                                                                         highlight=False))
