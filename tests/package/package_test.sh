#!/usr/bin/env bash
# Builds the Debian packages from a copy of the source tree, installs them, checks owners and
# modes, validates the default config and runs the daemon briefly as the service user, then
# purges and checks that state is gone. Needs root (dpkg -i); says so and skips otherwise.
set -euo pipefail
src=${1:?usage: package_test.sh SOURCE_DIR}
if [ "$(id -u)" -ne 0 ]; then
  echo "package test skipped: needs root to install packages"
  exit 77
fi
for tool in dpkg-buildpackage dh lintian; do
  command -v "$tool" >/dev/null || { echo "package test: $tool missing (scripts/test installs debhelper and lintian)"; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"; dpkg --purge mhhs-gateway-dev mhhs-gateway >/dev/null 2>&1 || true' EXIT
mkdir "$work/src"
(cd "$src" && git ls-files -z | xargs -0 tar -cf - ) | tar -xf - -C "$work/src"
echo "== building packages"
(cd "$work/src" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || { tail -40 "$work/build.log"; exit 1; }
deb=$(ls "$work"/mhhs-gateway_*.deb)
dev=$(ls "$work"/mhhs-gateway-dev_*.deb)
echo "== lintian"
lintian --fail-on error "$deb" "$dev" || { echo "lintian reports errors"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
echo "== installing"
dpkg -i "$deb" "$dev" >/dev/null
getent passwd mhhs-gateway >/dev/null || fail "no mhhs-gateway user"
check() {  # path owner:group mode
  local got
  got=$(stat -c '%U:%G %a' "$1") || fail "$1 missing"
  [ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
}
check /etc/mhhs-gateway root:mhhs-gateway 750
check /etc/mhhs-gateway/gateway.ini root:mhhs-gateway 640
check /var/lib/mhhs-gateway mhhs-gateway:mhhs-gateway 750
check /var/spool/mhhs-gateway/inbox mhhs-gateway:mhhs-gateway 770
check /var/spool/mhhs-gateway/archive mhhs-gateway:mhhs-gateway 750
check /usr/sbin/mhhs-gatewayd root:root 755
[ -f /usr/lib/systemd/system/mhhs-gateway.service ] || fail "no systemd unit"
[ -f /usr/share/mhhs-gateway/flows/D0010002.flow ] || fail "no flow catalogue"
[ -f /usr/include/mhhs/connector.h ] || fail "no SDK headers"
grep -q '/etc/mhhs-gateway/gateway.ini' /var/lib/dpkg/info/mhhs-gateway.conffiles || fail "gateway.ini is not a conffile"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /usr/lib/systemd/system/mhhs-gateway.service >"$work/verify.txt" 2>&1 || true
  if grep -q . "$work/verify.txt"; then cat "$work/verify.txt"; fail "systemd-analyze verify is not clean"; fi
fi
echo "== check-config and a short run as the service user"
runuser -u mhhs-gateway -- /usr/sbin/mhhs-gatewayd --config /etc/mhhs-gateway/gateway.ini --check-config
# setpriv execs the daemon itself, so $! is its pid and SIGTERM reaches it.
setpriv --reuid=mhhs-gateway --regid=mhhs-gateway --init-groups \
  /usr/sbin/mhhs-gatewayd --config /etc/mhhs-gateway/gateway.ini >"$work/run.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do grep -q "started:" "$work/run.log" && break; sleep 0.1; done
grep -q "started:" "$work/run.log" || { cat "$work/run.log"; fail "the daemon did not start as mhhs-gateway"; }
kill -TERM "$pid"
wait "$pid" || { cat "$work/run.log"; fail "the daemon did not stop cleanly"; }
check /var/lib/mhhs-gateway/journal.db mhhs-gateway:mhhs-gateway 640
runuser -u mhhs-gateway -- /usr/bin/mhhs-gatewayctl --config /etc/mhhs-gateway/gateway.ini status >/dev/null || fail "ctl status"
echo "== purging"
dpkg --purge mhhs-gateway-dev mhhs-gateway >/dev/null
[ ! -e /var/lib/mhhs-gateway ] || fail "purge left /var/lib/mhhs-gateway"
[ ! -e /var/spool/mhhs-gateway ] || fail "purge left /var/spool/mhhs-gateway"
[ ! -e /etc/mhhs-gateway/gateway.ini ] || fail "purge left the conffile"
! getent passwd mhhs-gateway >/dev/null || fail "purge left the user"
echo "package test: 1 passed, 0 failed"
