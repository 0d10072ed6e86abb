#!/usr/bin/env bash
# Bring up a single-node SLURM on this machine for tests/test_cluster_slurm.py.
#
# Debian's SLURM 22.05 packages, started by hand (CI containers have no
# systemd): munged as the munge user, then slurmctld and slurmd as root.
# One node, two partitions on it: `cpu` (default) and `gpu`. The node declares
# a GRES `gpu` of two stand-in devices (/dev/null, /dev/zero; AutoDetect=off; a
# count-only gpu GRES registers as 0 and drains the node), so the rules'
# `gpu=1` resource becomes a real `--gpus=1` request that SLURM schedules;
# nothing on the node is a GPU, and n3f falls back to the CPU.
# No accounting daemon: `sacct` is unavailable, so the SLURM profile queries
# job status with `squeue`, and MinJobAge keeps finished jobs visible to it.
#
# Idempotent: when `sinfo` already answers and the node is up, it does nothing.
# Needs root. Usage: .ci/slurm_up.sh   (logs in /var/log/slurm/)
set -euo pipefail

log() { echo "slurm_up: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    exec sudo -n "$0" "$@"
  fi
  log "must run as root (installs packages, writes /etc/slurm, starts daemons)"; exit 1
fi

node_ready() {
  local state
  state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n1) || return 1
  [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]
}

if command -v sinfo >/dev/null && node_ready; then
  log "already up:"; sinfo >&2; exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
  log "installing slurmctld slurmd munge slurm-client from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd munge slurm-client >/dev/null
fi

HOST=$(hostname -s)
# config_overrides (below) lets the node declare more than the machine has: the
# rules ask for 8 GB and 2 CPUs per job, the tiny test jobs use far less, and most
# of a tiny job's time is Python start-up, so two jobs at a time on two GPUs
# (and at least 4 CPUs) halve the test's wall time even on a 2-core machine.
CPUS=$(( $(nproc) > 4 ? $(nproc) : 4 ))
MEM_MB=32000

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat >/etc/slurm/slurm.conf <<EOF
# Written by .ci/slurm_up.sh: single-node test cluster, not for production.
ClusterName=n3fci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue (the profile's status command) for a day
MinJobAge=86400
KillWait=30
SchedulerParameters=sched_interval=2
GresTypes=gpu
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${HOST} MaxTime=INFINITE State=UP
EOF
cat >/etc/slurm/gres.conf <<EOF
AutoDetect=off
NodeName=${HOST} Name=gpu File=/dev/null
NodeName=${HOST} Name=gpu File=/dev/zero
EOF

chown munge:munge /run/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating a munge key"
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! pgrep -u munge -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }

if ! pgrep -x slurmctld >/dev/null; then
  nohup /usr/sbin/slurmctld -D -c >/var/log/slurm/slurmctld.out 2>&1 &
fi
for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
if ! pgrep -x slurmd >/dev/null; then
  nohup /usr/sbin/slurmd -D >/var/log/slurm/slurmd.out 2>&1 &
fi

for _ in $(seq 150); do
  state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n1) || true
  if [[ "$state" == drain* ]]; then  # a reason left from an earlier start: clear it
    scontrol update nodename="$HOST" state=resume 2>/dev/null || true
  fi
  if node_ready; then
    log "up:"; sinfo >&2; exit 0
  fi
  sleep 0.2
done
log "node did not become ready; sinfo:"
sinfo -N -l >&2 || true
tail -n 30 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
