# Sourced by the scripts/install_*.sh prerequisites' installers: one answer to "may this user run apt-get?".
# apt_privilege SCRIPT NEEDED_FOR NO_APT_HINT PACKAGES...
#   sets $sudo to "" (root) or "sudo" (passwordless sudo); otherwise prints the one command to run and exits 1.
apt_privilege() {
    local script=$1 needed_for=$2 no_apt_hint=$3
    shift 3
    if ! command -v apt-get >/dev/null; then
        echo "$script: no apt-get here; $no_apt_hint" >&2
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif sudo -n true 2>/dev/null; then
        sudo="sudo"
    else
        echo "$script: $needed_for; run: sudo apt-get install -y $*" >&2
        exit 1
    fi
}
