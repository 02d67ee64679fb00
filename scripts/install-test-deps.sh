#!/usr/bin/env bash
# Install the tools the rule/dashboard checks and the Prometheus end-to-end test need:
# Debian's `prometheus` package (which ships both `prometheus` and `promtool`).
#
# Idempotent and non-interactive: does nothing when both tools are already on PATH;
# runs `apt-get update` only when it actually has to install something. Works as root,
# or through sudo when run as an ordinary user.
#
# The package's maintainer scripts would normally start a system Prometheus on :9090.
# We block service starts during the install (policy-rc.d) and stop anything that
# started anyway, so nothing squats on ports the tests may want. Tests always pick
# their own free ports regardless.
set -euo pipefail

need_install=0
for tool in prometheus promtool; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        need_install=1
    fi
done

if [ "$need_install" -eq 0 ]; then
    echo "install-test-deps: prometheus and promtool already present ($(command -v promtool))"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install-test-deps: need root or sudo to install the 'prometheus' package" >&2
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

echo "install-test-deps: installing Debian package 'prometheus' (brings promtool)"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    prometheus >/dev/null

# If a service started regardless (e.g. a real systemd honoured no policy-rc.d), stop it:
# the tests never use a system Prometheus.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl stop prometheus.service >/dev/null 2>&1 || true
    "${SUDO[@]}" systemctl disable prometheus.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
    "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

for tool in prometheus promtool; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-test-deps: '$tool' still missing after install" >&2
        exit 1
    fi
done
echo "install-test-deps: $(promtool --version 2>&1 | head -n1)"
