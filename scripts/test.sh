#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine, then lint and test.
#
#   bash scripts/test.sh [pytest arguments]
#
# - Debian packages the tests use (installed with apt-get when run as root or with sudo):
#   dicom3tools (dciodvfy checks our DICOM), r-base-core + r-cran-rms (reference statistics),
#   postgresql (shared measurement store). Without them those tests skip and say why, except
#   under CI=true (or REFRACTURE_REQUIRE_REFERENCES=1), where every skip is a failure.
# - A virtual environment (.venv, or $REFRACTURE_VENV) with the project, its test extras,
#   pyradiomics (statistics reference; it only installs with --no-build-isolation) and
#   slicer-core (Qt-free MRML for the Slicer module's logic tests).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${REFRACTURE_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(dicom3tools r-base-core r-cran-rms postgresql chromium poppler-utils)
SLICER_CORE_PIN="slicer-core==5.12.4.0"

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "Debian packages: ${APT_PACKAGES[*]}"
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  fi
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all present"
  elif [ "$SUDO" = none ]; then
    echo "warning: cannot install ${missing[*]} (not root, no sudo); tests that need them will skip"
  else
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    echo "installed ${missing[*]}"
  fi
else
  echo "warning: apt-get not found; tests needing ${APT_PACKAGES[*]} will skip"
fi

step "Python environment in $VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
"${PIP[@]}" install -e ".[test]"
"${PIP[@]}" install numpy wheel
"${PIP[@]}" install --no-build-isolation pyradiomics==3.0.1
"${PIP[@]}" install "$SLICER_CORE_PIN"
# pmsampsize (reference for the sample-size criteria) declares Python >= 3.12 and older pins;
# its code runs on 3.11 with our stack, so it is installed without its metadata checks.
"${PIP[@]}" install tabulate
"${PIP[@]}" install --no-deps --ignore-requires-python pmsampsize==0.1.0

step "ruff (lint and format check)"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

step "pytest"
export MPLBACKEND=Agg
# CI cannot go green without its references: a skipped reference-tool test fails there.
if [ "${CI:-}" = "true" ]; then
  export REFRACTURE_REQUIRE_REFERENCES=1
fi
"$VENV/bin/python" -m pytest "$@"
