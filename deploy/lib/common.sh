# shellcheck shell=bash
# Shared helpers for deploy/dev: logging, timing, background processes, waiting, ports.
# Sourced, never run. Every function is safe under `set -euo pipefail`.

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

# random_hex BYTES: a random secret, hex encoded (2 * BYTES characters).
random_hex() {
	od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# write_secret FILE BYTES: create FILE (mode 600) with a random secret unless it exists,
# so secrets survive `up` being run again.
write_secret() {
	local file=$1 bytes=$2
	[[ -s $file ]] && return 0
	(
		umask 077
		random_hex "$bytes" >"$file.tmp"
		echo >>"$file.tmp"
		mv "$file.tmp" "$file"
	)
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

# start_bg NAME PATTERN CMD...: run CMD detached from this shell (own session, immune to
# SIGHUP, stdin from /dev/null), output appended to $LOG_DIR/NAME.log and pid written to
# $RUN_DIR/NAME.pid. Does nothing if NAME is already running.
start_bg() {
	local name=$1 pattern=$2
	shift 2
	local pidfile="$RUN_DIR/$name.pid" logfile="$LOG_DIR/$name.log" pid exe
	if pid=$(pid_of "$pidfile" "$pattern"); then
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
		if [[ $exe == *"(deleted)" ]]; then
			warn "$name already running (pid $pid) but on an outdated build; 'down' then 'up' to restart it"
		else
			log "$name already running (pid $pid)"
		fi
		return 0
	fi
	printf '\n=== %s: starting %s ===\n' "$(date -Is)" "$name" >>"$logfile"
	# Without job control a background child is not a process-group leader, so setsid
	# (and nohup) exec in place and $! is the pid of the service itself.
	nohup setsid "$@" >>"$logfile" 2>&1 </dev/null &
	echo "$!" >"$pidfile"
	log "$name started (pid $!, log $logfile)"
}

# stop_pidfile NAME PIDFILE PATTERN [DEADLINE_S]: SIGTERM, wait up to the deadline for a
# graceful exit, then SIGKILL.
stop_pidfile() {
	local name=$1 pidfile=$2 pattern=$3 deadline=${4:-10} pid i
	if ! pid=$(pid_of "$pidfile" "$pattern"); then
		rm -f "$pidfile"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < deadline * 10; i++)); do
		if ! pid_alive "$pid"; then
			log "$name stopped (pid $pid)"
			rm -f "$pidfile"
			return 0
		fi
		sleep 0.1
	done
	warn "$name (pid $pid) still running ${deadline}s after SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidfile"
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

# show_log_tail FILE [LINES]: the end of a log, for error messages.
show_log_tail() {
	local file=$1 lines=${2:-30}
	[[ -f $file ]] || return 0
	printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
	tail -n "$lines" "$file" >&2 || true
	printf -- '---\n' >&2
}

# --- waiting ---------------------------------------------------------------------------

# wait_until TIMEOUT_S WHAT CHECK... [-- ALIVE...]: run CHECK every 250 ms until it
# succeeds. Fails after TIMEOUT_S, or at once when the optional ALIVE command fails (the
# process we wait for died, so waiting longer is pointless).
wait_until() {
	local timeout=$1 what=$2 start
	shift 2
	local check=() alive=()
	while (($#)); do
		if [[ $1 == -- ]]; then
			shift
			alive=("$@")
			break
		fi
		check+=("$1")
		shift
	done
	start=$(now_ms)
	while ! "${check[@]}" >/dev/null 2>&1; do
		if ((${#alive[@]})) && ! "${alive[@]}" >/dev/null 2>&1; then
			log "$what: the process exited while we were waiting for it"
			return 1
		fi
		if (($(now_ms) - start > timeout * 1000)); then
			log "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.25
	done
}

# http_ok URL [CURL_ARGS...]: true when URL answers 200.
http_ok() {
	local url=$1 code
	shift
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$url") || return 1
	[[ $code == 200 ]]
}

# tcp_open HOST PORT: true when something accepts TCP connections there.
tcp_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# --- ports -----------------------------------------------------------------------------

# port_in_use PORT: true when any IPv4/IPv6 TCP socket is bound to PORT (any state).
port_in_use() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port [EXCLUDE...]: a loopback TCP port nobody is bound to, outside the kernel's
# ephemeral range (so outgoing connections will not take it between now and the bind)
# and different from every EXCLUDE (ports picked earlier but not yet bound).
free_port() {
	local port tries excluded
	for ((tries = 0; tries < 500; tries++)); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		for excluded in "$@"; do
			[[ $port == "$excluded" ]] && continue 2
		done
		port_in_use "$port" && continue
		echo "$port"
		return 0
	done
	die "no free TCP port found in 20000-31999"
}

# free_port_block N [EXCLUDE...]: a base port B such that B+1..B+N are all free and none
# of them is an EXCLUDE (for the dev cluster's per-node ports, which are BASE+node
# number). Every port of the block is checked against the exclusions, not just B: a
# block that overlapped a port picked earlier but not yet bound once gave sshd-node3
# RabbitMQ's management port.
free_port_block() {
	local n=$1 base tries i excluded
	shift
	for ((tries = 0; tries < 200; tries++)); do
		base=$(free_port "$@")
		for ((i = 1; i <= n; i++)); do
			for excluded in "$@"; do
				[[ $((base + i)) == "$excluded" ]] && continue 3
			done
			port_in_use $((base + i)) && continue 2
		done
		echo "$base"
		return 0
	done
	die "no block of $n free ports found"
}
