#!/bin/sh
# Set-up for diffprune on Debian: system packages, npm packages, the native addon, TypeScript.
# Idempotent and quick when nothing is missing; README's commands run it first.
# --bench also installs Debian's python3-torch (PyTorch on the same libtorch), the peer that
# bench:train and bench:eval measure against in the same run; nothing else needs it.
set -eu
cd "$(dirname "$0")/.."

bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    *) echo "setup: unknown option $arg (use --bench)" >&2; exit 2 ;;
  esac
done

log() { echo "setup: $*" >&2; }

# System packages: libtorch (the engine), Gloo's headers (c10d's ProcessGroupGloo, which
# torch.distributed runs on), OpenBLAS (libtorch's matmul is ~25x slower on the reference BLAS),
# Fashion-MNIST (the embedded dataset), and what node-gyp needs to build.
packages="libtorch-dev libgloo-dev libopenblas0-openmp dataset-fashion-mnist g++ make python3 chromium"
[ "$bench" -eq 1 ] && packages="$packages python3-torch"
missing=""
for pkg in $packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
need_root() { [ -z "$sudo" ] || command -v sudo >/dev/null || { log "run as root, or $1"; exit 1; }; }
if [ -n "$missing" ]; then
  need_root "install:$missing"
  log "installing Debian packages:$missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# libtorch's BLAS is the system's libblas.so.3: make it OpenBLAS's OpenMP build, whose threads are
# libtorch's own OpenMP pool. Next to the pthread build (another pool, the alternatives' default
# when both are installed) the two pools fight for the cores while OpenMP threads spin between
# ops: ddpm-cifar10-32 evaluation at batch 1 took 76-180 ms there, 56-60 ms on the OpenMP build.
libdir="/usr/lib/$(gcc -print-multiarch)"
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  target="$libdir/openblas-openmp/$lib"
  if [ "$(update-alternatives --query "$lib-$(gcc -print-multiarch)" 2>/dev/null | sed -n 's/^Value: //p')" != "$target" ]; then
    need_root "select $target with update-alternatives"
    log "selecting OpenBLAS's OpenMP build for $lib"
    $sudo update-alternatives --set "$lib-$(gcc -print-multiarch)" "$target" >/dev/null
  fi
done

# npm packages, when package-lock.json changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  npm ci --ignore-scripts --no-audit --no-fund >&2
fi

# The addon: make rebuilds only what changed.
if [ ! -f build/Makefile ] || [ binding.gyp -nt build/Makefile ]; then
  log "configuring the native addon"
  npx node-gyp configure >&2
fi
npx node-gyp build --jobs max >/dev/null 2>build/.build-log || { cat build/.build-log >&2; log "building the native addon failed"; exit 1; }

# TypeScript.
npx tsc -p tsconfig.json
