"""Headless Debian chromium driven by Selenium (chromedriver from the chromium-driver package)."""

from __future__ import annotations

import os
import shutil
import time

import pytest

PHONE = (390, 844)
DESKTOP = (1280, 800)


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None if either is missing."""
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_browser():
    """A headless chromium at 1280x800 that records the browser console; skipped (or, under
    CI, failed) when chromium or its driver is not installed."""
    found = find_browser()
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if found is None or webdriver is None:
        message = ("chromium, chromedriver and selenium are needed: make debian-deps "
                   "(apt-get install chromium chromium-driver; pip install selenium)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=found[1]))
    driver.set_script_timeout(10)
    viewport(driver, *DESKTOP)
    return driver


def viewport(driver, width: int, height: int) -> None:
    """Make the page's viewport exactly ``width`` x ``height`` CSS pixels."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    """Poll ``condition()`` until it returns something truthy (returned) or fail."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 (the page is still changing)
            last_error = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


class ConsoleLog:
    """The browser console's entries; only failed API calls the test itself provoked may
    show (as 'network' entries with an expected status)."""

    def __init__(self, driver):
        self.driver, self.entries = driver, []

    def collect(self) -> None:
        self.entries += self.driver.get_log("browser")

    def errors(self, allowed_statuses: tuple[int, ...] = (400, 401, 403)) -> list[dict]:
        self.collect()
        bad = []
        for entry in self.entries:
            if entry["level"] not in ("SEVERE", "WARNING"):
                continue
            expected = entry.get("source") == "network" and "/v1/" in entry["message"] and any(
                f"status of {status}" in entry["message"] for status in allowed_statuses)
            if not expected:
                bad.append(entry)
        return bad
