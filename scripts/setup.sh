#!/bin/sh
# One-time set-up on a fresh Debian 12 machine (run as root): system packages, .venv, the package.
set -eu
cd "$(dirname "$0")/.."

PKGS="gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi dataset-fashion-mnist"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# torch is pinned: the CPU wheel for 2.13.0 is on this machine's disk; anything else may pull CUDA.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,ray]'
touch .venv/.torch2mcu-setup
