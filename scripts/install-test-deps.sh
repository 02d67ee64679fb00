#!/usr/bin/env bash
# Install the tools the test scripts need, from Debian's packages:
#   - `prometheus` (ships both `prometheus` and `promtool`): rule checks and the end-to-end test
#   - `python3`: scripts/check-rules.sh, scripts/e2e_prometheus.py, scripts/metrics-used.py
# and from PyPI, with python3's pip:
#   - `grafana-foundation-sdk` (Grafana's own dashboard builders, pinned): dashboards/src/build.py
#
# Idempotent and non-interactive: does nothing when every tool is already on PATH; runs
# `apt-get update` only when it actually has to install something. Works as root, or through
# sudo (without a password prompt) when run as an ordinary user; otherwise it prints the
# command for an administrator to run.
#
# The prometheus package's maintainer scripts would normally start a system Prometheus on
# :9090. We block service starts during the install (policy-rc.d) and stop anything that
# started anyway, so nothing squats on ports the tests may want. Tests always pick their own
# free ports regardless.
set -euo pipefail

packages=()
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    packages+=(prometheus)
fi
if ! command -v python3 >/dev/null 2>&1; then
    packages+=(python3)
fi

# The dashboards' generator: Grafana 11.2's builders (schemaVersion 39, what the dashboards ship).
sdk_version='1769699630!11.2.0'
install_sdk() {
    if python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("grafana-foundation-sdk") != sys.argv[1])' \
        "$sdk_version" 2>/dev/null; then
        echo "install-test-deps: grafana-foundation-sdk $sdk_version already present"
        return
    fi
    echo "install-test-deps: installing grafana-foundation-sdk==$sdk_version with pip"
    local pip=(python3 -m pip install --quiet --disable-pip-version-check)
    # A Python that its distribution manages (PEP 668) refuses a plain install: the user's own
    # site-packages then, never the system's.
    "${pip[@]}" "grafana-foundation-sdk==$sdk_version" 2>/dev/null \
        || "${pip[@]}" --user --break-system-packages "grafana-foundation-sdk==$sdk_version"
}

if [ "${#packages[@]}" -eq 0 ]; then
    echo "install-test-deps: prometheus, promtool and python3 already present"
    install_sdk
    exit 0
fi

command_line="apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install-test-deps: installing ${packages[*]} needs root. Ask an administrator to run:" >&2
    echo "    sudo sh -c '$command_line'" >&2
    echo "(or run it yourself as root), then run the tests again." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Keep the package from starting a system service while it installs: a policy-rc.d that
# exits 101 makes invoke-rc.d / deb-systemd-invoke skip starts. Only create it when
# there is none, and only remove the one we created.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$POLICY" || true
    fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 0755 "$POLICY"
    created_policy=1
fi

echo "install-test-deps: installing Debian packages: ${packages[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${packages[@]}" >/dev/null

# If a service started regardless (e.g. a real systemd honoured no policy-rc.d), stop it:
# the tests never use a system Prometheus.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl stop prometheus.service >/dev/null 2>&1 || true
    "${SUDO[@]}" systemctl disable prometheus.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
    "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

for tool in prometheus promtool python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-test-deps: '$tool' still missing after install" >&2
        exit 1
    fi
done
echo "install-test-deps: $(promtool --version 2>&1 | head -n1); $(python3 --version 2>&1)"
install_sdk
