"""Screenshot of an `mlflow ui` / `mlflow server` page with every sweep (parent run) expanded, for docs and reviews.

    pip install playwright            # a docs tool, not a dependency of facenet; uses the system Chromium
    apt-get install chromium
    python scripts/mlflow_screenshot.py http://127.0.0.1:5000/#/experiments/1/runs runs.png [--no-expand]

A run page URL (e.g. .../runs/<id>/artifacts/sweep_accuracy.png) works too.
"""

from __future__ import annotations

import argparse
import shutil
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--no-expand", action="store_true", help="leave parent runs collapsed")
    parser.add_argument("--width", type=int, default=1700)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=8.0, help="seconds for the page to load its runs")
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("error: needs playwright (pip install playwright)", file=sys.stderr)
        return 1
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: needs Chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    with sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(args.url)
        page.wait_for_timeout(args.wait * 1000)
        close = page.locator("button[aria-label='Close']")  # MLflow 3's assistant side panel
        if close.count():
            close.first.click(timeout=2000)
        if not args.no_expand:
            expanders = page.locator("button[data-component-id*='runnamecellrenderer']")  # the +/- of parent rows
            for i in range(expanders.count()):
                expanders.nth(i).click(timeout=3000)
                page.wait_for_timeout(800)
        page.wait_for_timeout(1500)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
