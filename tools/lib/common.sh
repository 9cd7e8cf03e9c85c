# Shared by tools/*: the Debian packages mydfs needs and how to get a build.
# shellcheck shell=bash

# What the daemons and the mydfs command (with the mount) need to build and run.
MYDFS_PACKAGES=(meson ninja-build g++ pkg-config python3 libboost-dev libspdlog-dev libfmt-dev
                libxxhash-dev libcli11-dev nlohmann-json3-dev fuse3 libfuse3-dev curl procps)
# What the tests, the fuzzers and the benchmarks need besides: GoogleTest, clang's libFuzzer,
# the tools the mount is tested with, and a browser for the dashboard test.
MYDFS_TEST_PACKAGES=(libgtest-dev clang libclang-rt-14-dev git rsync tar util-linux chromium)

# ensure_packages [--no-install] [--tests]: apt-get installs whatever of MYDFS_PACKAGES (and with
# --tests, of MYDFS_TEST_PACKAGES) is missing.
ensure_packages() {
  local missing=() p no_install=0 wanted=("${MYDFS_PACKAGES[@]}")
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --no-install) no_install=1 ;;
      --tests) wanted+=("${MYDFS_TEST_PACKAGES[@]}") ;;
    esac
    shift
  done
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $no_install -eq 1 ]]; then
    echo "missing Debian packages: ${missing[*]}" >&2
    return 2
  fi
  echo "== installing ${missing[*]}"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || { echo "apt-get install failed" >&2; return 2; }
}

# ensure_build DIR [TARGET...]: configures (once) and builds the optimized build in DIR (only the
# given ninja targets, if any); quiet unless it fails. With MYDFS_NO_BUILD=1 it only checks that
# DIR is configured and uses what is built there (for runs next to someone else's build in the
# same directory).
ensure_build() {
  local dir="$1"
  shift
  if [[ -n "${MYDFS_NO_BUILD:-}" ]]; then
    [[ -f "$dir/build.ninja" ]] && return 0
    echo "MYDFS_NO_BUILD is set but $dir is not configured" >&2
    return 1
  fi
  if [[ ! -f "$dir/build.ninja" ]]; then
    meson setup "$dir" --buildtype=debugoptimized >"$dir.setup.log" 2>&1 \
      || { cat "$dir.setup.log" >&2; return 1; }
  fi
  ninja -C "$dir" "$@" >"$dir.compile.log" 2>&1 \
    || { grep -E -A8 "error|FAILED" "$dir.compile.log" | head -n 60 >&2; echo "build failed (log: $dir.compile.log)" >&2; return 1; }
}
