#!/usr/bin/env bash
# tickcast's local Apache Kafka: one KRaft node (broker + controller) on 127.0.0.1.
#
#   infra/kafka/kafka.sh fetch    download the broker jars from Maven Central (skipped when present)
#   infra/kafka/kafka.sh start    format storage once, start in the background, wait until it answers
#   infra/kafka/kafka.sh stop     graceful stop (SIGTERM), SIGKILL after KAFKA_STOP_TIMEOUT seconds
#   infra/kafka/kafka.sh status   exit 0 when a broker answers a metadata request on the port
#   infra/kafka/kafka.sh logs     last lines of the broker log
#
# Environment (all optional):
#   KAFKA_PORT (port of TICKCAST_KAFKA_BOOTSTRAP, else 19092)  KAFKA_CONTROLLER_PORT (19093)  TICKCAST_DATA_DIR (<repo>/.tickcast)
#   TICKCAST_KAFKA_VERSION (3.9.2)  TICKCAST_PARTITIONS (4)  KAFKA_HEAP_OPTS (-Xmx1g -Xms1g -Xmn512m -XX:+AlwaysPreTouch)
#   KAFKA_GC_OPTS (-XX:+UseParallelGC)
#   KAFKA_LIB_DIR (infra/kafka/lib)  KAFKA_M2_REPO (infra/kafka/.m2)
#   KAFKA_START_TIMEOUT (120)  KAFKA_STOP_TIMEOUT (30)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
HOST=127.0.0.1
BOOTSTRAP_PORT="${TICKCAST_KAFKA_BOOTSTRAP:-}"
BOOTSTRAP_PORT="${BOOTSTRAP_PORT%%,*}"
BOOTSTRAP_PORT="${BOOTSTRAP_PORT##*:}"
PORT="${KAFKA_PORT:-${BOOTSTRAP_PORT:-19092}}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
VERSION="${TICKCAST_KAFKA_VERSION:-3.9.2}"
PARTITIONS="${TICKCAST_PARTITIONS:-4}"
LIB="${KAFKA_LIB_DIR:-$HERE/lib}"
M2="${KAFKA_M2_REPO:-$HERE/.m2}"
DATA_ROOT="${TICKCAST_DATA_DIR:-$REPO/.tickcast}"
[[ "$DATA_ROOT" = /* ]] || DATA_ROOT="$PWD/$DATA_ROOT"
HOME_DIR="$DATA_ROOT/kafka"
LOG_DIRS="$HOME_DIR/data"
PROPS="$HOME_DIR/server.properties"
PID_FILE="$HOME_DIR/kafka.pid"
LOG_FILE="$HOME_DIR/kafka.log"
# A fixed, pre-touched 1 GiB heap with a 512 MiB young generation, collected by the parallel
# collector. Measured under the 5,000 ticks/s pipeline benchmark on 2 shared cores, broker GC
# pauses were the stream's p99: with 512 MiB and G1 at IHOP 35 % the ~190 MiB of live data
# kept every young GC starting a marking cycle (Remark pauses 60-140 ms); G1 with its 20 ms
# goal shrank the young generation to ~50 MiB and paused every second (12-70 ms); a fixed
# 512 MiB young generation paused every ~10 s, 40-95 ms under G1 and mostly 10-40 ms under
# the parallel collector. Pre-touching moves the page faults of a first pass through eden to
# start-up. Large production brokers should keep Kafka's own G1 recommendations.
HEAP="${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g -Xmn512m -XX:+AlwaysPreTouch}"
GC_OPTS="${KAFKA_GC_OPTS:--XX:+UseParallelGC}"
GC_LOG="$HOME_DIR/kafka-gc.log"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

say() { echo "kafka: $*"; }
die() { echo "kafka: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need_java() {
  command -v java >/dev/null 2>&1 \
    || die "java not found on PATH: install a JDK/JRE 17+ (e.g. apt-get install -y openjdk-17-jre-headless)"
  local major
  major="$(java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }')"
  local wanted=11
  [[ "$VERSION" == 4.* ]] && wanted=17
  [[ "$major" =~ ^[0-9]+$ ]] && (( major >= wanted )) \
    || die "java $major is too old for Kafka $VERSION: install a JDK/JRE $wanted+"
}

jars_present() { [[ -f "$LIB/kafka_2.13-$VERSION.jar" ]]; }

cmd_fetch() {
  if jars_present; then
    say "jars for Kafka $VERSION already in $LIB ($(find "$LIB" -name '*.jar' | wc -l) jars)"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 \
    || die "mvn not found on PATH: install Maven (e.g. apt-get install -y maven) to fetch the Kafka jars"
  local profile=() t0
  [[ "$VERSION" == 4.* ]] && profile=(-Dkafka4)
  t0="$(now)"
  rm -rf "$LIB"
  say "fetching Kafka $VERSION jars from Maven Central into $LIB"
  mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" -Dmaven.repo.local="$M2" -Dkafka.version="$VERSION" "${profile[@]}" \
    dependency:copy-dependencies -DoutputDirectory="$LIB" \
    || die "mvn could not fetch org.apache.kafka:kafka_2.13:$VERSION (is Maven Central reachable?)"
  jars_present || die "mvn ran but $LIB/kafka_2.13-$VERSION.jar is missing"
  say "fetched $(find "$LIB" -name '*.jar' | wc -l) jars in $(elapsed "$t0")s"
}

# A real Kafka Metadata request (v4: exists in 3.x and 4.x) for no topics; succeeds when the
# answer carries our correlation id and at least one registered broker.
probe() {
  local port="${1:-$PORT}"
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    # size=23 | api_key=3 api_version=4 correlation_id=0x7463 client_id="kafka.sh" topics=[] auto=0
    printf "\x00\x00\x00\x17\x00\x03\x00\x04\x00\x00\x74\x63\x00\x08kafka.sh\x00\x00\x00\x00\x00" >&3
    reply="$(head -c 16 <&3 | od -An -tx1 | tr -d " \n")"
    [[ ${#reply} -eq 32 && ${reply:8:8} == 00007463 && ${reply:24:8} != 00000000 ]]
  ' "$HOST" "$port" 2>/dev/null
}

port_in_use() {
  local port="$1"
  if command -v ss >/dev/null 2>&1; then
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q .
  else
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$port" 2>/dev/null
  fi
}

port_owner() {
  command -v ss >/dev/null 2>&1 || { echo "unknown process"; return; }
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -1 || echo "unknown process"
}

# The pid in the pid file when it is alive and really our broker (guards against recycled pids).
our_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

clear_stale_pid() {
  if [[ -f "$PID_FILE" ]] && ! our_pid >/dev/null; then
    say "removing stale pid file $PID_FILE"
    rm -f "$PID_FILE"
  fi
}

write_config() {
  mkdir -p "$LOG_DIRS"
  cat >"$PROPS" <<EOF
# Generated by infra/kafka/kafka.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$LOG_DIRS

# Single node: every internal topic has one replica.
num.partitions=$PARTITIONS
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true

# A 2-core dev box shared with the stream workers and the API.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
log.segment.bytes=134217728
log.retention.hours=168
log.retention.check.interval.ms=300000
EOF
}

# A KRaft cluster id: 16 random bytes in base64url. One starting with "-" reads as an option
# to the storage tool ("-t: expected one argument": 1 format in 64 failed), so it is drawn
# again, as Kafka's own Uuid.randomUuid() does.
new_cluster_id() {
  local id="-"
  while [[ "$id" == -* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  echo "$id"
}

format_once() {
  [[ -f "$LOG_DIRS/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$(new_cluster_id)"
  say "formatting KRaft storage in $LOG_DIRS (cluster $cluster_id)"
  java -Xmx256m -cp "$LIB/*" $(log_opts) kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$PROPS" >>"$LOG_FILE" 2>&1 \
    || die "formatting the KRaft storage failed: see $LOG_FILE"
}

log_opts() {
  if compgen -G "$LIB/reload4j-*.jar" >/dev/null; then
    echo "-Dlog4j.configuration=file:$HERE/log4j.properties"
  else
    echo "-Dlog4j2.configurationFile=$HERE/log4j2.properties"
  fi
}

wait_up() {
  local pid="$1" t0="$2"
  while ! probe; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 15 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "the broker exited during start-up: see $LOG_FILE"
    fi
    if awk -v a="$t0" -v b="$(now)" -v t="$START_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
      die "the broker (pid $pid) did not answer on $HOST:$PORT within ${START_TIMEOUT}s: see $LOG_FILE"
    fi
    sleep 0.2
  done
}

cmd_start() {
  local t0 pid
  t0="$(now)"
  mkdir -p "$HOME_DIR"
  clear_stale_pid
  if pid="$(our_pid)"; then
    wait_up "$pid" "$t0"
    say "already running on $HOST:$PORT (pid $pid)"
    return 0
  fi
  if probe; then
    say "a broker not started from $HOME_DIR already answers on $HOST:$PORT: using it"
    return 0
  fi
  for p in "$PORT" "$CONTROLLER_PORT"; do
    port_in_use "$p" && die "port $p is taken by $(port_owner "$p"): stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
  done
  need_java
  jars_present || cmd_fetch
  write_config
  format_once
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  # shellcheck disable=SC2086  # HEAP, GC_OPTS and log_opts are option lists
  setsid nohup java $HEAP -server $GC_OPTS \
    "-Xlog:gc:file=$GC_LOG:time,uptime:filecount=3,filesize=10M" \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true $(log_opts) \
    -cp "$LIB/*" kafka.Kafka "$PROPS" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  sleep 0.1
  if ! kill -0 "$pid" 2>/dev/null && command -v pgrep >/dev/null 2>&1; then
    pid="$(pgrep -n -f "kafka.Kafka $PROPS" || echo "$pid")"  # setsid forked: find the JVM
  fi
  echo "$pid" >"$PID_FILE"
  wait_up "$pid" "$t0"
  say "Kafka $VERSION up on $HOST:$PORT (pid $pid) in $(elapsed "$t0")s"
}

cmd_stop() {
  local pid t0
  clear_stale_pid
  if ! pid="$(our_pid)"; then
    say "not running (no broker started from $HOME_DIR)"
    return 0
  fi
  t0="$(now)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((STOP_TIMEOUT * 5))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still alive after ${STOP_TIMEOUT}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_FILE"
  say "stopped (pid $pid) in $(elapsed "$t0")s"
}

cmd_status() {
  local pid
  if probe; then
    if pid="$(our_pid)"; then
      say "up on $HOST:$PORT (pid $pid)"
    else
      say "up on $HOST:$PORT (not started from $HOME_DIR)"
    fi
    return 0
  fi
  if pid="$(our_pid)"; then
    say "pid $pid is alive but not answering on $HOST:$PORT (starting or stuck: see $LOG_FILE)"
  else
    say "down"
  fi
  return 1
}

cmd_logs() { tail -n "${1:-50}" "$LOG_FILE"; }

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  cluster-id) shift; for _ in $(seq "${1:-1}"); do new_cluster_id; done ;;
  *) echo "usage: $0 {fetch|start|stop|restart|status|logs [n]|cluster-id [n]}" >&2; exit 2 ;;
esac
