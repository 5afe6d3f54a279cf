# shellcheck shell=bash
# Shared helpers for deploy/dev and deploy/bench/run: logging, timing, child processes,
# ports. Sourced, never run. Every function is safe under `set -euo pipefail`. Clusters
# themselves are started by ferry-dev (deploy/launcher), not from here.

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die() {
	log "ERROR: $*"
	exit 1
}

# now_ms: wall clock in milliseconds, for phase timings.
now_ms() {
	local ns
	ns=$(date +%s%N)
	echo $((ns / 1000000))
}

# fmt_ms MS: "12.3s".
fmt_ms() {
	local ms=$1
	printf '%d.%ds' $((ms / 1000)) $(((ms % 1000) / 100))
}

# abs_path PATH: PATH made absolute against the current directory (need not exist).
abs_path() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}

# --- processes -------------------------------------------------------------------------

# pid_alive PID: true while PID runs. A zombie counts as gone: PID 1 of a container may
# take its time to reap the daemons re-parented to it.
pid_alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[[ $state != Z ]]
}

# pid_of PIDFILE [PATTERN]: print the pid recorded in PIDFILE if that process is alive
# (and not a zombie) and, when PATTERN is given, its command line contains PATTERN, which
# guards against a stale pid file whose pid was reused by something else.
pid_of() {
	local file=$1 pattern=${2:-} pid="" cmdline
	[[ -s $file ]] || return 1
	read -r pid <"$file" || true
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	if [[ -n $pattern ]]; then
		cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
		[[ $cmdline == *"$pattern"* ]] || return 1
	fi
	echo "$pid"
}

# child_pids PID: PID's direct children.
child_pids() {
	local file pid ppid key value
	if compgen -G "/proc/$1/task/*/children" >/dev/null; then
		cat "/proc/$1"/task/*/children 2>/dev/null || true
		return 0
	fi
	# Kernels without CONFIG_PROC_CHILDREN: scan every process's parent.
	for file in /proc/[0-9]*/status; do
		ppid=""
		while read -r key value; do
			if [[ $key == PPid: ]]; then
				ppid=$value
				break
			fi
		done 2>/dev/null <"$file" || continue
		if [[ $ppid == "$1" ]]; then
			pid=${file#/proc/}
			echo "${pid%/status}"
		fi
	done
}

# kill_tree PID [SIGNAL]: signal PID and all its descendants (children first collected,
# then the parent signalled, so nobody is re-parented away before we see it).
kill_tree() {
	local pid=$1 signal=${2:-TERM} child
	for child in $(child_pids "$pid"); do
		kill_tree "$child" "$signal"
	done
	kill "-$signal" "$pid" 2>/dev/null || true
}

# run_child CMD...: run CMD as a background child and wait for it. A trapped signal then
# interrupts the `wait` at once (bash runs traps only after a foreground command ends),
# and the EXIT trap can stop the child's tree through CHILD_PID.
CHILD_PID=""
run_child() {
	local rc=0
	"$@" &
	CHILD_PID=$!
	wait "$CHILD_PID" || rc=$?
	CHILD_PID=""
	return "$rc"
}

# stop_child: end the tree started by run_child, if one is still running.
stop_child() {
	[[ -n $CHILD_PID ]] || return 0
	kill_tree "$CHILD_PID" TERM
	local i
	for ((i = 0; i < 50; i++)); do
		pid_alive "$CHILD_PID" || break
		sleep 0.1
	done
	kill_tree "$CHILD_PID" KILL
	CHILD_PID=""
}

# port_in_use PORT: true when any IPv4/IPv6 TCP socket is bound to PORT (any state).
port_in_use() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}
