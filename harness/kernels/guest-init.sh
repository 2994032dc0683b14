#!/bin/sh
# The init of a `sockbench kernels` guest, run by busybox sh. Two phases:
#
#   (no argument) as /init in the initramfs: mount proc, sys, dev; load the boot modules; mount
#       the host's root (9p, read-only) under a writable overlay on tmpfs; switch_root into it.
#   stage2: in the overlay: /run (tmpfs), the output shares (9p, writable: <out>/results and
#       <out>/figures) at their host paths,
#       cgroups as the host has them (or, with --cgroups v2, cgroup2 alone), tracefs; the kernel's
#       modules; then, as root, in the repository checkout, each study (or --exec's command),
#       recording each exit status; then power off.
#
# Settings come from sockbench.env (shell assignments written by harness/kernels/initramfs.ts).
# Every line the host must act on starts with "sockbench-guest:".

say() { echo "sockbench-guest: $*"; }
off() {
  sync
  $BB poweroff -f
  echo o > /proc/sysrq-trigger
  sleep 60
}
die() {
  say "error: $*"
  if [ -n "$SB_RUN_DIR" ] && [ -d "$SB_RUN_DIR" ]; then echo "$*" >> "$SB_RUN_DIR/guest-error"; fi
  off
}

if [ "$1" != stage2 ]; then
  BB=/bin/busybox
  $BB --install -s /bin
  export PATH=/bin
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  . /sockbench.env
  # The host waits for this line to know the kernel got as far as its init (KVM can hang before).
  say "init on $(uname -r)"
  for m in $SB_BOOT_MODULES; do
    insmod "/modules/$m" || die "insmod $m failed"
  done
  mkdir -p /mnt/lower /mnt/rw /mnt/root
  mount -t 9p -o "trans=virtio,version=9p2000.L,ro,cache=loose,msize=$SB_MSIZE" sbroot /mnt/lower \
    || die "cannot mount the host's root over 9p: the guest kernel needs virtio_pci, 9pnet_virtio and 9p, built in or as modules"
  mount -t tmpfs -o "mode=0755,size=${SB_RW_MB}m" rw /mnt/rw
  mkdir -p /mnt/rw/upper /mnt/rw/work
  mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /mnt/root \
    || die "cannot mount overlayfs over the 9p root: the guest kernel needs overlay, built in or as a module"
  mkdir -p /mnt/root/.sockbench
  cp /bin/busybox /init /sockbench.env /mnt/root/.sockbench/
  for d in dev proc sys; do mount --move "/$d" "/mnt/root/$d"; done
  exec switch_root /mnt/root /.sockbench/busybox sh /.sockbench/init stage2
  die "switch_root failed"
fi

# stage2: the overlay is /, the host's files are visible read-only, the output share writable.
BB=/.sockbench/busybox
. /.sockbench/sockbench.env
$BB mkdir -p /.sockbench/bin
$BB --install -s /.sockbench/bin
# The host's tools first; busybox's applets only where the host has none (e.g. modprobe).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.sockbench/bin
export HOME=/root TERM=dumb LANG=C.UTF-8 CI=true
cd /
$BB mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
# No tmpfs on /tmp: the overlay already makes it writable, and a checkout or --out under the
# host's /tmp (a clone in /tmp/...) must stay visible.
$BB mkdir -p /dev/pts /dev/shm
$BB mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
$BB mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
# The output shares (SB_SHARES: "tag|path" per line: <out>/results and <out>/figures) last, so no
# tmpfs above hides them. Nothing else of the host is writable.
shares=$(echo "$SB_SHARES" | while IFS='|' read -r tag mp; do
  [ -n "$tag" ] || continue
  $BB mkdir -p "$mp"
  $BB mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$SB_MSIZE" "$tag" "$mp" || echo "$mp"
done)
[ -z "$shares" ] || die "cannot mount the output share at $shares"
# cgroups laid out as on the host, or v2 only (SB_MOUNTS: "type|options|mount point" per line).
echo "$SB_MOUNTS" | while IFS='|' read -r type opts mp; do
  [ -n "$type" ] || continue
  $BB mkdir -p "$mp"
  # An option this kernel does not know (cgroup2's memory_recursiveprot on an older one): try without.
  $BB mount -t "$type" -o "$opts" "$type" "$mp" 2>/dev/null || { [ "$type" = cgroup2 ] && $BB mount -t cgroup2 cgroup2 "$mp"; } \
    || say "warning: cannot mount $type ($opts) at $mp on this kernel"
done
# The host's namespace limits (SB_LIMITS: "file=value" per line); the guest's own come from its smaller memory.
echo "$SB_LIMITS" | while IFS='=' read -r file value; do
  [ -n "$file" ] && [ -e "$file" ] && echo "$value" > "$file"
done
if [ -d /sys/kernel/tracing ]; then
  $BB mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || say "note: no tracefs on this kernel"
fi
release=$($BB uname -r)
if [ -n "$SB_MODULES_DIR" ]; then
  $BB mkdir -p "/lib/modules/$release"
  $BB mount --bind "$SB_MODULES_DIR" "/lib/modules/$release"
  # The kernel asks for modules it lacks (veth, fuse, ...) through this.
  echo /.sockbench/bin/modprobe > /proc/sys/kernel/modprobe
  for m in $SB_PRELOAD; do
    $BB modprobe "$m" 2>/dev/null || say "note: no module $m on this kernel"
  done
fi
$BB hostname "$SB_HOSTNAME"
$BB ip link set lo up 2>/dev/null
echo "$release" > "$SB_RUN_DIR/release"
cd "$SB_REPO" || die "no repository checkout at $SB_REPO"
say "kernel $release, running in $SB_REPO"
if [ -n "$SB_EXEC" ]; then
  say "exec: $SB_EXEC"
  SOCKBENCH_OUT="$SB_OUT" SOCKBENCH_RUN_DIR="$SB_RUN_DIR" sh -c "$SB_EXEC" < /dev/null
  rc=$?
  echo "exec $rc" >> "$SB_RUN_DIR/status"
  say "exec: exit status $rc"
else
  for s in $SB_STUDIES; do
    say "study $s: start"
    # shellcheck disable=SC2086 # SB_STUDY_ARGS is a list of words the host checked
    "$SB_NODE" dist/app/cli.js run "$s" $SB_STUDY_ARGS --out "$SB_OUT" < /dev/null
    rc=$?
    echo "$s $rc" >> "$SB_RUN_DIR/status"
    say "study $s: exit status $rc"
  done
fi
$BB dmesg > "$SB_RUN_DIR/dmesg.txt" 2>/dev/null
say "done"
off
