#!/usr/bin/env bash
# Installs what sockbench needs from the system and builds the project, on Debian or Ubuntu,
# as root. Safe to run again: it installs only what is missing.
#
#   scripts/setup.sh            everything: the studies, the engine and its base, Docker, the peers
#   scripts/setup.sh --kernels  only what `npm run kernels` needs (the CI kernel jobs use it): the
#                               addon's build, qemu and busybox-static for the guests, and the tools
#                               the guest's studies call (the guest's root is this machine's); no
#                               Docker, no engine base, no bpftrace, no peers, no browser
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

profile=all
case "${1-}" in
  '') ;;
  --kernels) profile=kernels ;;
  *)
    say "unknown argument '$1' (usage: scripts/setup.sh [--kernels])"
    exit 2
    ;;
esac
if [ $# -gt 1 ]; then
  say "one argument at most (usage: scripts/setup.sh [--kernels])"
  exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
  say "run as root: the studies create namespaces and mounts, and this installs packages"
  exit 3
fi

# Debian package -> a command or file that shows it is there. First what both profiles need.
declare -A NEED=(
  [build-essential]=/usr/bin/g++
  # The addon compiles the sandboxes' seccomp filters with libseccomp (headers and -lseccomp).
  [libseccomp-dev]=/usr/include/seccomp.h
  # node-gyp runs python3.
  [python3]=/usr/bin/python3
  # The netns study's teardown probe makes veth pairs with ip.
  [iproute2]=/usr/sbin/ip
  # unshare's version goes into every run's environment; the tests call unshare and nsenter.
  [util-linux]=/usr/bin/nsenter
  # npm run kernels: guests in qemu, whose initramfs userland is busybox-static.
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64
  [busybox-static]=/usr/share/doc/busybox-static
  # Debian's newer kernel packages ship xz-compressed modules, which kernels decompresses.
  [xz-utils]=/usr/bin/xz
)
if [ "$profile" = all ]; then
  NEED+=(
  [python3-pip]=/usr/lib/python3/dist-packages/pip
  # pip's sdist builds use the host's setuptools and wheel: the install step has no network.
  [python3-setuptools]=/usr/lib/python3/dist-packages/setuptools
  [python3-wheel]=/usr/lib/python3/dist-packages/wheel
  # Debian's PyPI-to-Debian name table, which the Debian installer maps requirements with.
  [dh-python]=/usr/share/dh-python/dist/cpython3_fallback
  [bpftrace]=/usr/bin/bpftrace
  [fuse-overlayfs]=/usr/bin/fuse-overlayfs
  [debootstrap]=/usr/sbin/debootstrap
  [docker.io]=/usr/sbin/dockerd
  [curl]=/usr/bin/curl
  # Outbound network for the lambdas that ask for it (engine/outbound.ts).
  [slirp4netns]=/usr/bin/slirp4netns
  # The figures page test opens figures/index.html in a real headless Chromium.
  [chromium]=/usr/bin/chromium
  # Text in the SVG figures needs a sans-serif font, which chromium itself only recommends.
  [fonts-dejavu-core]=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
  )
fi
if ! command -v node >/dev/null; then
  NEED[nodejs]=/usr/bin/node
  NEED[npm]=/usr/bin/npm
fi
missing=()
for pkg in "${!NEED[@]}"; do
  [ -e "${NEED[$pkg]}" ] || missing+=("$pkg")
done
# node-gyp builds against the installed Node's headers: no download from outside.
node_include="$(dirname "$(dirname "$(readlink -f "$(command -v node || echo /usr/bin/node)")")")/include/node"
if [ ! -e "$node_include/node_api.h" ] && [ ! -e /usr/include/node/node_api.h ]; then
  missing+=(libnode-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  updated=1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$profile" = all ]; then
  # npm run exp:peers: what a user would run instead of SOCK, each started on the same base. One
  # at a time, and not fatal: a release without one (runsc is not in every Ubuntu) only makes the
  # study report that peer skipped, with this reason.
  declare -A PEERS=([bubblewrap]=/usr/bin/bwrap [runc]=/usr/sbin/runc [crun]=/usr/bin/crun [runsc]=/usr/bin/runsc)
  for pkg in "${!PEERS[@]}"; do
    [ -e "${PEERS[$pkg]}" ] && continue
    say "installing $pkg (a peer of npm run exp:peers)"
    [ -n "${updated:-}" ] || { apt-get update -qq; updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null ||
      say "could not install $pkg: exp:peers will report it skipped"
  done
  # The lock-name check (test/harness/perfLock.test.ts) compares our lock waits with Debian's perf.
  # Not fatal either: Ubuntu ships perf under another name, and the test then says it is skipped.
  if [ ! -e /usr/bin/perf ]; then
    say "installing linux-perf (perf lock contention, the lock tracer's cross-check)"
    [ -n "${updated:-}" ] || { apt-get update -qq; updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null ||
      say "could not install linux-perf: the perf lock test will report it skipped"
  fi
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  say "Node $(node --version) is too old: sockbench needs Node 20 or newer"
  exit 3
fi

if [ -e "$node_include/node_api.h" ]; then
  export npm_config_nodedir="$(dirname "$(dirname "$node_include")")"
elif [ -e /usr/include/node/node_api.h ]; then
  export npm_config_nodedir=/usr
fi

# npm ci builds the addon (node-gyp) and compiles the TypeScript (prepare).
if [ ! -e build/Release/sockbench_native.node ] || [ ! -e dist/app/cli.js ] || [ ! -e dist/app/sock.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies and building (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ "$profile" = kernels ]; then
  say "ready for npm run kernels"
  exit 0
fi
# The SOCK engine's base root file system (Debian with python3, about a minute the first time).
node dist/app/sock.js base build ${SOCK_BASE:+--base "$SOCK_BASE"}

# The Docker baseline needs a running daemon and its image, imported from that same base.
docker_up() { curl -fsS --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null 2>&1; }
if ! docker_up; then
  if [ -d /run/systemd/system ]; then
    say "starting dockerd (systemctl start docker)"
    systemctl start docker
  else
    say "starting dockerd (no systemd here: in the background, log in /var/log/sockbench-dockerd.log)"
    setsid nohup dockerd >>/var/log/sockbench-dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 60); do docker_up && break; sleep 0.5; done
  docker_up || { say "dockerd did not come up; see /var/log/sockbench-dockerd.log"; exit 3; }
fi
node dist/app/sock.js base docker-image ${SOCK_BASE:+--base "$SOCK_BASE"}
say "ready"
