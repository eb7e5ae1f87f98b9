#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages needed to build and test shardps.
#
# Safe to re-run: when every package is already installed it returns at once
# without touching apt (no network, no root needed).
set -euo pipefail

readonly PACKAGES=(
  build-essential
  cmake
  pkg-config
  git
  libzmq3-dev
  cppzmq-dev
  libflatbuffers-dev
  flatbuffers-compiler
  libeigen3-dev
  libboost-dev
  catch2
  libcli11-dev
  libtomlplusplus-dev
  gnuplot-nox
  python3
)

# Prints the packages dpkg does not report as fully installed.
missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null ||
      true)"
    if [[ "${status}" != "installed" ]]; then
      echo "${pkg}"
    fi
  done
}

main() {
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "install-deps.sh: needs a Debian or Ubuntu system (apt-get)" >&2
    exit 1
  fi

  local missing=()
  mapfile -t missing < <(missing_packages)
  if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps.sh: all ${#PACKAGES[@]} packages already installed"
    return 0
  fi
  echo "install-deps.sh: installing ${missing[*]}"

  local sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "install-deps.sh: not root and sudo is not available" >&2
      exit 1
    fi
    sudo="sudo"
  fi

  # The variable goes on the command line because sudo resets the
  # environment. $sudo is unquoted on purpose: empty means no word at all.
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

main "$@"
