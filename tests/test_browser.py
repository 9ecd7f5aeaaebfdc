"""End to end in a real browser: `bentoml serve` → `streamlit run app.py` → headless Chromium (Playwright).

Uses Debian's Chromium (`/usr/bin/chromium`), never a downloaded browser. Screenshots of the chat and
batch tabs go to artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app_support import client
from app_support.client import Options
from keyword_extractor.text.keywords import is_grounded
from service_support.local_server import ServerProcess, free_port
from tests.conftest import PROJECT_ROOT
from tests.test_app import QUESTIONS, shared_service

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; checked before any server starts, so that its absence fails fast and says what to do."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test drives Debian's Chromium (it downloads no browser). "
            "Install it with `sudo apt-get install -y chromium` and run the tests again."
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def service(request, talkative_model_dir, tmp_path_factory) -> ServerProcess:
    return shared_service(request.config, talkative_model_dir, tmp_path_factory.mktemp("app-bentoml"))


@pytest.fixture(scope="module")
def app_url(chromium, service, tmp_path_factory) -> Iterator[str]:
    """`streamlit run app.py` on a free loopback port, pointed at the service through KEYWORD_SERVICE_URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {**os.environ, "KEYWORD_SERVICE_URL": service.url, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    command += ["--server.fileWatcherType", "none"]  # nothing to reload; a busy tree can flood inotify
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=3).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"streamlit was not up within 90 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_chat_and_batch_in_headless_chromium(chromium, app_url, service, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    info = client.model_info(service.url)
    defaults = Options(
        max_keywords=info.max_keywords, filter_ungrounded=info.filter_ungrounded, num_beams=info.num_beams
    )
    # Two questions, the first one answered with several keywords (a better picture than a lone particle).
    answers = client.extract_batch(service.url, QUESTIONS[:16], defaults, chunk_size=info.max_batch_texts).keywords
    first = next((q for q, found in zip(QUESTIONS, answers) if len(found) >= 2), QUESTIONS[0])
    asked = [(first, answers[QUESTIONS.index(first)]), (QUESTIONS[0], answers[0])]
    assert all(found and all(is_grounded(keyword, q) for keyword in found) for q, found in asked)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="ko-KR")
            page.set_default_timeout(60_000)
            page.goto(app_url)
            expect(page.get_by_text("Service ready")).to_be_visible()
            expect(page.locator(".kw-facts")).to_contain_text("keyword-extractor")

            box = page.get_by_test_id("stChatInputTextArea")
            for number, (question, expected) in enumerate(asked):
                box.fill(question)
                box.press("Enter")
                chips = page.locator(".kw-chips").nth(number).locator(".kw-chip")
                expect(chips).to_have_count(len(expected))
                assert chips.all_inner_texts() == expected
                meta = page.locator(".kw-meta").nth(number)
                expect(meta).to_contain_text("keyword-extractor v7")
                expect(meta).to_contain_text("champion")
                expect(meta).to_contain_text(re.compile(r"answered in (\d+ ms|\d+\.\d\d s)"))
            expect(page.get_by_test_id("stChatMessage")).to_have_count(4)
            expect(page.get_by_test_id("stChatMessage").nth(2)).to_contain_text(QUESTIONS[0])
            page.screenshot(path=str(SCREENSHOTS / "app-chat.png"))

            page.get_by_role("tab", name="Batch").click()
            upload = tmp_path / "questions.txt"
            upload.write_text("\n".join(QUESTIONS[:12]) + "\n", encoding="utf-8")
            page.locator("input[type=file]").set_input_files(upload)
            expect(page.get_by_text("12 questions · UTF-8")).to_be_visible()
            page.get_by_role("button", name="Extract keywords").click()
            expect(page.get_by_text("Done: 12 questions in")).to_be_visible()
            expect(page.get_by_role("button", name="Download CSV")).to_be_visible()
            expect(page.get_by_test_id("stDataFrame").first).to_be_visible()  # the results (corrections below)
            page.screenshot(path=str(SCREENSHOTS / "app-batch.png"))
        finally:
            browser.close()
