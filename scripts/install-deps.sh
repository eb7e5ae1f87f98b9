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
  zlib1g-dev
  dataset-fashion-mnist
  clang               # scripts/fuzz.sh: libFuzzer needs clang
  libclang-rt-14-dev  # libFuzzer and clang's sanitizer runtimes
  clang-format        # scripts/check-format.sh (CI)
  iproute2            # scripts/hostbed: ip (namespaces, veths, bridge), tc
  util-linux          # scripts/hostbed: unshare, nsenter, setpriv
  python3-dev         # the Python module (python/), built for /usr/bin/python3
  pybind11-dev
  python3-numpy
  python3-torch       # shardps.torch and examples/python/
  python3-pytest      # tests/python/
  prometheus-cpp-dev  # /metrics endpoints (common/metrics_export)
  prometheus          # tests/metrics/: promtool and a real Prometheus server
  slurmd              # scripts/slurmbed: a real Slurm cluster on the host bed
  slurmctld
  slurm-client
  munge
  tmux                # tests/cli/top_tmux_test.sh: `shardps top` in a real terminal
  python3-yaml        # tests/deploy/: reads the Kubernetes manifests
  kubernetes-client   # tests/deploy/: kubectl kustomize deploy/kubernetes
                      # (skipped when another package already gives kubectl)
)

# Prints the packages dpkg does not report as fully installed.
missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    # Any kubectl will do, and Debian's would conflict with another
    # package's (e.g. Google Cloud SDK's kubectl owns /usr/bin/kubectl).
    if [[ "$pkg" == kubernetes-client ]] && command -v kubectl >/dev/null; then
      continue
    fi
    status="$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null ||
      true)"
    if [[ "${status}" != "installed" ]]; then
      echo "${pkg}"
    fi
  done
}

install_packages() {
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

# The weekly Mauna Loa CO2 series ships inside Debian's python3-statsmodels.
# Only that one 34 KB file is needed, so the package is downloaded and the
# file extracted, rather than installing statsmodels with numpy, scipy and
# pandas. Optional: the CO2 example says what is missing if this fails.
readonly DATA_DIR="${SHARDPS_DATA_DIR:-/usr/local/share/shardps/datasets}"
fetch_co2() {
  [[ -f "${DATA_DIR}/co2.csv" ]] && return 0
  local tmp
  tmp="$(mktemp -d)"
  if (cd "${tmp}" && apt-get download python3-statsmodels >/dev/null 2>&1) &&
    dpkg-deb -x "${tmp}"/python3-statsmodels_*.deb "${tmp}/x" &&
    mkdir -p "${DATA_DIR}" &&
    cp "${tmp}"/x/usr/lib/python3/dist-packages/statsmodels/datasets/co2/co2.csv \
      "${DATA_DIR}/co2.csv"; then
    echo "install-deps.sh: CO2 series in ${DATA_DIR}/co2.csv"
  else
    echo "install-deps.sh: could not fetch the CO2 series (optional)" >&2
  fi
  rm -rf "${tmp}"
}

main() {
  install_packages
  fetch_co2
}

main "$@"
