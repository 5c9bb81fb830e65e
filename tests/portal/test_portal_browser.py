"""The county portal in a real browser: Debian's chromium, headless, driven by Playwright.

A county user signs in through Airflow's login page, opens the portal from Airflow's UI, downloads
today's call list, uploads an outcome file with some bad rows and reads which rows were rejected
and why; an HQ user sees the progress table. Screenshots go to ``QZ_PORTAL_SCREENSHOTS`` when set
(docs/screenshots/ holds the committed ones), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium (and CJK fonts for the screenshots), installed here if missing: never skipped."""
    if not Path(CHROMIUM).exists() or not Path("/usr/share/fonts/opentype/noto").exists():
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "fonts-noto-cjk"]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(cmd, env=env, capture_output=True, check=True)
    assert Path(CHROMIUM).exists(), "chromium could not be installed"
    return CHROMIUM


@pytest.fixture
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=FLAGS)
        yield b
        b.close()


def _shots(tmp_path) -> Path:
    folder = Path(os.environ.get("QZ_PORTAL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sign_in(page, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/auth/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)


def test_county_user_downloads_uploads_and_reads_the_rejections(portal, browser, tmp_path):
    shots = _shots(tmp_path)
    page = browser.new_page(accept_downloads=True, viewport={"width": 1280, "height": 900}, locale="zh-CN")
    _sign_in(page, portal.base, "county_350582", portal.passwords["county_350582"])
    page.goto(f"{portal.base}/county-portal/")
    assert "晋江市 外呼门户" in page.text_content("h1")
    assert "南安市" not in page.text_content("#lists")               # another county is not even listed
    page.screenshot(path=str(shots / "portal-county.png"), full_page=True)

    with page.expect_download() as dl:
        page.click("#lists a:text('CSV')")
    listed = Path(dl.value.path())
    frame = pd.read_csv(listed, encoding="utf-8-sig", dtype=str)
    assert len(frame) > 3 and (frame["手机号码"].str.len() == 11).all()

    # the county fills in outcomes in the downloaded list: three good rows, three bad ones
    ids = frame["联系编号（回填用）"].tolist()
    outcome = pd.DataFrame({"联系编号（回填用）": ids[:3] + ["C20261123-00000000000", ids[3], ids[0]],
                            "外呼结果": ["accepted", "无人接听", "refused", "accepted", "maybe", "accepted"]})
    upload = tmp_path / "晋江外呼结果.csv"
    outcome.to_csv(upload, index=False, encoding="utf-8-sig")
    page.set_input_files("form[action$='/upload/350582'] input[type=file]", str(upload))
    page.click("form[action$='/upload/350582'] button[type=submit]")
    page.wait_for_selector("#summary")
    summary = page.text_content("#summary").replace(" ", "")
    assert "已接收3行" in summary and "被拒绝3行" in summary
    rejects = page.text_content("#rejects")
    assert "未知的联系编号" in rejects and "外呼结果不可识别" in rejects and "与第 2 行重复" in rejects
    page.screenshot(path=str(shots / "portal-upload-result.png"), full_page=True)


def test_hq_user_sees_the_progress_table(portal, browser, tmp_path):
    shots = _shots(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    _sign_in(page, portal.base, "hq", portal.passwords["hq"])
    page.goto(f"{portal.base}/county-portal/")
    table = page.text_content("#progress")
    assert "晋江市" in table and "德化县" in table and "接受率" in table
    assert len(page.query_selector_all("#progress tr")) == 12          # header + 11 counties
    page.screenshot(path=str(shots / "portal-hq.png"), full_page=True)
