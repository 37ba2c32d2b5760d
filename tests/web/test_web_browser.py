"""The web pages in a real browser (Debian's headless Chromium through chromium-driver):
the status page on a 375 px wide phone (WeChat's in-app browser) and the dashboard render
without console errors (a Content-Security-Policy violation is one), answer after the
retiree id and the second factor, refuse a wrong factor and lock the guesser out; labels,
lang attributes, keyboard focus order and the main text's contrast are checked.
Screenshots are kept in tests/output/web/ (ignored by git)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.web.browser import (
    CHROMEDRIVER,
    CHROMIUM,
    chromium,
    console_errors,
    contrast,
    focus_order,
    unlabelled_inputs,
)
from tests.web.conftest import CITY, OUTPUT, RIGHT, WebProcess

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="Debian's chromium and chromium-driver: `make setup` installs "
                              "them"),
]


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = chromium(tmp_path / "profile", phone=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = chromium(tmp_path / "profile", phone=False)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: webdriver.Chrome, name: str) -> Path:
    """A full-page screenshot (beyond the viewport, through the DevTools protocol) kept
    as a test artefact."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                 "scale": 1}})["data"]
    path = OUTPUT / f"{name}.png"
    path.write_bytes(base64.b64decode(data))
    assert path.stat().st_size > 5000, f"{path} looks blank"
    return path


def ask(driver: webdriver.Chrome, web: WebProcess, retiree_id: str, factor: str) -> None:
    """Fill the status form and send it with the keyboard (Enter in the factor field)."""
    driver.get(web.url + "/")
    driver.find_element(By.ID, "retiree_id").send_keys(retiree_id)
    driver.find_element(By.ID, "second_factor").send_keys(factor + Keys.ENTER)
    WebDriverWait(driver, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#answer, #refusal")))


def test_status_page_on_a_phone(web: WebProcess, phone: webdriver.Chrome) -> None:
    phone.get(web.url + "/")
    assert phone.execute_script("return window.innerWidth") == 375
    # nothing wider than the phone: no sideways scrolling
    assert phone.execute_script("return document.documentElement.scrollWidth") <= 375
    assert phone.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert phone.find_elements(By.CSS_SELECTOR, "label [lang=en]")
    assert unlabelled_inputs(phone) == []
    assert focus_order(phone, 3) == ["input#retiree_id", "input#second_factor", "button"]
    for selector in ("body", "label", "h1", "button", ".note"):
        assert contrast(phone, selector) >= 4.5, selector
    shot(phone, "status-form-375")
    assert console_errors(phone) == []

    ask(phone, web, "FS-1", RIGHT["FS-1"])
    answer = phone.find_element(By.ID, "answer").text
    assert "已完成认证" in answer and "Certified" in answer and "2017-06-12" in answer
    assert "手机App刷脸认证" in answer
    assert contrast(phone, "#answer .step") >= 4.5
    shot(phone, "status-certified-375")
    assert console_errors(phone) == []

    ask(phone, web, "SU-1", RIGHT["SU-1"])
    answer = phone.find_element(By.ID, "answer").text
    assert "养老金已暂停发放" in answer and "2017-07" in answer and "paid back" in answer
    assert phone.execute_script("return document.documentElement.scrollWidth") <= 375
    shot(phone, "status-suspended-375")
    assert console_errors(phone) == []


def test_status_page_refuses_wrong_factors_then_locks(web: WebProcess,
                                                      phone: webdriver.Chrome) -> None:
    for _ in range(5):
        ask(phone, web, "LOCK-5", "0000")
        refusal = phone.find_element(By.ID, "refusal").text
        assert "没有与该编号及身份证号后4位相符的记录" in refusal
        assert not phone.find_elements(By.ID, "answer")
    shot(phone, "status-wrong-factor-375")
    ask(phone, web, "LOCK-5", RIGHT["LOCK-5"])  # the right one, too late: locked
    refusal = phone.find_element(By.ID, "refusal").text
    assert "锁定" in refusal and "locked" in refusal
    assert contrast(phone, "#refusal p") >= 4.5
    shot(phone, "status-locked-375")
    errors = [e for e in console_errors(phone)
              if not ("status of 404" in e["message"] or "status of 429" in e["message"])]
    assert errors == []


def test_dashboard_after_login(web: WebProcess, desktop: webdriver.Chrome) -> None:
    desktop.get(web.url + "/staff")
    assert desktop.current_url.endswith("/staff/login")
    assert unlabelled_inputs(desktop) == []
    assert focus_order(desktop, 3) == ["input#username", "input#password", "button"]
    shot(desktop, "staff-login")
    desktop.find_element(By.ID, "username").send_keys(CITY[0])
    desktop.find_element(By.ID, "password").send_keys(CITY[1] + Keys.ENTER)
    WebDriverWait(desktop, 20).until(ec.presence_of_element_located((By.ID, "panel")))
    charts = desktop.find_elements(By.CSS_SELECTOR, "#panel svg.chart")
    assert len(charts) == 4 and all(c.size["width"] > 300 for c in charts)
    assert desktop.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert contrast(desktop, "#panel .tile p") >= 4.5
    # the connectors panel's stale line (the seeded 'ledger') is flagged and readable
    assert contrast(desktop, "#connectors tr.stale td") >= 4.5
    assert contrast(desktop, "#connectors tr.stale strong") >= 4.5
    # the first-party script refreshes the panel (every 2 s here), under the CSP
    WebDriverWait(desktop, 20).until(
        lambda d: d.find_element(By.ID, "panel").get_attribute("data-refreshed"))
    assert len(desktop.find_elements(By.CSS_SELECTOR, "#panel svg.chart")) == 4
    shot(desktop, "staff-dashboard")
    assert console_errors(desktop) == []

    desktop.find_element(By.LINK_TEXT, "查询退休人员 Find a retiree").click()
    desktop.find_element(By.ID, "retiree_id").send_keys("SU-1" + Keys.ENTER)
    WebDriverWait(desktop, 20).until(ec.presence_of_element_located((By.ID, "detail")))
    assert "2017-07" in desktop.find_element(By.ID, "detail").text
    shot(desktop, "staff-retiree")
    assert console_errors(desktop) == []
