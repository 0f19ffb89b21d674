"""Full-page screenshots of the comparison page (``cartsim serve``) and of a trial's report.html, at desktop and
phone widths, in headless Chromium, for looking at what people see.

    python scripts/screenshots.py [--out out/screenshots] [--report out/kysa7/report.html]

Starts ``cartsim serve`` on a free loopback port, waits until it answers, takes the page at 1400 and 390 px wide
(the default comparison, ``ms_course=ppms``, MB-CART19.1 against efgartigimod in lupus, eque-cel against
inebilizumab in NMOSD, Descartes-08 against efgartigimod and KYV-101 against ravulizumab in myasthenia gravis,
KYV-101 against rituximab in MuSK myasthenia gravis) and, with ``--report``, the report at the same widths; then stops
the server. Nothing is fetched from other hosts: the page and the report load only their own files.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTHS = (1400, 390)
PAGES = {"default": "", "ppms": "?ms_course=ppms",                   # name -> query of the comparison page
         "efgartigimod": "?disease=sle&therapy_a=mb-cart19&therapy_b=efgartigimod&days=365",
         "nmosd": "?disease=nmosd&therapy_a=eque-cel&therapy_b=inebilizumab&days=730",
         "mg": "?disease=mg&therapy_a=descartes-08&therapy_b=efgartigimod&days=365",
         "musk": "?disease=mg-musk&therapy_a=kyv-101&therapy_b=rituximab&days=730",
         "complement": "?disease=mg&therapy_a=kyv-101&therapy_b=ravulizumab&days=365"}
READY_S = 600.0      # the first start on a fresh cache compiles the model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    """``cartsim serve`` on ``port``; returns once it answers /api/health (it warms the default comparison first)."""
    proc = subprocess.Popen([sys.executable, "-c", "from cartsim.cli import app; app()", "serve", "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + READY_S
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"cartsim serve exited with {proc.returncode}:\n{proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise SystemExit(f"cartsim serve did not answer within {READY_S:.0f} s") from None
            time.sleep(0.5)


def shoot(browser, url: str, width: int, path: Path, wait_ready: bool) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(url)
    if wait_ready:
        page.wait_for_selector('body[data-state="ready"]', timeout=120_000)
    else:
        page.wait_for_load_state("load")
    page.screenshot(path=str(path), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    page.close()
    print(f"{path}" + (f"  (scrolls sideways by {overflow} px)" if overflow > 0 else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/screenshots"), help="output folder")
    ap.add_argument("--report", type=Path, help="a report.html to take as well")
    ap.add_argument("--pages", nargs="*", choices=list(PAGES), default=list(PAGES), help="pages to take (default all)")
    args = ap.parse_args(argv)
    if args.report is not None and not args.report.is_file():
        ap.error(f"--report: {args.report} is not a file")
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = start_server(port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, query in ((n, PAGES[n]) for n in args.pages):
                for width in WIDTHS:
                    shoot(browser, f"http://127.0.0.1:{port}/{query}", width, args.out / f"page-{name}-{width}.png",
                          wait_ready=True)
            if args.report is not None:
                for width in WIDTHS:
                    shoot(browser, args.report.resolve().as_uri(), width, args.out / f"report-{width}.png",
                          wait_ready=False)
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
