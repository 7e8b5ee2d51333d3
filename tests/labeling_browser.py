"""A headless Chromium driven by selenium for the labeling page's tests (Debian's chromium and
chromium-driver). Missing pieces skip the tests, unless TORCH_AL_REQUIRE_BROWSER=1 (CI) makes
them fail."""

import os
import shutil

import pytest


def chromium_driver(width: int = 1100, height: int = 760):
    """A headless Chromium, or a skip (a failure under TORCH_AL_REQUIRE_BROWSER=1) saying what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return _missing("selenium is not installed (pip install selenium)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        return _missing("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(driver))


def _missing(reason: str):
    if os.environ.get("TORCH_AL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TORCH_AL_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)
