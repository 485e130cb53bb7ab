#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine (as root, without systemd), for the real-Slurm
# test in tests/cli/slurm.rs. Installs Debian's packages when they are missing. Idempotent: a
# cluster that already answers is left alone. Prints "slurm: ready" on success.
#
# Notes (see ../shared/measured.md): munged runs as the munge user; DependencyParameters=
# kill_invalid_depend, or a job whose dependency failed waits forever; no accounting database,
# so no sacct (squeue and scontrol work).
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null; }
fi

if sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'; then
  echo "slurm: ready (already running)"
  exit 0
fi

# munge: a key, and a live daemon (a stale pid file alone makes clients retry for minutes).
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  su -s /bin/sh munge -c /usr/sbin/munged
fi
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null

# The node's shape as slurmd sees it.
read -r cpus sockets cores threads mem < <(slurmd -C | head -1 | tr ' ' '\n' \
  | awk -F= '/^CPUs=/{c=$2} /^SocketsPerBoard=/{s=$2} /^CoresPerSocket=/{k=$2} /^ThreadsPerCore=/{t=$2} /^RealMemory=/{m=$2} END{print c, s, k, t, m}')
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=mechlab-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
DependencyParameters=kill_invalid_depend
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.txt
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd -N localhost
for _ in $(seq 100); do
  if sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'; then
    echo "slurm: ready"
    exit 0
  fi
  sleep 0.3
done
echo "slurm: the node did not come up; sinfo says:" >&2
sinfo >&2 || true
tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
