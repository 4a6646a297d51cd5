"""`gan demo` as a user meets it: started on a free port, driven in headless Chromium (Selenium with Debian's
`chromium` and `chromium-driver`), and called through the official `gradio_client`. The grid the page shows is
`gan sample`'s for that seed, pixel for pixel; an upscaled photo has the size it should; a text file is refused on
the page in words. Skipped, with the reason, where Gradio, Selenium or the browser is missing (.ci/run installs
them)."""
import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = os.environ.get("GAN_DEMO_SCREENSHOT")  # where to keep the browser's screenshot (docs/demo.png)

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_main(args):
    """`gan ARGS` through ``main`` (its one-line errors and exit codes), in this process."""
    import contextlib

    from gancli.cli import main

    err, argv = io.StringIO(), sys.argv
    try:
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
            sys.argv = ["gan", *args]
            main()
    finally:
        sys.argv = argv
    return stop.value.code, err.getvalue()


def test_without_gradio_or_with_a_bad_name(monkeypatch):
    """Without the extra: one line saying what to install. A name that is no model: one line, before any page."""
    import importlib.util

    from gancli.demo import server

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    code, err = _run_main(["demo"])
    assert code == 2 and err.startswith("error: gan demo needs Gradio: pip install") and err.count("\n") == 1
    monkeypatch.undo()
    if server.missing():
        pytest.skip(server.missing())
    code, err = _run_main(["demo", "dcgan-mnst"])
    assert code == 2 and err.startswith("error:") and "dcgan-mnist" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def server():
    """`gan demo` in a subprocess, as a user starts it: its printed address once the page is up."""
    pytest.importorskip("gradio", reason="gan demo needs the demo extra: pip install '.[demo]'")
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    p = subprocess.Popen([sys.executable, "-m", "gancli", "demo", "--port", str(free_port())], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, ready = [], threading.Event()

    def read():
        for line in p.stdout:
            lines.append(line)
            if line.startswith("gan demo: http"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(120):
            pytest.fail("gan demo did not print its address:\n" + "".join(lines)[-3000:])
        yield next(line for line in lines if line.startswith("gan demo: http")).split()[2]
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    assert not any("Traceback" in line for line in lines), "".join(lines)[-3000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`gan sample dcgan-mnist -n 16 --seed 0 --scale 1`'s grid, from the command itself (the page enlarges it on
    screen)."""
    from typer.testing import CliRunner

    from gancli.cli import app

    out = tmp_path_factory.mktemp("ref") / "grid.png"
    r = CliRunner().invoke(app, ["sample", "dcgan-mnist", "-n", "16", "--seed", "0", "-o", str(out),
                                 "--scale", "1"])
    assert r.exit_code == 0, r.output
    return np.asarray(Image.open(out).convert("L"))


@pytest.fixture
def files(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    (tmp_path / "notes.txt").write_text("not a picture\n")
    return tmp_path


def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the demo extra)")
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100"):
        options.add_argument(arg)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver_path), options=options)


def shown(driver, elem_id: str, old: str | None = None, timeout: float = 30) -> Image.Image:
    """The picture in component ``elem_id`` once it is there (and not ``old``), fetched as the browser has it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def src(d):
        found = [e.get_attribute("src") for e in d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")]
        return next((s for s in found if s and s != old), None)

    url = WebDriverWait(driver, timeout).until(src)
    data = base64.b64decode(url.split(",", 1)[1]) if url.startswith("data:") else urllib.request.urlopen(url).read()
    return Image.open(io.BytesIO(data)), url


def pick(driver, name: str):
    """Choose ``name`` in the model list as a user does: type into it, click the offered entry."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#model input"))
    box.click()
    box.clear()
    box.send_keys(name)
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )

    def click_offered(d):
        # the list re-renders while it filters, so an entry found a moment ago may be gone: find it again
        d.find_element(By.CSS_SELECTOR, f'[role=option][aria-label="{name}"]').click()
        return True

    WebDriverWait(driver, 10, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException,
                                                      ElementClickInterceptedException)).until(
        click_offered)
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "card").text.startswith(name))


BROKEN_WORDS = """
const broken = [];
for (const cell of document.querySelectorAll('#card td, #card th')) {
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const re = /\\S+/g;
    let m;
    while ((m = re.exec(node.textContent)) !== null) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
      if (lines.size > 1) broken.push(m[0]);
    }
  }
}
return broken;
"""


def broken_words(driver) -> list[str]:
    """The words of the card's tables that the browser drew over two lines or more ("valu / e", "0.792 / 3")."""
    return driver.execute_script(BROKEN_WORDS)


def test_page_in_a_browser(server, reference, files):
    """Sample dcgan-mnist (the pixels of `gan sample`), upscale a photo (4x its size), and see a text file refused."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        driver.get(server)
        pick(driver, "srresnet-x4")
        driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(files / "notes.txt"))
        time.sleep(0.5)
        driver.find_element(By.ID, "convert").click()
        WebDriverWait(driver, 30).until(lambda d: "notes.txt is not an image" in d.page_source)
        assert "Traceback" not in driver.page_source

        driver.get(server)  # a fresh page: the refused file gone
        pick(driver, "srresnet-x4")
        driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(str(files / "s.png"))
        time.sleep(0.5)
        driver.find_element(By.ID, "convert").click()
        big, _ = shown(driver, "after", timeout=60)
        assert big.size == (96, 80)

        pick(driver, "dcgan-mnist")
        seed = driver.find_element(By.CSS_SELECTOR, "#seed input")
        seed.clear()
        seed.send_keys("0")
        driver.find_element(By.ID, "generate").click()
        grid, _ = shown(driver, "picture")
        assert np.array_equal(np.asarray(grid.convert("L")), reference)
        assert broken_words(driver) == []
        if SCREENSHOT:
            driver.save_screenshot(SCREENSHOT)
    finally:
        driver.quit()


def test_gradio_client(server, reference, files):
    """The page's endpoints through the official client: the same grid, and the refusal as an error message."""
    client_module = pytest.importorskip("gradio_client")
    client = client_module.Client(server, verbose=False)
    path = client.predict(model="dcgan-mnist", seed=0, number=16, label="any (one column per class)",
                          truncation="", text="", stage="", api_name="/sample")
    assert np.array_equal(np.asarray(Image.open(path).convert("L")), reference)
    # a box the model does not take (hidden on the page) may still hold another model's value: it is not sent
    path = client.predict(model="dcgan-mnist", seed=0, number=16, label="any (one column per class)",
                          truncation="0.5", text="a bag", stage="1", api_name="/sample")
    assert np.array_equal(np.asarray(Image.open(path).convert("L")), reference)
    with pytest.raises(Exception, match="seed must be a whole number"):
        client.predict(model="dcgan-mnist", seed=-5, number=16, label="any (one column per class)",
                       truncation="", text="", stage="", api_name="/sample")
    labels, table = client.predict(model="ssgan-mnist", digits=[client_module.handle_file(
        str(ROOT / "gancli/demo/examples/digit-7.png"))], api_name="/classify")
    assert labels["label"] == "7" and "digit-7.png" in table
    # values the page's lists do not hold (a client may send any): one message each, no traceback in the server's log
    # (the server fixture holds the log to that)
    with pytest.raises(Exception, match="model: .*nope is not in the list of choices"):
        client.predict(model="nope", seed=0, number=16, label="any (one column per class)", truncation="", text="",
                       stage="", api_name="/sample")
    with pytest.raises(Exception, match="direction: .*sideways is not in the list of choices"):
        client.predict(model="discogan-bags2shoes", photo=client_module.handle_file(str(ROOT / "gancli/demo/examples/"
                                                                                        "bag.png")),
                       direction="sideways", api_name="/convert")
    with pytest.raises(Exception, match="notes.txt is not an image"):
        client.predict(model="srgan-x4", photo=client_module.handle_file(str(files / "notes.txt")),
                       direction="a2b", api_name="/convert")
