#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, with accounting (MariaDB + slurmdbd, so that
# `sacct` works), for the cluster test (tests/test_slurm.py) and for trying profiles/slurm:
#
#   scripts/slurm-cluster.sh start          start what is not running, wait until the node is idle
#   scripts/slurm-cluster.sh stop [NAME...] stop the daemons this script started (all, or NAME...)
#   scripts/slurm-cluster.sh status         which daemons run, who started them, the node's state
#
# Needs root. Debian packages that are missing are installed with scripts/system-deps.sh.
# Safe to call twice: a daemon that already runs is left alone and not recorded, so `stop`
# stops only what `start` started (pid files in $MEMSWEEP_SLURM_STATE, /run/memsweep-slurm).
# No systemd and no usable cgroups are assumed: proctrack/linuxproc, task/none.
# `start` prints one line on stdout, "started: NAME..." (the daemons it started; may be none).
# Exit status: 0 done, 1 failed, 2 cannot run here (not root, no packages, a foreign
# slurm.conf), 3 (status) the cluster is not up.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

STATE_DIR=${MEMSWEEP_SLURM_STATE:-/run/memsweep-slurm}
SPOOL_DIR=/var/lib/memsweep-slurm
LOG_DIR=/var/log/memsweep-slurm
CONF_DIR=/etc/slurm
CLUSTER=memsweep
DB_NAME=slurm_acct_db
DB_USER=slurm
MARKER="# Written by memsweep scripts/slurm-cluster.sh (rewritten on each start)."
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
BINARIES=(munge unmunge munged mungekey mariadbd mariadb mariadb-admin slurmdbd slurmctld slurmd
  sinfo scontrol sacct sacctmgr sbatch srun)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOST=$(hostname -s)
STARTED=()

log() { echo "slurm-cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}
cannot() {
  log "$*"
  exit 2
}

# Processes ------------------------------------------------------------------------------
pids_named() { # the pids of the processes whose command name is $1
  local file name
  for file in /proc/[0-9]*/comm; do
    name=$(cat "$file" 2>/dev/null) || continue
    [[ $name == "$1" ]] || continue
    file=${file#/proc/}
    echo "${file%/comm}"
  done
}

our_pid() { # the pid of daemon $1 if this script started it and it still runs
  local file="$STATE_DIR/$1.pid" pid name
  [[ -r $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  name=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $name == "$1" ]] || return 1
  echo "$pid"
}

record() { # record $1 (started by us) with the pid found in pid file $2
  local pid
  pid=$(<"$2")
  [[ $pid =~ ^[0-9]+$ ]] || die "$1: no pid in $2"
  echo "$pid" >"$STATE_DIR/$1.pid"
  STARTED+=("$1")
  log "$1: started (pid $pid)"
}

launch() { # launch NAME COMMAND...: output to $LOG_DIR/NAME.out; the lock (fd 9) not inherited
  local name=$1
  shift
  "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 9>&-
}

wait_for() { # wait_for SECONDS WHAT COMMAND...: run COMMAND until it succeeds
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what: not up after ${seconds}s (logs: $LOG_DIR)"
    sleep 0.2
  done
}

# Set-up ---------------------------------------------------------------------------------
ensure_packages() {
  local binary missing=()
  for binary in "${BINARIES[@]}"; do
    command -v "$binary" >/dev/null || missing+=("$binary")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || cannot "missing ${missing[*]} and no apt-get to install them"
  log "missing ${missing[*]}: installing the Debian packages (scripts/system-deps.sh)"
  bash "$HERE/system-deps.sh" >&2 || cannot "scripts/system-deps.sh failed"
  for binary in "${missing[@]}"; do
    command -v "$binary" >/dev/null || cannot "$binary still missing after installing packages"
  done
}

ensure_hostname() {
  getent hosts "$HOST" >/dev/null && return 0
  log "hostname $HOST does not resolve: adding it to /etc/hosts"
  echo "127.0.0.1 $HOST" >>/etc/hosts
}

ours_or_absent() { # a config file may be (re)written only if absent or written by this script
  [[ ! -e $1 ]] || grep -qxF "$MARKER" "$1" ||
    cannot "$1 exists and was not written by this script; move it away to use this cluster"
}

write_file() { # write_file PATH MODE CONTENT: returns 0 if the file changed
  if [[ -f $1 ]] && [[ $(<"$1") == "$3" ]]; then
    return 1
  fi
  install -m "$2" /dev/null "$1"
  printf '%s\n' "$3" >"$1"
}

node_line() {
  # CPUs and topology as slurmd sees them; RealMemory a fixed 75% of MemTotal (MemAvailable
  # changes between runs and every start would then look like a new configuration).
  local hardware memory
  hardware=$(slurmd -C | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
  memory=$(awk '/^MemTotal:/ { print int($2 / 1024 * 3 / 4) }' /proc/meminfo)
  echo "NodeName=$HOST ${hardware}RealMemory=$memory State=UNKNOWN"
}

slurm_conf() {
  cat <<EOF
$MARKER
# A one-node cluster for memsweep's cluster test; see scripts/slurm-cluster.sh.
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$SPOOL_DIR/slurmctld
SlurmdSpoolDir=$SPOOL_DIR/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No systemd and no usable cgroups: proctrack/cgroup fails (and jobs were reported
# COMPLETED without running), so processes are tracked by /proc and tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default a job that asks for no memory takes the whole node.
DefMemPerCPU=500
# Finished jobs stay visible to squeue for 5 minutes.
MinJobAge=300
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
KillWait=10
# Accounting through slurmdbd: sacct (the Snakemake executor's status command) works,
# and reports each job's requested memory (ReqMem) and its steps' peak (MaxRSS).
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
# MaxRSS counts a step's pages once (PSS), not once per process that maps them; without
# cgroups, a step past its job's memory is killed from these samples (OUT_OF_MEMORY).
JobAcctGatherParams=UsePss,OverMemoryKill
JobCompType=jobcomp/none
$(node_line)
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

slurmdbd_conf() {
  cat <<EOF
$MARKER
AuthType=auth/munge
DbdHost=$HOST
DbdPort=6819
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=$DB_NAME
StorageUser=$DB_USER
StoragePass=$1
EOF
}

db_password() { # the one in our slurmdbd.conf, or a new one
  local conf=$CONF_DIR/slurmdbd.conf password=""
  [[ -r $conf ]] && password=$(sed -n 's/^StoragePass=//p' "$conf")
  if [[ -z $password ]]; then
    password=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 32)
  fi
  echo "$password"
}

# Daemons --------------------------------------------------------------------------------
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munged() {
  if munge_works; then
    log "munged: already running"
    return
  fi
  [[ -z $(pids_named munged) ]] || die "munged runs but does not answer (munge -n | unmunge)"
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  launch munged runuser -u munge -- munged ||
    die "munged did not start (see $LOG_DIR/munged.out, /var/log/munge/munged.log)"
  wait_for 20 munged munge_works
  record munged /run/munge/munged.pid
}

mariadb_alive() { mariadb-admin --connect-timeout=2 ping; }

start_mariadbd() {
  if mariadb_alive >/dev/null 2>&1; then
    log "mariadbd: already running"
    return
  fi
  [[ -z $(pids_named mariadbd) ]] || die "mariadbd runs but does not answer (mariadb-admin ping)"
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >>"$LOG_DIR/mariadbd.out" 2>&1
  fi
  rm -f /run/mysqld/mysqld.pid
  # No TCP port: slurmdbd reaches it on the Unix socket (StorageHost=localhost).
  # A simple command in the background: the forked shell execs it and does not linger.
  setsid mariadbd --user=mysql --skip-networking --pid-file=/run/mysqld/mysqld.pid \
    </dev/null >>"$LOG_DIR/mariadbd.out" 2>&1 9>&- &
  wait_for 60 mariadbd mariadb_alive
  wait_for 10 mariadbd test -s /run/mysqld/mysqld.pid
  record mariadbd /run/mysqld/mysqld.pid
}

accounting_db() { # the database and the user slurmdbd uses, each start (idempotent)
  mariadb --batch <<EOF || die "could not set up the accounting database (as MariaDB's root)"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$1';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
EOF
}

sacctmgr_works() { sacctmgr --noheader --parsable2 list cluster format=cluster; }

start_slurmdbd() {
  if [[ -n $(pids_named slurmdbd) ]]; then
    log "slurmdbd: already running"
  else
    rm -f /run/slurmdbd.pid
    launch slurmdbd slurmdbd ||
      die "slurmdbd did not start (see $LOG_DIR/slurmdbd.log)"
    wait_for 20 slurmdbd test -s /run/slurmdbd.pid
    record slurmdbd /run/slurmdbd.pid
  fi
  wait_for 60 slurmdbd sacctmgr_works
  if ! sacctmgr_works | grep -qxF "$CLUSTER"; then
    sacctmgr --immediate add cluster "$CLUSTER" >&2
  fi
}

slurmctld_up() { scontrol ping | grep -q "is UP"; }

start_slurmctld() {
  if slurmctld_up 2>/dev/null; then
    log "slurmctld: already running"
    return
  fi
  [[ -z $(pids_named slurmctld) ]] || die "slurmctld runs but does not answer (scontrol ping)"
  rm -f /run/slurmctld.pid
  launch slurmctld slurmctld ||
    die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
  wait_for 30 slurmctld slurmctld_up
  wait_for 10 slurmctld test -s /run/slurmctld.pid
  record slurmctld /run/slurmctld.pid
}

start_slurmd() {
  if [[ -n $(pids_named slurmd) ]]; then
    log "slurmd: already running"
    return
  fi
  rm -f /run/slurmd.pid
  launch slurmd slurmd ||
    die "slurmd did not start (see $LOG_DIR/slurmd.log)"
  wait_for 20 slurmd test -s /run/slurmd.pid
  record slurmd /run/slurmd.pid
}

node_state() { # empty when slurmctld does not answer (sinfo would retry for 10 s)
  command -v scontrol >/dev/null && slurmctld_up 2>/dev/null || return 0
  sinfo --noheader --nodes="$HOST" --format=%T 2>/dev/null | head -n 1 || true
}

wait_for_idle_node() {
  local deadline=$((SECONDS + 60)) state resumed=0
  while true; do
    state=$(node_state)
    case $state in
      idle | mixed | allocated | completing) return 0 ;;
      *down* | *drain* | *fail*)
        if ((SECONDS >= resumed + 5)); then
          log "node $HOST is $state: resuming it"
          scontrol update nodename="$HOST" state=resume >&2 || true
          resumed=$SECONDS
        fi
        ;;
    esac
    ((SECONDS < deadline)) || die "node $HOST is '${state:-unknown}' after 60s (see $LOG_DIR)"
    sleep 0.2
  done
}

# Commands -------------------------------------------------------------------------------
start() {
  local password changed=0
  ensure_packages
  ensure_hostname
  ours_or_absent "$CONF_DIR/slurm.conf"
  ours_or_absent "$CONF_DIR/slurmdbd.conf"
  install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$SPOOL_DIR/slurmctld" "$SPOOL_DIR/slurmd"
  password=$(db_password)
  write_file "$CONF_DIR/slurm.conf" 0644 "$(slurm_conf)" && changed=1
  write_file "$CONF_DIR/slurmdbd.conf" 0600 "$(slurmdbd_conf "$password")" || true

  start_munged
  start_mariadbd
  accounting_db "$password"
  start_slurmdbd
  if ((changed)) && slurmctld_up 2>/dev/null; then
    log "slurm.conf changed: scontrol reconfigure"
    scontrol reconfigure >&2
  fi
  start_slurmctld
  start_slurmd
  wait_for_idle_node
  log "node $HOST: $(node_state); partition: $(sinfo --noheader --format=%P | head -n 1)"
  echo "started: ${STARTED[*]}"
}

stop() {
  local names=("$@") name pid deadline index
  ((${#names[@]})) || names=("${DAEMONS[@]}")
  for name in "${names[@]}"; do
    [[ " ${DAEMONS[*]} " == *" $name "* ]] || die "stop: unknown daemon $name (${DAEMONS[*]})"
  done
  for ((index = ${#DAEMONS[@]} - 1; index >= 0; index--)); do # the reverse of the start order
    name=${DAEMONS[index]}
    [[ " ${names[*]} " == *" $name "* ]] || continue
    if ! pid=$(our_pid "$name"); then
      rm -f "$STATE_DIR/$name.pid"
      continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if [[ -e /proc/$pid ]]; then
      log "$name (pid $pid) ignored SIGTERM for 30s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE_DIR/$name.pid"
    log "$name: stopped (pid $pid)"
  done
}

status() {
  local name pid others state
  for name in "${DAEMONS[@]}"; do
    if pid=$(our_pid "$name"); then
      echo "$name: running (pid $pid, started by this script)"
    elif others=$(pids_named "$name") && [[ -n $others ]]; then
      echo "$name: running (pid $(echo "$others" | tr '\n' ' ')not started by this script)"
    else
      echo "$name: not running"
    fi
  done
  state=$(node_state)
  echo "node $HOST: ${state:-unknown (no slurmctld answers)}"
  case $state in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 3 ;;
  esac
}

main() {
  local command=${1:-}
  shift || true
  case $command in
    start | stop | status) ;;
    *)
      echo "usage: $0 start | stop [${DAEMONS[*]}] | status" >&2
      exit 64
      ;;
  esac
  if [[ $command == status ]]; then
    status
    return
  fi
  [[ $(id -u) -eq 0 ]] || cannot "$command needs root"
  install -d -m 0755 "$STATE_DIR"
  exec 9>"$STATE_DIR/lock"
  flock 9 # one start or stop at a time
  "$command" "$@"
}

main "$@"
