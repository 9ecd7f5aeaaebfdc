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


def test_a_font_listed_early_in_a_long_font_list_is_found(tmp_path):
    """The font check must read fc-list to the end: `grep -q` stops at the first match, fc-list then dies
    of SIGPIPE, and under `pipefail` that read as "no font" (an install attempt on a ready machine)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "fc-list").write_text(
        "#!/bin/sh\necho '/fonts/NotoSansCJK.ttc: Noto Sans CJK KR:style=Regular'\n"
        'i=0; while [ $i -lt 20000 ]; do echo "/fonts/other-$i.ttf: Other $i"; i=$((i+1)); done\n'
    )
    (fake / "fc-list").chmod(0o755)
    result = run({"CHROMIUM": shutil.which("true") or "/bin/true", "PATH": f"{fake}:{os.environ['PATH']}"})
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


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
