#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, to run profiles/slurm against a real controller.
#
#   scripts/slurm-local.sh start    install (apt-get) and start munge, MariaDB, slurmdbd,
#                                   slurmctld and slurmd; wait until `sinfo` shows the node idle
#   scripts/slurm-local.sh stop     stop the daemons that `start` started
#   scripts/slurm-local.sh status   sinfo and the daemons' pids
#
# Root only (the daemons run as root here), Debian/Ubuntu, no systemd needed. This host is
# controller and only compute node; its CPUs and memory are read with `slurmd -C`. Accounting
# goes through slurmdbd into MariaDB, so `sacct` lists every job. Jobs need --account
# $SLURM_LOCAL_ACCOUNT and run in partition $SLURM_LOCAL_PARTITION (the default partition).
# Logs and state: $SLURM_LOCAL_STATE. /etc/slurm/slurm.conf is written only if absent or
# written by this script before.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/lib/slurm-local}
ACCOUNT=${SLURM_LOCAL_ACCOUNT:-facecompare}
PARTITION=${SLURM_LOCAL_PARTITION:-local}
CLUSTER=local
CONF_DIR=/etc/slurm
MARKER="# written by scripts/slurm-local.sh"
PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)

log() { echo "slurm-local: $*" >&2; }
die() { log "error: $*"; exit 1; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND once a second
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    die "$what did not come up within ${seconds}s (logs: $STATE/log, $STATE/mariadb)"
}

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
    log "installing ${missing[*]}"
    # policy-rc.d stops the packages from starting their daemons: this script starts them.
    # Without package lists (a fresh image) the first install fails and `apt-get update` runs.
    # No debconf questions: stdin may be a terminal.
    local -x DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created=1; fi
    { apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    } >"$STATE/log/apt-get.log" 2>&1 || { ((created)) && rm -f "$policy"; die "apt-get failed, see $STATE/log/apt-get.log"; }
    ((created)) && rm -f "$policy"
    return 0
}

write_configs() {
    local host node_line password
    host=$(hostname -s)
    node_line=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... RealMemory=<MiB>
    [[ $node_line == NodeName=* ]] || die "slurmd -C gave no node line: $node_line"
    if [[ -e $CONF_DIR/slurm.conf ]] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
        die "$CONF_DIR/slurm.conf exists and was not written by this script; not overwriting it"
    fi
    mkdir -p "$CONF_DIR"
    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
$node_line State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    (
        umask 077
        cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
EOF
    )
    echo "$password"
}

start_munge() {  # a munged already answering (the system's) is used, not replaced
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge "$STATE/munge" && chown munge:munge /run/munge "$STATE/munge"
    runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/munge/munged.pid"
    wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
    local password=$1
    mkdir -p /run/mysqld "$STATE/mariadb" && chown mysql:mysql /run/mysqld "$STATE/mariadb"
    if ! mariadb -e 'SELECT 1' >/dev/null 2>&1; then  # a server already answering is used
        setsid mariadbd --user=mysql --skip-networking --pid-file="$STATE/mariadb/mariadb.pid" \
            --socket=/run/mysqld/mysqld.sock --log-error="$STATE/mariadb/mariadb.log" \
            </dev/null >/dev/null 2>&1 &
    fi
    wait_for 60 MariaDB mariadb -e 'SELECT 1'
    mariadb <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start() {
    [[ $(id -u) == 0 ]] || die "run as root (munged, slurmdbd, slurmctld and slurmd are started here)"
    mkdir -p "$STATE/log" "$STATE/ctld" "$STATE/slurmd"
    install_packages
    local password
    password=$(write_configs)
    start_munge
    start_mariadb "$password"
    running "$STATE/slurmdbd.pid" || slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i -Q add account "$ACCOUNT" cluster="$CLUSTER" \
        description="slurm-local test account" >/dev/null 2>&1 || true
    sacctmgr -i -Q add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -n -P list association user=root account="$ACCOUNT" format=account | grep -qx "$ACCOUNT" \
        || die "could not create account $ACCOUNT in slurmdbd"
    running "$STATE/slurmctld.pid" || slurmctld
    wait_for 60 slurmctld scontrol ping
    running "$STATE/slurmd.pid" || slurmd
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    wait_for 60 "node $(hostname -s) idle" sh -c "sinfo -h -N -o '%t' | grep -qx idle"
    sinfo
    log "ready: account $ACCOUNT, partition $PARTITION"
}

stop_pid() {  # stop_pid NAME PIDFILE: TERM, then KILL after 20 s
    local name=$1 file=$2 pid
    running "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }; sleep 1; done
    log "$name ($pid) ignored TERM; killing it"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$file"
}

stop() {  # only what `start` started (pid files under $STATE)
    stop_pid slurmd "$STATE/slurmd.pid"
    stop_pid slurmctld "$STATE/slurmctld.pid"
    stop_pid slurmdbd "$STATE/slurmdbd.pid"
    stop_pid mariadb "$STATE/mariadb/mariadb.pid"
    stop_pid munged "$STATE/munge/munged.pid"
    log "stopped"
}

status() {
    for name in slurmd slurmctld slurmdbd mariadb/mariadb munge/munged; do
        if running "$STATE/$name.pid"; then echo "$name: $(cat "$STATE/$name.pid")"; else echo "$name: stopped"; fi
    done
    sinfo 2>/dev/null || true
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
