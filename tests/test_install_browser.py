"""scripts/install_browser.sh, which `make test` and `.ci/run` call before the browser test."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "install_browser.sh"


def run(env: dict[str, str], *prefix: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, "bash", str(SCRIPT)], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_nothing_to_do_when_the_browser_and_font_are_there():
    if not (os.access("/usr/bin/chromium", os.X_OK) and "Noto Sans CJK" in subprocess.getoutput("fc-list")):
        pytest.skip("this machine has no Chromium/CJK font to find")
    result = run({"CHROMIUM": "/usr/bin/chromium"})
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to become another user")
def test_a_user_who_cannot_install_gets_the_one_command_to_run(tmp_path):
    result = run(
        {"CHROMIUM": str(tmp_path / "missing"), "HOME": "/tmp"},
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    )
    assert result.returncode == 1
    assert "run: sudo apt-get install -y chromium fonts-noto-cjk" in result.stderr
