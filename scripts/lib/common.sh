# Shared by scripts/quickstart, scripts/test and friends. Source it; do not run it.

GW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Debian packages the build, the tests and the quickstart need.
GW_BUILD_PACKAGES=(cmake g++ make pkg-config
  libpoco-dev libpaho-mqttpp-dev libpaho-mqtt-dev libsqlite3-dev libssl-dev
  libboost-program-options-dev libsystemd-dev libgtest-dev libgmock-dev libbenchmark-dev libpq-dev)
GW_RUN_PACKAGES=(mosquitto mosquitto-clients python3 python3-yaml python3-jsonschema sqlite3 openssl postgresql rabbitmq-server prometheus debhelper lintian)

log() { printf '%s: %s\n' "${GW_SCRIPT:-gw}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs whichever of the given Debian packages are missing.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing missing Debian packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
}

# Prints a TCP port on 127.0.0.1 that is free right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a throw-away Mosquitto on 127.0.0.1:PORT with its files in DIR; sets MOSQ_PID.
start_mosquitto() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  local user=""
  # As root, Mosquitto would drop to its own user and lose access to this folder.
  [ "$(id -u)" -eq 0 ] && user="user root"
  cat >"$dir/mosquitto.conf" <<CONF
$user
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $dir/mosquitto.log
CONF
  /usr/sbin/mosquitto -c "$dir/mosquitto.conf" &
  MOSQ_PID=$!
  local i
  for i in $(seq 1 100); do
    if mosquitto_pub -h 127.0.0.1 -p "$port" -t gw/ping -m x -q 1 2>/dev/null; then return 0; fi
    kill -0 "$MOSQ_PID" 2>/dev/null || die "mosquitto exited; see $dir/mosquitto.log"
    sleep 0.1
  done
  die "mosquitto did not start on port $port"
}

# Configures and builds into DIR with the given build type and extra CMake arguments.
build_tree() {
  local dir=$1 type=$2
  shift 2
  cmake -S "$GW_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null || die "cmake configure failed"
  cmake --build "$dir" -j"$(nproc)" || die "build failed"
}
