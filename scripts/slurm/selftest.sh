#!/bin/bash
# Self-test of the Slurm scripts (submit-rdlms.sh, rdlms.sbatch, submit-sweep.sh, sweep-seed.sbatch,
# submit-lib.sh) through a real Slurm, on a tiny synthetic config (1-3 s per job; 25 jobs and array
# tasks, about 50 s in all on a 2-core machine with SELFTEST_CPUS=1, less with both CPUs):
#   a. `submit-rdlms.sh CONFIG WORK 3 --threads 1`: the chain train-base -> 3-task rDLM array ->
#      run -> report completes and writes WORK/report/report.md; its base and rDLM checkpoints are
#      bitwise those of a plain `apricot run` of the same config, its adaptation results the same;
#   b. a fault: the same chain in another work directory, where task 1 of the rDLM array (shard 1/3:
#      rDLMs 1 and 4) hangs after its first rDLM and is cancelled (scancel): rdlm-01 is trained, rdlm-04
#      is missing, no summary.json, and the jobs after the array can never start (they are cancelled).
#      The array is resubmitted alone (`sbatch --array=0-2 rdlms.sbatch ...`): every rDLM ends up
#      trained exactly once (the `rdlm-NN: subset` lines of all the tasks' logs), summary.json is
#      written and the rDLMs are bitwise those of (a). Then the whole chain is submitted again: it
#      trains nothing (base and rDLMs found done), adapts and reports, with the adaptation results of
#      (a). For the hang, the first chain runs apricot through a wrapper: in array task 1 it runs the
#      task's own command (rdlms.sbatch's `train-rdlms ... --shard 1/3`) with `--only 1` added, so
#      apricot trains the shard's first rDLM and exits; then the wrapper, the task's only process,
#      stops itself (SIGSTOP) until the cancel. The rest of the shard is never started, so the fault
#      lands after the first rDLM whatever the machine's load (freezing a running apricot once it had
#      logged its first rDLM raced with it: under load it could finish the second before the SIGSTOP;
#      apricot's SIGTERM stop and resume in mid-training are tested in tests/cli/test_reliability.cpp);
#   c. `submit-sweep.sh CONFIG ROOT 1-3 --threads 1`: three seeds, then ROOT/report/report.md over 3 runs;
#   d. threads: `sbatch --cpus-per-task=1 --wrap "apricot train-base ..."` without --threads: apricot's
#      log must say "1 CPU threads" (affinity mask and SLURM_CPUS_PER_TASK are printed too); then the
#      same with the job's affinity mask widened to every CPU (taskset), so that only
#      SLURM_CPUS_PER_TASK can say 1 (skipped where a cgroup cpuset forbids the widening).
# It prints PASS/FAIL per check with what it compared, then its wall time; it exits 1 if a check failed.
#
# On one machine (the default): installs slurm-wlm and munge with apt-get if they are missing (sudo
# when not root), writes a one-node slurm.conf for this machine (hostname -s, nproc CPUs, most of its
# memory; select/cons_tres with CR_CPU so several 1-CPU jobs run at once; proctrack/linuxproc, no
# cgroups; task/affinity when slurmd starts with it, else task/none) into a fresh temporary directory
# that also holds the state, spool, logs, pid files and munge's key and socket, points every Slurm
# command at it (SLURM_CONF), starts munged, slurmctld and slurmd on free ports, and on exit, also
# after a failure or ^C, cancels its jobs, stops those three daemons by the pids they wrote and
# removes the directory (KEEP=1 keeps it). The daemons and jobs run as the current user (root, or
# not: then slurmd can only start that user's jobs, which is all this needs).
#
# On a real cluster's login node: SELFTEST_PARTITION=NAME SELFTEST_DIR=/shared/dir starts no daemons
# and submits every job to that partition (more sbatch flags, e.g. --account=A --qos=Q, in
# SBATCH_ARGS); the work directories and job logs go to a fresh directory under SELFTEST_DIR, which
# must be on a file system every node mounts, and the reference run is a 1-CPU job of its own (so it
# runs on the same kind of node: bitwise equality needs the same CPU kind). Each job asks for 1 CPU
# and 10 minutes. Example:
#   SELFTEST_PARTITION=debug SELFTEST_DIR=$HOME/scratch APRICOT=$HOME/apricot/build/apricot \
#     scripts/slurm/selftest.sh
#
# Usage: scripts/slurm/selftest.sh         (no arguments)
# Environment:
#   APRICOT             the binary (default build/apricot, relative to the current directory or the
#                       repository), made absolute; the jobs run it as the same user on the same files
#   KEEP=1              keep the temporary directory (slurm.conf, daemons' logs, jobs' logs, work dirs)
#   SELFTEST_CPUS       CPUs the one-node Slurm offers (default: nproc; 1 runs one job at a time)
#   SELFTEST_TASK_PLUGIN  task/affinity (default; task/none if slurmd fails with it) or task/none
#   SELFTEST_PARTITION  use this partition of an existing Slurm instead of starting one
#   SELFTEST_DIR        where the temporary directory is made (default: $TMPDIR or /tmp)
#   SELFTEST_TIMEOUT    seconds to wait for the jobs (default 300; 3600 with SELFTEST_PARTITION)
#   SBATCH_ARGS         extra sbatch flags for every job (with SELFTEST_PARTITION)
set -euo pipefail
start_ns=$(date +%s%N)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
partition=${SELFTEST_PARTITION:-}

log() { printf '[selftest %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- the binary, as an absolute path --------------------------------------------------------------
APRICOT=${APRICOT:-build/apricot}
if [[ $APRICOT != */* ]]; then
  found=$(command -v "$APRICOT") || die "APRICOT=$APRICOT is not on PATH"
  APRICOT=$found
elif [[ $APRICOT != /* ]]; then
  if [[ ! -e $APRICOT && -e $repo/$APRICOT ]]; then APRICOT=$repo/$APRICOT; fi
  APRICOT="$(cd "$(dirname "$APRICOT")" 2>/dev/null && pwd)/$(basename "$APRICOT")"
fi
[[ -f $APRICOT && -x $APRICOT ]] || die "no executable $APRICOT: build it (scripts/setup.sh) or set APRICOT"
export APRICOT

if [[ -n $partition ]]; then
  [[ -n ${SELFTEST_DIR:-} ]] || die "SELFTEST_PARTITION needs SELFTEST_DIR, a directory every node mounts"
  timeout=${SELFTEST_TIMEOUT:-3600}
  poll=3
else
  timeout=${SELFTEST_TIMEOUT:-300}
  poll=0.5
fi

# --- packages (one machine only) ------------------------------------------------------------------
install_missing() {
  local missing=() p sudo=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v python3 >/dev/null || missing+=(python3-minimal)
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  log "installing ${missing[*]}"
  if ((EUID != 0)); then sudo=(sudo); fi
  ${sudo[@]+"${sudo[@]}"} apt-get update -qq
  ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
if [[ -z $partition ]]; then
  PATH=$PATH:/usr/sbin:/sbin  # the daemons, for a user whose PATH lacks them
  install_missing
fi
for tool in sbatch squeue scancel scontrol python3; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

# --- the temporary directory and the clean-up -----------------------------------------------------
parent=${SELFTEST_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$parent"
parent=$(cd "$parent" && pwd)
tmp=$(mktemp -d "$parent/apricot-selftest.XXXXXX")
chmod 711 "$tmp"  # munged wants its socket's directories searchable by all
jobs=()  # every job submitted, cancelled on exit if still there

stop_daemon() {  # NAME PIDFILE: stops the process in PIDFILE if it is still that daemon
  local pid comm i
  pid=$(cat "$2" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0
  [[ $comm == "$1"* ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  if ((${#jobs[@]})); then  # finished ones are not touched
    scancel -Q "${jobs[@]}" 2>/dev/null
    for ((i = 0; i < 60; i++)); do
      [[ -z $(for id in "${jobs[@]}"; do squeue -h -j "$id" -o %i 2>/dev/null; done) ]] && break
      sleep 0.5
    done
  fi
  if [[ -z $partition ]]; then
    stop_daemon slurmd "$tmp/slurmd.pid"
    stop_daemon slurmctld "$tmp/slurmctld.pid"
    stop_daemon munged "$tmp/munge/munged.pid"
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    log "kept $tmp"
  else
    rm -rf "$tmp"
  fi
  elapsed=$(($(date +%s%N) - start_ns))
  printf 'wall time: %d.%d s (exit status %d)\n' $((elapsed / 1000000000)) $((elapsed / 100000000 % 10)) "$rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_logs() {  # the daemons' logs, for an error message
  local f
  for f in "$tmp"/munge/munged.log "$tmp"/log/*.log; do
    [[ -f $f ]] || continue
    echo "----- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

# --- munge, slurmctld and slurmd on this machine --------------------------------------------------
free_ports() {  # two TCP ports nobody listens on now
  python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("", 0))
print(*(x.getsockname()[1] for x in s))'
}

write_conf() {  # TASKPLUGIN
  local host cpus mem user ports
  host=$(hostname -s)
  cpus=${SELFTEST_CPUS:-$(nproc)}
  mem=$(awk '/^MemTotal:/ { m = int($2 / 1024); print m - (m > 4096 ? 512 : int(m / 8)) }' /proc/meminfo)
  user=$(id -un)
  read -ra ports <<<"$(free_ports)"
  mkdir -p "$tmp/state" "$tmp/spool" "$tmp/log"
  cat >"$SLURM_CONF" <<EOF
# One-node Slurm for scripts/slurm/selftest.sh; everything lives in $tmp.
ClusterName=apricotselftest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$tmp/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=$1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=5
MinJobAge=3600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=selftest Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$tmp/plugstack.conf"
}

start_munge() {
  local key=$tmp/munge/munge.key force=() i
  mkdir -m 711 "$tmp/munge"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$key"
  else
    dd if=/dev/urandom of="$key" bs=1 count=1024 2>/dev/null
  fi
  chmod 600 "$key"
  if ((EUID == 0)); then force=(--force); fi
  munged ${force[@]+"${force[@]}"} --key-file="$key" --socket="$tmp/munge/munge.socket" \
    --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" \
    --seed-file="$tmp/munge/munged.seed" || { show_logs; die "munged did not start"; }
  for ((i = 0; i < 50; i++)); do
    munge -n -S "$tmp/munge/munge.socket" 2>/dev/null | unmunge -S "$tmp/munge/munge.socket" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  show_logs
  die "munged does not answer on $tmp/munge/munge.socket"
}

start_slurm() {  # TASKPLUGIN: 0 once the node is idle; 1 (daemons stopped) if it never gets there
  local host state i
  host=$(hostname -s)
  write_conf "$1"
  slurmctld -f "$SLURM_CONF" || return 1
  slurmd -f "$SLURM_CONF" -N "$host" || return 1
  for ((i = 0; i < 60; i++)); do
    state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null || true)
    [[ $state == idle ]] && return 0
    sleep 0.5
  done
  log "node $host is '${state:-unknown}', not idle, 30 s after starting slurmd with $1"
  show_logs
  stop_daemon slurmd "$tmp/slurmd.pid"
  stop_daemon slurmctld "$tmp/slurmctld.pid"
  return 1
}

if [[ -z $partition ]]; then
  export SLURM_CONF=$tmp/slurm.conf
  start_munge
  taskplugin=${SELFTEST_TASK_PLUGIN:-task/affinity}
  if ! start_slurm "$taskplugin"; then
    [[ -z ${SELFTEST_TASK_PLUGIN:-} ]] || die "slurm did not come up with $taskplugin (logs above)"
    log "slurm did not come up with task/affinity; trying task/none"
    mv "$tmp/log" "$tmp/log.affinity"
    taskplugin=task/none
    start_slurm "$taskplugin" || die "slurm did not come up (logs above; KEEP=1 keeps $tmp)"
  fi
  log "Slurm $(sinfo --version | awk '{print $2}') up: node $(hostname -s), $(sinfo -h -o %c) CPUs, $taskplugin, SLURM_CONF=$SLURM_CONF"
  site_args=()
else
  log "using partition $partition of $(sinfo --version); directory $tmp"
  # shellcheck disable=SC2206
  site_args=(--partition="$partition" --time=00:10:00 ${SBATCH_ARGS:-})
fi
sbatch_args=(${site_args[@]+"${site_args[@]}"} --cpus-per-task=1)
# The submit scripts add SBATCH_ARGS after their own flags, so 1 CPU per job wins over their 8.
export SBATCH_ARGS="${sbatch_args[*]}"

# --- jobs -----------------------------------------------------------------------------------------
sb() {  # sbatch FLAGS...: submits with the selftest's flags, prints the job id
  sbatch --parsable "${sbatch_args[@]}" "$@" | cut -d';' -f1
}

declare -A final_states  # job id -> its (array tasks') "ID STATE EXITCODE" lines, taken as it ended
wait_jobs() {  # ID...: waits (up to the timeout) until none of them is pending or running any more
  local deadline=$((SECONDS + timeout)) id out left never
  while :; do
    out=""
    for id in "$@"; do
      if ! left=$(squeue -h -j "$id" -o '%i %T %r' 2>&1); then
        # Forgotten (finished long ago) or Slurm did not answer this time: ask again then.
        [[ $left == *"Invalid job id"* ]] && left="" || left="$id squeue-failed"
      fi
      [[ -z $left ]] || out+=$left$'\n'
      # Taken at once: a cluster forgets finished jobs after MinJobAge (300 s by default).
      if [[ -z $left && -z ${final_states[$id]:-} ]]; then final_states[$id]=$(job_states "$id"); fi
    done
    [[ -z $out ]] && return 0
    if grep -q DependencyNeverSatisfied <<<"$out"; then  # what they wait for failed: cancel them
      log "cancelling jobs that can never start: $(grep DependencyNeverSatisfied <<<"$out" | tr '\n' ' ')"
      mapfile -t never < <(awk '/DependencyNeverSatisfied/ { sub(/_.*/, "", $1); print $1 }' <<<"$out" | sort -u)
      scancel -Q "${never[@]}" || true
    fi
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for: $out"
      return 1
    fi
    sleep "$poll"
  done
}

job_states() {  # ID...: one line "JOBID STATE EXITCODE" per job or array task (while Slurm knows it)
  local id
  for id in "$@"; do
    scontrol -o show job "$id" 2>/dev/null | awk '{
      id = ""; task = ""; st = "?"; ec = "?"
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "JobId") id = kv[2]
        else if (kv[1] == "ArrayJobId") aj = kv[2]
        else if (kv[1] == "ArrayTaskId") task = kv[2]
        else if (kv[1] == "JobState") st = kv[2]
        else if (kv[1] == "ExitCode") ec = kv[2]
      }
      print (task != "" ? aj "_" task : id), st, ec
    }'
  done
}

all_completed() {  # EXPECTED-COUNT ID...: every job/task known, COMPLETED with 0:0, and as many as expected
  local want=$1 states
  shift
  states=$(for id in "$@"; do
    if [[ -n ${final_states[$id]:-} ]]; then echo "${final_states[$id]}"; else job_states "$id"; fi
  done)
  job_summary=$(tr '\n' ' ' <<<"$states")
  [[ $(grep -c . <<<"$states") == "$want" ]] && ! grep -qv ' COMPLETED 0:0$' <<<"$states"
}

log_errors() {  # FILE...: the lines of job logs that report an error
  grep -hiE '\b(error|critical|fatal)\b|not expected|Traceback|command not found|No such file' "$@" 2>/dev/null || true
}

# --- results --------------------------------------------------------------------------------------
results=()
failed=0
check() {  # NAME OK DESCRIPTION
  local verdict=PASS desc=${3//$'\n'/; }
  if [[ $2 != 0 ]]; then
    verdict=FAIL
    failed=$((failed + 1))
  fi
  results+=("$verdict $1: $desc")
  printf '%s %s: %s\n' "$verdict" "$1" "$3"  # the details on lines of their own
}

same_files() {  # DIR1 DIR2 RELPATH...: 0 if each file is byte-identical in both; lists differences
  local a=$1 b=$2 f rc=0
  shift 2
  for f in "$@"; do
    if ! cmp -s "$a/$f" "$b/$f"; then
      echo "differs: $f"
      # Which tensors differ and by how much (apricot compare; the metadata may differ too).
      if [[ $f == *.pt && -f $a/$f && -f $b/$f ]]; then
        "$APRICOT" compare --show 8 "$a/$f" "$b/$f" 2>&1 | sed 's/^/    /'
      fi
      rc=1
    fi
  done
  return "$rc"
}

same_results() {  # WORKDIR1 WORKDIR2 ARM...: the arms' result.json agree on final, base, accepted, batches
  python3 - "$@" <<'EOF'
import json, sys
a, b, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
bad = 0
for arm in arms:
    try:
        ra, rb = (json.load(open(f"{d}/adapt-{arm}/result.json")) for d in (a, b))
    except (OSError, ValueError) as e:
        print(f"adapt-{arm}: {e}")
        bad = 1
        continue
    for key in ("final", "base", "accepted", "batches"):
        if ra.get(key) != rb.get(key):
            print(f"adapt-{arm} {key}: {ra.get(key)} != {rb.get(key)}")
            bad = 1
sys.exit(bad)
EOF
}

# OpenBLAS's Haswell kernels (AVX2, the ones a Zen or pre-AVX-512 Intel CPU gets) sum in another order
# with another thread count for more shapes than its AVX-512 kernels: with them the chain-vs-plain
# comparison (a2) catches a pool that --threads does not size on any x86-64 machine with AVX2, not
# only on those CPUs. Every job inherits it (sbatch exports the environment).
if [[ -z ${OPENBLAS_CORETYPE:-} ]] && grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=Haswell
  log "OPENBLAS_CORETYPE=Haswell (OpenBLAS's AVX2 kernels, as on CPUs without AVX-512)"
fi

# --- the config: configs/smoke.json plus small rdlm and adapt sections ----------------------------
cfg=$tmp/selftest.json
python3 - "$repo/configs/smoke.json" "$cfg" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["workdir"] = "selftest-unused"
c["device"] = "cpu"  # GPUs differ in the last bits from run to run; the CPU is deterministic
c["rdlm"] = {"count": 6, "size": 200, "stride": 60, "epochs": 1}
c["adapt"] = {"strategies": ["1", "none"], "batch_size": 20, "max_batches": 6, "retrain_every": 3,
              "retrain": {"steps": 10}}
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF
rdlms=(); for k in 0 1 2 3 4 5; do rdlms+=("rdlms/rdlm-0$k/model.pt"); done
arms=(1 none)

mkdir -p "$tmp/ref" "$tmp/a" "$tmp/b" "$tmp/c" "$tmp/d"
# The reference: a plain `apricot run` (here, before the jobs; on a cluster, a job like the others).
ref_job=""
if [[ -z $partition ]]; then
  log "reference run: apricot run -c $cfg -w $tmp/ref/work --threads 1"
  "$APRICOT" run -c "$cfg" -w "$tmp/ref/work" --threads 1 >"$tmp/ref/run.log" 2>&1 ||
    { tail -n 20 "$tmp/ref/run.log" >&2; die "the reference run failed (log above)"; }
else
  ref_job=$(cd "$tmp/ref" && sb --job-name=selftest-ref \
    --wrap "$(printf '%q' "$APRICOT") run -c $(printf '%q' "$cfg") -w $(printf '%q' "$tmp/ref/work") --threads 1")
  jobs+=("$ref_job")
fi

# b, first: the base (a job), then the array through a wrapper with which task 1 hangs after its
# first rDLM (see the top): apricot trains that rDLM alone, to the end, and the task then waits,
# stopped, for the cancel; the rest of its shard is never started, so nothing can race the cancel.
pause=$tmp/b/pause-apricot.sh
cat >"$pause" <<EOF
#!/bin/bash
# apricot, except in array task 1: there (rdlms.sbatch runs "train-rdlms ... --shard I/K ...") it runs
# the same command with --only I added, which trains the shard's first rDLM (I) and exits; then it
# says so and stops itself (SIGSTOP), the task's only process, until the job is cancelled (slurmstepd
# sends SIGCONT, then SIGTERM, which ends it). The shard's other rDLMs are never started.
[[ \${SLURM_ARRAY_TASK_ID:-} == 1 ]] || exec $(printf '%q' "$APRICOT") "\$@"
shard="" prev=""
for arg in "\$@"; do
  [[ \$prev == --shard ]] && shard=\$arg
  [[ \$arg == --shard=* ]] && shard=\${arg#--shard=}
  prev=\$arg
done
if [[ ! \$shard =~ ^([0-9]+)/[0-9]+\$ ]]; then
  echo "selftest: no --shard I/K among the arguments: \$*" >&2
  exit 2
fi
first=\${BASH_REMATCH[1]}
$(printf '%q' "$APRICOT") "\$@" --only "\$first" || exit  # (its status: the task fails, so does b1)
echo "selftest: paused array task 1 after its first rDLM (--shard \$shard --only \$first done); the rest of its shard stays untrained until the cancel" >&2
kill -STOP \$\$
exec sleep infinity  # (resumed by the cancel's SIGCONT: its SIGTERM ends this, without a new process)
EOF
chmod +x "$pause"
cd "$tmp/b"
out=$(APRICOT=$pause "$here/submit-rdlms.sh" "$cfg" "$tmp/b/work" 3 --threads 1)
log "b: $out (task 1 of the array will be cancelled)"
[[ $out =~ base\ ([0-9]+),\ rDLM\ array\ ([0-9]+).*adaptation\ ([0-9]+),\ report\ ([0-9]+) ]] ||
  die "cannot read the job ids from submit-rdlms.sh's output: $out"
b_ids=("${BASH_REMATCH[@]:1:4}")
b1=${b_ids[1]}
jobs+=("${b_ids[@]}")

cd "$tmp/a"
out=$("$here/submit-rdlms.sh" "$cfg" "$tmp/a/work" 3 --threads 1)
log "a: $out"
[[ $out =~ base\ ([0-9]+),\ rDLM\ array\ ([0-9]+).*adaptation\ ([0-9]+),\ report\ ([0-9]+) ]] ||
  die "cannot read the job ids from submit-rdlms.sh's output: $out"
a_ids=("${BASH_REMATCH[@]:1:4}")
jobs+=("${a_ids[@]}")

cd "$tmp/c"
out=$("$here/submit-sweep.sh" "$cfg" "$tmp/c/root" 1-3 --threads 1)
log "c: $out"
[[ $out =~ seeds\ ([0-9]+).*report\ ([0-9]+) ]] || die "cannot read the job ids from submit-sweep.sh's output: $out"
c_ids=("${BASH_REMATCH[@]:1:2}")
jobs+=("${c_ids[@]}")

cd "$tmp/d"
# Not through sb: exactly the command a user types, with only the partition flags added.
d_job=$(sbatch --parsable ${site_args[@]+"${site_args[@]}"} --cpus-per-task=1 \
  --wrap "grep Cpus_allowed_list /proc/self/status; echo SLURM_CPUS_PER_TASK=\${SLURM_CPUS_PER_TASK:-unset}; $(printf '%q' "$APRICOT") train-base -c $(printf '%q' "$cfg") -w $(printf '%q' "$tmp/d/work")" | cut -d';' -f1)
jobs+=("$d_job")
# The same with the affinity mask widened to every CPU of the node (where no cgroup forbids it), so
# that only SLURM_CPUS_PER_TASK can tell apricot it has 1 CPU.
# shellcheck disable=SC2016  # expanded in the job
wide='all=$(($(nproc --all) - 1)); n=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT taskset -c "0-$all" nproc 2>/dev/null || echo 1)
if [ "$n" -le 1 ]; then echo "selftest: taskset cannot widen the affinity mask"; exit 0; fi
set -- taskset -c "0-$all"; "$@" grep Cpus_allowed_list /proc/self/status;'
d2_job=$(sbatch --parsable ${site_args[@]+"${site_args[@]}"} --cpus-per-task=1 \
  --wrap "$wide exec \"\$@\" $(printf '%q' "$APRICOT") train-base -c $(printf '%q' "$cfg") -w $(printf '%q' "$tmp/d/work2")" | cut -d';' -f1)
jobs+=("$d2_job")
log "d: jobs $d_job, $d2_job (mask widened)"

# b: wait for the stopped task, cancel it, resubmit the array.
b_log1=$tmp/b/slurm-apricot-rdlms-${b1}_1.out
deadline=$((SECONDS + timeout))
until grep -qs 'selftest: paused' "$b_log1"; do
  if ((SECONDS >= deadline)) || [[ -z $(squeue -h -j "$b1" -o %i 2>/dev/null) ]]; then
    break
  fi
  sleep "$poll"
done
b_paused=1
if grep -qs 'selftest: paused' "$b_log1"; then
  b_paused=0
  log "b: task ${b1}_1 froze after its first rDLM; scancel ${b1}_1"
  scancel "${b1}_1"
fi
wait_jobs "$b1" || true
# The jobs after the array wait for a dependency that failed (unless the cluster's
# SchedulerParameters has kill_invalid_depend, which cancels them itself).
b_after=""
for id in "${b_ids[@]:2}"; do
  b_after+="$id $(squeue -h -j "$id" -o '%T(%r)' 2>/dev/null || echo gone) "
done
scancel -Q "${b_ids[@]:2}" || true
b_states1=$(tr "\n" " " <<<"${final_states[$b1]:-}")
b_trained1=$(grep -hoE 'rdlm-[0-9]+: subset' "$tmp"/b/slurm-apricot-rdlms-"${b1}"_*.out 2>/dev/null | sort | cut -d: -f1 | tr '\n' ' ' || true)
b_task1=$(grep -hoE 'rdlm-[0-9]+: (subset|state saved)' "$b_log1" 2>/dev/null | sed 's/: subset/ trained/; s/: state saved/ state saved/' | paste -sd, - || true)
b_missing=()
for f in "${rdlms[@]}"; do [[ -e $tmp/b/work/$f ]] || b_missing+=("$f"); done
b_summary_before=1
[[ -e $tmp/b/work/rdlms/summary.json ]] || b_summary_before=0
ok=1
# Shard 1/3 of the 6 rDLMs is rdlm-01 and rdlm-04: the first trained, the second never started.
if ((b_paused == 0)) && [[ $b_states1 == *"${b1}_1 CANCELLED"* && $b_task1 == "rdlm-01 trained" ]] &&
  [[ ${b_missing[*]:-} == rdlms/rdlm-04/model.pt ]] && ((b_summary_before == 0)); then ok=0; fi
check b1-fault "$ok" "chain $(IFS=,; echo "${b_ids[*]}"): array task 1 stopped after its first rDLM and cancelled; array: ${b_states1}; task 1: ${b_task1:-nothing} (expected: rdlm-01 trained); the array trained: ${b_trained1:-none}; missing afterwards: ${b_missing[*]:-none} (expected: rdlms/rdlm-04/model.pt); summary.json $( ((b_summary_before)) && echo present || echo absent); the jobs after it: ${b_after}(cancelled)"

# The array alone, as the README says; then the whole chain again.
cd "$tmp/b"
b2=$(sb --array=0-2 "$here/rdlms.sbatch" "$cfg" "$tmp/b/work" --threads 1)
jobs+=("$b2")
log "b: resubmitted the array as $b2"
wait_jobs "$b2" || true
ok=1
all_completed 3 "$b2" && [[ -f $tmp/b/work/rdlms/summary.json ]] && ok=0
counts=$(grep -hoE 'rdlm-[0-9]+: subset' "$tmp"/b/slurm-apricot-rdlms-*.out 2>/dev/null | sort | uniq -c |
  awk '{ sub(":", "", $2); printf "%s:%s ", $2, $1 }' || true)
for k in 0 1 2 3 4 5; do [[ $counts == *"rdlm-0$k:1 "* ]] || ok=1; done
errs=$(log_errors "$tmp"/b/slurm-apricot-rdlms-"$b2"_*.out)
[[ -z $errs ]] || ok=1
check b2-resubmit "$ok" "resubmitted array $b2: ${job_summary}; times each rDLM was trained over both arrays: ${counts:-none}; summary.json $([[ -f $tmp/b/work/rdlms/summary.json ]] && echo written || echo MISSING)${errs:+; errors: $errs}"
diff=$(same_files "$tmp/a/work" "$tmp/b/work" "${rdlms[@]}" 2>&1) && ok=0 || ok=1
if [[ $ok == 0 ]]; then
  b3_text="${#rdlms[@]} rDLM checkpoints after the fault vs (a): bitwise equal (cmp)"
else
  b3_text="${#rdlms[@]} rDLM checkpoints after the fault vs (a): $diff"
fi
b3_ok=$ok  # (a) may still be running: checked below

out=$("$here/submit-rdlms.sh" "$cfg" "$tmp/b/work" 3 --threads 1)
log "b: the chain again: $out"
[[ $out =~ base\ ([0-9]+),\ rDLM\ array\ ([0-9]+).*adaptation\ ([0-9]+),\ report\ ([0-9]+) ]] ||
  die "cannot read the job ids from submit-rdlms.sh's output: $out"
b4_ids=("${BASH_REMATCH[@]:1:4}")
jobs+=("${b4_ids[@]}")

# --- wait for everything, then compare -----------------------------------------------------------
wait_jobs ${ref_job:+"$ref_job"} "${a_ids[@]}" "${b4_ids[@]}" "${c_ids[@]}" "$d_job" "$d2_job" ||
  log "not every job ended (see the checks)"

# a
cd "$tmp/a"
ok=1
all_completed 6 "${a_ids[@]}" && [[ -f $tmp/a/work/report/report.md ]] && ok=0
errs=$(log_errors "$tmp"/a/slurm-*.out)
[[ -z $errs ]] || ok=1
check a1-chain "$ok" "submit-rdlms.sh K=3: ${job_summary}; report.md $([[ -f $tmp/a/work/report/report.md ]] && echo written || echo MISSING)${errs:+; errors in the job logs: $errs}"
if [[ -n $ref_job ]] && ! all_completed 1 "$ref_job"; then
  log "the reference job did not complete: ${job_summary}"
fi
diff=$(same_files "$tmp/ref/work" "$tmp/a/work" base/model.pt "${rdlms[@]}" 2>&1) && ok=0 || ok=1
check a2-checkpoints "$ok" "base/model.pt and ${#rdlms[@]} rdlms/rdlm-NN/model.pt of the chain vs a plain apricot run: $([[ $ok == 0 ]] && echo "bitwise equal (cmp)" || echo "$diff")"
diff=$(same_results "$tmp/ref/work" "$tmp/a/work" "${arms[@]}" 2>&1) && ok=0 || ok=1
check a3-adaptation "$ok" "result.json final/base/accepted/batches of adapt-${arms[*]} vs the plain run: $([[ $ok == 0 ]] && echo equal || echo "$diff")"

# b (b1 and b2 above)
if [[ $b3_ok == 0 ]]; then
  diff=$(same_files "$tmp/a/work" "$tmp/b/work" "${rdlms[@]}" 2>&1) && b3_ok=0 || b3_ok=1
  [[ $b3_ok == 0 ]] || b3_text="${#rdlms[@]} rDLM checkpoints after the fault vs (a): $diff"
fi
check b3-checkpoints "$b3_ok" "$b3_text"
ok=1
b4_logs=("$tmp/b/slurm-${b4_ids[0]}.out" "$tmp"/b/slurm-apricot-rdlms-"${b4_ids[1]}"_*.out "$tmp/b/slurm-${b4_ids[2]}.out")
retrained=$(grep -hoE 'rdlm-[0-9]+: subset|base model: train' "${b4_logs[@]}" 2>/dev/null | paste -sd, - || true)
all_completed 6 "${b4_ids[@]}" && [[ -f $tmp/b/work/report/report.md && -z $retrained ]] &&
  grep -qs 'base model exists' "${b4_logs[0]}" && ok=0
errs=$(log_errors "${b4_logs[@]}" "$tmp/b/slurm-${b4_ids[3]}.out")
[[ -z $errs ]] || ok=1
diff=$(same_results "$tmp/a/work" "$tmp/b/work" "${arms[@]}" 2>&1) || ok=1
check b4-chain-again "$ok" "submit-rdlms.sh again after the fault: ${job_summary}; trained again: ${retrained:-nothing}; report.md $([[ -f $tmp/b/work/report/report.md ]] && echo written || echo MISSING); adaptation vs (a): $([[ -z $diff ]] && echo equal || echo "$diff")${errs:+; errors: $errs}"

# c
ok=1
report=$tmp/c/root/report/report.md
all_completed 4 "${c_ids[@]}" && grep -qs '^3 work directories' "$report" && ok=0
errs=$(log_errors "$tmp"/c/slurm-*.out)
[[ -z $errs ]] || ok=1
check c-sweep "$ok" "submit-sweep.sh 1-3: ${job_summary}; report.md: $(grep -s 'work directories' "$report" || echo MISSING)${errs:+; errors: $errs}"

# d
ok=1
threads=$(grep -ohE '[0-9]+ CPU threads' "$tmp/d/slurm-$d_job.out" 2>/dev/null | head -n 1 || true)
all_completed 1 "$d_job" && [[ $threads == "1 CPU threads" ]] && ok=0
check d1-threads "$ok" "sbatch --cpus-per-task=1 train-base without --threads: ${job_summary}; apricot says '${threads:-nothing}'; $(grep -hE '^(Cpus_allowed_list|SLURM_CPUS_PER_TASK)' "$tmp/d/slurm-$d_job.out" 2>/dev/null | tr -s '\t\n' '  ')"
d2_log=$tmp/d/slurm-$d2_job.out
if grep -qs 'cannot widen' "$d2_log"; then
  results+=("SKIP d2-threads-env: taskset cannot widen the affinity mask here (a cgroup cpuset?), so SLURM_CPUS_PER_TASK alone is not tested")
  printf '%s\n' "${results[${#results[@]} - 1]}"
else
  ok=1
  threads=$(grep -ohE '[0-9]+ CPU threads' "$d2_log" 2>/dev/null | head -n 1 || true)
  all_completed 1 "$d2_job" && [[ $threads == "1 CPU threads" ]] && ok=0
  check d2-threads-env "$ok" "the same with the affinity mask widened ($(grep -h '^Cpus_allowed_list' "$d2_log" 2>/dev/null | tr -s '\t' ' ')) so that only SLURM_CPUS_PER_TASK=1 says 1 CPU: ${job_summary}; apricot says '${threads:-nothing}'"
fi

# --- summary --------------------------------------------------------------------------------------
echo
echo "apricot Slurm self-test: $failed of ${#results[@]} checks failed ($([[ -z $partition ]] && echo "one-node Slurm, ${taskplugin}" || echo "partition $partition"); binary $APRICOT)"
printf '  %s\n' "${results[@]}"
((failed == 0))
