#!/usr/bin/env bash
# Makes a real Docker Engine available to the agent's container tests, on a developer's machine
# and in CI alike: installs docker.io and busybox-static from Debian packages when missing,
# starts a dockerd of its own on a dedicated socket (so it never clashes with a system daemon),
# waits until it answers, and makes sure the image steward-test/busybox:latest exists. The image
# is imported from busybox-static rather than pulled because no image registry can be reached.
#
# Usage:
#   eval "$(scripts/docker-test-env.sh)"   # start (or reuse) it; exports STEWARD_TEST_DOCKER_SOCKET
#   scripts/docker-test-env.sh stop         # stop the daemon it started
#
# Only the export line goes to stdout; progress goes to stderr. Under `set -e`, assign the output
# to a variable before eval: a failure inside eval's argument would go unnoticed. Safe to run repeatedly and
# concurrently: a second run finds the daemon answering and the image present, and does nothing.
#
# Overrides: STEWARD_TEST_DOCKER_RUN (socket, pid file, exec root; default
# /run/steward-test-docker) and STEWARD_TEST_DOCKER_DATA (data root and log; default
# /var/lib/steward-test-docker).
set -euo pipefail

RUN_DIR="${STEWARD_TEST_DOCKER_RUN:-/run/steward-test-docker}"
DATA_DIR="${STEWARD_TEST_DOCKER_DATA:-/var/lib/steward-test-docker}"
SOCKET="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"
LOG="$DATA_DIR/dockerd.log"
IMAGE="steward-test/busybox:latest"

log() { echo "docker-test-env: $*" >&2; }

# The CLI from docker.io matches the daemon it ships; another client on PATH may be newer than
# the daemon's API (it negotiates, but there is no reason to depend on that).
docker_bin() {
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi
}

docker_cli() {
  timeout 60 "$(docker_bin)" -H "unix://$SOCKET" "$@"
}

# A daemon that hangs must fail the check, not the script.
answers() {
  [ -S "$SOCKET" ] && timeout 10 "$(docker_bin)" -H "unix://$SOCKET" info >/dev/null 2>&1
}

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  installed busybox-static || missing+=(busybox-static)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${missing[*]} and not root: cannot install them"
    return 1
  fi
  log "installing ${missing[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
}

# Whether pid runs the named program. A killed process that nobody reaped (a zombie) still has
# its name and answers kill -0, so its state is read too.
runs() {
  local pid="$1" name="$2" state
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

daemon_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [ -n "$pid" ] && runs "$pid" dockerd && echo "$pid"
}

# dockerd adopts the containerd named by this pid file if that pid is alive, and signals it on
# shutdown; after the machine was cleaned up the pid may belong to an unrelated process, so the
# file is kept only while it names a containerd of ours (which dockerd then rightly adopts).
drop_stale_containerd_pid() {
  local file="$RUN_DIR/exec/containerd/containerd.pid" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file" 2>/dev/null || true)"
  if [ -n "$pid" ] && runs "$pid" containerd \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$RUN_DIR/exec/"; then
    return 0
  fi
  rm -f "$file"
}

start_daemon() {
  local pid
  if pid="$(daemon_pid)"; then
    log "dockerd $pid is starting; waiting for it"
  else
    # A socket or pid file left by a daemon that died would make the new one refuse to start.
    rm -f "$SOCKET" "$PIDFILE"
    drop_stale_containerd_pid
    mkdir -p "$DATA_DIR/data" "$RUN_DIR/exec"
    log "starting dockerd on $SOCKET (log: $LOG)"
    # No bridge and no iptables: the tests run containers with --network none, and leaving the
    # host's firewall alone keeps the daemon harmless on any machine. A containerd namespace of
    # its own keeps its containers apart if a system containerd is shared. The daemon outlives
    # this script, so it must not inherit the lock: fd 9 is closed for it.
    setsid dockerd \
      --host "unix://$SOCKET" \
      --pidfile "$PIDFILE" \
      --data-root "$DATA_DIR/data" \
      --exec-root "$RUN_DIR/exec" \
      --iptables=false --ip-masq=false --bridge=none \
      --containerd-namespace steward-test \
      --containerd-plugins-namespace steward-test-plugins \
      --log-level warn \
      </dev/null >>"$LOG" 2>&1 9>&- &
  fi
  for _ in $(seq 1 120); do
    if answers; then return 0; fi
    sleep 0.5
  done
  log "dockerd does not answer on $SOCKET; the end of its log:"
  tail -n 30 "$LOG" >&2 || true
  return 1
}

ensure_image() {
  if docker_cli image inspect "$IMAGE" >/dev/null 2>&1; then return 0; fi
  log "importing $IMAGE from busybox-static"
  IMAGE_ROOT="$(mktemp -d)"
  trap 'rm -rf "$IMAGE_ROOT"' EXIT
  mkdir -p "$IMAGE_ROOT/bin" "$IMAGE_ROOT/tmp"
  cp /bin/busybox "$IMAGE_ROOT/bin/busybox"
  # Every applet, so a test may use any command busybox has without rebuilding the image.
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$IMAGE_ROOT/bin/$applet"
  done
  tar -C "$IMAGE_ROOT" -cf - . \
    | docker_cli import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
}

stop_daemon() {
  local pid
  if ! pid="$(daemon_pid)"; then
    log "no dockerd of ours is running"
    return 0
  fi
  log "stopping dockerd $pid"
  kill "$pid"
  for _ in $(seq 1 60); do
    if ! runs "$pid" dockerd; then
      # dockerd bind-mounts its data root onto itself and leaves that mount behind.
      if mountpoint -q "$DATA_DIR/data"; then umount "$DATA_DIR/data" || true; fi
      return 0
    fi
    sleep 0.5
  done
  log "dockerd $pid did not stop within 30 s"
  return 1
}

mkdir -p "$RUN_DIR"
# Runs that overlap (two test commands at once) must not start two daemons on one socket.
exec 9>"$RUN_DIR/lock"
flock -w 300 9

case "${1:-start}" in
  start)
    if ! answers; then
      ensure_packages
      start_daemon
    fi
    installed busybox-static || ensure_packages
    ensure_image
    echo "export STEWARD_TEST_DOCKER_SOCKET=$SOCKET"
    ;;
  stop)
    stop_daemon
    ;;
  *)
    log "usage: $0 [start|stop]"
    exit 2
    ;;
esac
