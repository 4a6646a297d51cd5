"""Starting and stopping the page: what `gan demo` runs (``missing`` first, without importing Gradio)."""
from __future__ import annotations

import contextlib
import signal
import threading


def missing() -> str | None:
    """What to install for the page, or None when Gradio is there (asked without importing it: that takes seconds)."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        return "gan demo needs Gradio: pip install 'gancli[demo]' (in a checkout of gan: pip install '.[demo]')"
    return None


@contextlib.contextmanager
def _held_interrupts():
    """Ctrl-C noted, not raised, while the block runs (in the main thread): the caller acts on it afterwards."""
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous = signal.signal(signal.SIGINT, lambda *_: noted.append(1))
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


def check_port_free(host: str, port: int):
    """Refuse a --port something else listens on (a second `gan demo`, say) in one line, before Gradio starts."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        # as the server binds: a demo stopped a moment ago leaves connections in TIME_WAIT, not the port taken
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ValueError(f"--port {port}: {host}:{port} is in use (another gan demo?) or not this machine's "
                             f"({e.strerror}); give another --port, or leave it out for the first free one") from None


def serve(name: str | None = None, host: str = "127.0.0.1", port: int | None = None, device: str = "auto",
          on_ready=print, block: bool = True):
    """Start the page (on ``name`` if given: a zoo name, model folder or training run) and call ``on_ready(url)``.
    ``block``: serve until Ctrl-C; otherwise return the Gradio app (``close()`` stops it)."""
    from gancli.demo import work

    # Ctrl-C during the seconds of start-up was once swallowed inside Gradio's set-up: note it, act once it is up
    with _held_interrupts() as interrupted:
        if port is not None:
            check_port_free(host, port)
        models = work.Models(name, device)  # a bad name is one line before Gradio's seconds of importing
        from gancli.demo import page

        app = page.build(models)
        app.queue(default_concurrency_limit=2)
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                               show_error=True, max_file_size=work.MAX_UPLOAD_BYTES, ssr_mode=False,
                               footer_links=["api"], css=page.CSS)
    if interrupted:
        app.close()
        raise KeyboardInterrupt
    on_ready(url.rstrip("/"))
    if not block:
        return app
    try:
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return None
