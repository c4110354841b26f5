#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, loopback only, with accounting (slurmdbd on
# MariaDB) so sacct works as on a real site. Two partitions: `cpu` (default) and `gpu` with a
# stand-in GPU gres (File=/dev/null): GPU requests schedule, CUDA_VISIBLE_DEVICES is set,
# but there is no device behind it — exactly the case the pipeline must catch.
#
#   tests/slurm/cluster.sh install   # Debian packages (root, apt)
#   tests/slurm/cluster.sh up        # start munge, MariaDB, slurmdbd, slurmctld, slurmd
#   tests/slurm/cluster.sh down      # stop them by their PID files, in reverse order
#   tests/slurm/cluster.sh status
#
# Needs root. State lives in $SLURM_TEST_DIR (default /tmp/immunoprofiler-slurm).
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/tmp/immunoprofiler-slurm}
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
ACCOUNT=${SLURM_TEST_ACCOUNT:-immunoprofiler}

log() { echo "[cluster] $*" >&2; }

install() {
    local pkgs=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
    if dpkg -s "${pkgs[@]}" >/dev/null 2>&1; then
        log "packages already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

stop_pid() { # name pidfile
    local pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$1 ($pid) did not stop: SIGKILL"
            kill -9 "$pid" || true
        fi
    fi
    rm -f "$pidfile"
}

wait_for() { # description command...
    local what=$1; shift
    for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.3; done
    log "timed out waiting for $what"
    diagnose
    return 1
}

diagnose() { # what an operator needs to see when the cluster does not come up
    sinfo -N -l 2>&1 | sed 's/^/[cluster] sinfo: /' >&2 || true
    local f
    for f in slurmctld slurmd slurmdbd; do
        [[ -s $DIR/log/$f.log ]] && tail -n 15 "$DIR/log/$f.log" | sed "s/^/[cluster] $f.log: /" >&2
    done
    return 0
}

write_conf() {
    mkdir -p /etc/slurm "$DIR"/{spool/ctld,spool/d,log,mysql,run}
    chown -R slurm:slurm "$DIR/spool" "$DIR/log"
    chmod 1777 "$DIR/run" "$DIR/log" # daemons write their PID and log files as their own users
    cat >/etc/slurm/slurm.conf <<EOF
ClusterName=immunoprofiler
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
GresTypes=gpu
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldParameters=enable_configless
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${NODE} Default=NO MaxTime=INFINITE State=UP
EOF
    echo "NodeName=${NODE} Name=gpu File=/dev/null" >/etc/slurm/gres.conf
    rm -f /etc/slurm/cgroup.conf # 22.05 refuses CgroupPlugin=disabled; none is fine
    cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=${NODE}
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageUser=slurm
StoragePass=slurmtest
StorageLoc=slurm_acct_db
EOF
    chown slurm:slurm /etc/slurm/slurmdbd.conf
    chmod 600 /etc/slurm/slurmdbd.conf
}

up() {
    # A cluster killed with its jobs (a CI machine stopped mid-run) leaves daemons' PID files and
    # the controller's saved state behind; restored, its jobs hold the node `allocated` forever.
    # The test cluster starts clean: stale daemons stopped, scheduler state discarded (the
    # accounting database is kept: it only holds history).
    down
    rm -rf "$DIR/spool"
    write_conf
    # munge
    mkdir -p /run/munge && chown munge:munge /run/munge
    [[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    if ! [[ -s /run/munge/munged.pid ]] || ! kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
    fi
    wait_for munge munge -n
    # MariaDB on loopback
    if [[ ! -d $DIR/mysql/mysql ]]; then
        mysql_install_db --user=mysql --datadir="$DIR/mysql" >"$DIR/log/mysql_install.log" 2>&1
    fi
    chown -R mysql:mysql "$DIR/mysql"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    (mariadbd --user=mysql --datadir="$DIR/mysql" --bind-address=127.0.0.1 --port=3306 \
        --socket=/run/mysqld/mysqld.sock --pid-file="$DIR/run/mysqld.pid" \
        >"$DIR/log/mysqld.log" 2>&1 &)
    wait_for mariadb mysqladmin --socket=/run/mysqld/mysqld.sock ping
    mysql --socket=/run/mysqld/mysqld.sock <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmtest';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmtest';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
    /usr/sbin/slurmdbd
    wait_for slurmdbd sacctmgr -n show cluster
    sacctmgr -i add cluster immunoprofiler >/dev/null 2>&1 || true
    /usr/sbin/slurmctld
    wait_for slurmctld scontrol ping
    /usr/sbin/slurmd
    sacctmgr -i add account "$ACCOUNT" cluster=immunoprofiler >/dev/null 2>&1 || true
    sacctmgr -i add user root account="$ACCOUNT" cluster=immunoprofiler >/dev/null 2>&1 || true
    wait_for "node idle" bash -c "sinfo -h -N -o %T | grep -qE 'idle|mix'"
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    log "up: partitions $(sinfo -h -o %P | tr '\n' ' '), account $ACCOUNT"
}

down() {
    stop_pid slurmd "$DIR/run/slurmd.pid"
    stop_pid slurmctld "$DIR/run/slurmctld.pid"
    stop_pid slurmdbd "$DIR/run/slurmdbd.pid"
    stop_pid mariadbd "$DIR/run/mysqld.pid"
    stop_pid munged /run/munge/munged.pid
    log "down"
}

status() {
    for f in "$DIR"/run/*.pid /run/munge/munged.pid; do
        [[ -s $f ]] && echo "$(basename "$f" .pid) $(cat "$f") $(kill -0 "$(cat "$f")" 2>/dev/null && echo running || echo dead)"
    done
    sinfo 2>/dev/null || true
}

case ${1:-} in
    install) install ;;
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
esac
