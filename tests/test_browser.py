"""A real browser opens the built documentation (headless Chromium).

The landing page, one results page and one gallery example load without a
console error, and every figure on them is drawn at a non-zero size.
Screenshots of each page (its top) and of each figure as shown go to
``docs/_build/screenshots/`` for a person to look at. Needs Debian's
``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and
selenium (the docs extra); skipped with a message where they are missing.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
from docs_site import ROOT, built_site

pytestmark = pytest.mark.slow

PAGES = ["index.html", "results/mc.html", "auto_examples/plot_4_mc_vs_exact.html"]
SHOTS = ROOT / "docs" / "_build" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1280,1000"]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium: pip install -e '.[docs]'")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("no chromium/chromedriver: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="ensemble-study-chromium-")
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path),
                              options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_without_console_errors_and_draws_every_figure(browser, page):
    html = built_site()
    browser.get((html / page).as_uri())
    browser.execute_script("return document.fonts.ready")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], f"{page}: console errors {errors}"
    images = browser.find_elements("css selector", "article img")
    assert images, f"{page}: no figure in the article"
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = page.replace("/", "_").removesuffix(".html")
    browser.save_screenshot(str(SHOTS / f"{stem}.png"))
    for i, img in enumerate(images):
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
        size = browser.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "return [arguments[0].complete, arguments[0].naturalWidth, r.width, r.height];", img)
        complete, natural, width, height = size
        src = img.get_attribute("src")
        assert complete and natural > 0, f"{page}: {src} did not load"
        assert width > 0 and height > 0, f"{page}: {src} is drawn at {width} x {height} px"
        img.screenshot(str(SHOTS / f"{stem}_figure{i}.png"))
    # A figure wider than the text column would push the page sideways.
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page}: the page scrolls sideways by {overflow} px"
