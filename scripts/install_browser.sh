#!/usr/bin/env bash
# The browser test drives Debian's Chromium (Playwright downloads no browser here), with a CJK font so
# its screenshots show Hangul rather than empty boxes. Installs both when missing: with apt-get as
# root, through sudo where it works without a password, otherwise it prints the one command to run.
# `make test` and `.ci/run` both call it; it does nothing when both are already there.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PACKAGES="chromium fonts-noto-cjk"
# grep reads fc-list to the end (no -q): an early exit would kill fc-list with SIGPIPE, a failure under pipefail
if [ -x "$CHROMIUM" ] && fc-list 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null; then
    exit 0
fi
# shellcheck source=apt_privilege.sh
source "$(dirname "$0")/apt_privilege.sh"
apt_privilege install_browser.sh "the browser test needs Chromium and a CJK font" \
    "install Chromium at $CHROMIUM and the Noto Sans CJK font" $PACKAGES
echo "installing $PACKAGES (the browser test's Chromium and CJK font)"
$sudo apt-get update -qq
$sudo apt-get install -y -qq $PACKAGES
