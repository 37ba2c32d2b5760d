"""Debian's Chromium, headless, driven by selenium through Debian's chromium-driver (both
installed by `make setup`), and the checks the browser tests share: console errors,
labels, contrast from computed styles, keyboard focus order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Without the background-networking flags Chromium reaches for Google's services, which
# this closed network refuses (and which a test has no business calling).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
# WeChat's in-app browser on a 375 px wide phone.
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 "
             "MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64 Weixin NetType/WIFI "
             "Language/zh_CN ABI/arm64")


def chromium(profile: Path, *, phone: bool) -> webdriver.Chrome:
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager: never download
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--lang=zh-CN")
    if phone:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": 375, "height": 812, "pixelRatio": 2.0},
            "userAgent": WECHAT_UA})
    else:
        options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The browser console's errors since the last call (CSP violations among them)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def unlabelled_inputs(driver: webdriver.Chrome) -> list[str]:
    """Visible form controls without a <label for> (or aria-label)."""
    result: list[str] = driver.execute_script("""
        return Array.from(document.querySelectorAll('input, select, textarea'))
          .filter(e => e.type !== 'hidden')
          .filter(e => !(e.id && document.querySelector('label[for="' + e.id + '"]'))
                       && !e.getAttribute('aria-label'))
          .map(e => e.name || e.outerHTML);""")
    return result


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(driver: webdriver.Chrome, selector: str) -> float:
    """WCAG contrast ratio of the first ``selector``'s text colour against the first
    opaque background among it and its ancestors (computed styles)."""
    colours: list[list[float]] = driver.execute_script("""
        function rgb(text) { return text.match(/[\\d.]+/g).map(Number); }
        var e = document.querySelector(arguments[0]);
        var fg = rgb(getComputedStyle(e).color);
        var node = e, bg = [255, 255, 255, 1];
        while (node && node.nodeType === 1) {
          var c = rgb(getComputedStyle(node).backgroundColor);
          if (c.length === 3 || c[3] > 0) { bg = c; break; }
          node = node.parentElement;
        }
        return [fg, bg];""", selector)
    fg, bg = colours
    light, dark = sorted((_luminance((fg[0], fg[1], fg[2])),
                          _luminance((bg[0], bg[1], bg[2]))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def focus_order(driver: webdriver.Chrome, presses: int) -> list[str]:
    """What Tab reaches, press by press: each focused element as tag#id (or tag)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("document.activeElement && document.activeElement.blur();"
                          "window.focus();")
    reached = []
    for _ in range(presses):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        reached.append(driver.execute_script(
            "var e = document.activeElement;"
            "return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '');"))
    return reached
