# shellcheck shell=bash
# A private RabbitMQ node with the management plugin. /usr/sbin/rabbitmq-server re-runs
# itself through `su rabbitmq` when started as root, which loses a private data dir, so
# the scripts under /usr/lib/rabbitmq/bin are called directly with every path in the
# environment. rabbitmqctl must see the same HOME (it holds the Erlang cookie).

# Set by rabbit_vars, used by the other functions (and by callers: RMQ_LAUNCHED tells
# whether rabbit_start launched the node or found it running).
# shellcheck disable=SC2034
RMQ_DIR=""
RMQ_NODE=""
RMQ_MGMT_PORT=""
RMQ_AMQP_PORT=""
RMQ_PIDFILE=""
RMQ_LOGFILE=""
RMQ_ENV=()
RMQ_LAUNCHED=0

# rabbit_vars DIR NODENAME AMQP_PORT MGMT_PORT DIST_PORT LOGFILE PIDFILE: describe the node
# (no side effects, so `down` can call it to find a running node).
rabbit_vars() {
	RMQ_DIR=$1 RMQ_NODE=$2
	local amqp=$3 dist=$5
	RMQ_MGMT_PORT=$4 RMQ_LOGFILE=$6 RMQ_PIDFILE=$7
	RMQ_AMQP_PORT=$amqp
	RMQ_ENV=(
		HOME="$RMQ_DIR/home"
		RABBITMQ_NODENAME="$RMQ_NODE"
		RABBITMQ_DIST_PORT="$dist"
		RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
		RABBITMQ_LOG_BASE="$RMQ_DIR/log"
		RABBITMQ_LOGS="$RMQ_LOGFILE"
		RABBITMQ_PID_FILE="$RMQ_PIDFILE"
		RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
		RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
		# Keep the machine-wide /etc/rabbitmq files out of a private node.
		RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
		RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
	)
}

# rabbit_write_config: the files rabbit_vars points at.
rabbit_write_config() {
	mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_DIR/log" "$(dirname "$RMQ_PIDFILE")" "$(dirname "$RMQ_LOGFILE")"
	echo '[rabbitmq_management].' >"$RMQ_DIR/enabled_plugins"
	: >"$RMQ_DIR/rabbitmq-env.conf"
	cat >"$RMQ_DIR/rabbitmq.conf" <<-EOF
		listeners.tcp.default = 127.0.0.1:$RMQ_AMQP_PORT
		management.tcp.port = $RMQ_MGMT_PORT
		management.tcp.ip = 127.0.0.1
		# guest stays usable, from loopback only (the default).
		loopback_users.guest = true
	EOF
}

rabbit_ctl() {
	env "${RMQ_ENV[@]}" timeout 120 "$RABBITMQ_LIB_BIN/rabbitmqctl" -q -n "$RMQ_NODE" "$@"
}

# rabbit_pid: the node's beam process. The pid file appears only a few seconds into boot,
# so fall back to the beam whose command line carries our private HOME (`-home DIR`).
rabbit_pid() {
	local cmdline f pid
	pid_of "$RMQ_PIDFILE" beam && return 0
	for f in /proc/[0-9]*/cmdline; do
		cmdline=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
		if [[ $cmdline == *beam*" -home $RMQ_DIR/home "* ]]; then
			pid=${f#/proc/}
			echo "${pid%/cmdline}"
			return 0
		fi
	done
	return 1
}

# rabbit_start: launch the node detached; returns at once (boot takes ~10 s, see
# rabbit_wait). Does nothing if the node is already running.
rabbit_start() {
	local pid
	if pid=$(rabbit_pid); then
		log "rabbitmq already running (pid $pid)"
		return 0
	fi
	rabbit_write_config
	# epmd is shared by every Erlang node on the machine. Remember whether this start
	# launches it, so rabbit_stop can take it down again once no node uses it.
	if ! tcp_open 127.0.0.1 4369; then
		: >"$RMQ_DIR/started-epmd"
	fi
	printf '\n=== %s: starting rabbitmq %s ===\n' "$(date -Is)" "$RMQ_NODE" >>"$RMQ_LOGFILE"
	rm -f "$RMQ_PIDFILE"
	env "${RMQ_ENV[@]}" "$RABBITMQ_LIB_BIN/rabbitmq-server" -detached >>"$RMQ_LOGFILE" 2>&1 ||
		{
			show_log_tail "$RMQ_LOGFILE"
			die "rabbitmq-server -detached failed"
		}
	RMQ_LAUNCHED=1
	log "rabbitmq $RMQ_NODE starting (AMQP 127.0.0.1:$RMQ_AMQP_PORT, management 127.0.0.1:$RMQ_MGMT_PORT)"
}

# rabbit_wait TIMEOUT_S: until the management API answers.
rabbit_wait() {
	wait_until "$1" "RabbitMQ management API on port $RMQ_MGMT_PORT" \
		http_ok "http://127.0.0.1:$RMQ_MGMT_PORT/api/overview" -u guest:guest ||
		{
			show_log_tail "$RMQ_LOGFILE"
			die "RabbitMQ did not come up"
		}
}

# rabbit_admin_user USER PASS: create or update an administrator with full rights on `/`.
rabbit_admin_user() {
	local user=$1 pass=$2
	if ! rabbit_ctl list_users | awk '{ print $1 }' | grep -qx "$user"; then
		rabbit_ctl add_user "$user" "$pass" >/dev/null
	else
		rabbit_ctl change_password "$user" "$pass" >/dev/null
	fi
	rabbit_ctl set_user_tags "$user" administrator >/dev/null
	rabbit_ctl set_permissions -p / "$user" '.*' '.*' '.*' >/dev/null
}

# rabbit_stop [--kill]: `rabbitmqctl stop` (a graceful shutdown, ~8 s; waits for the
# process to exit), SIGKILL as the fallback, or at once with --kill (throw-away test
# nodes); then epmd, if we started it and no Erlang node is registered with it any more.
rabbit_stop() {
	local pid i
	if pid=$(rabbit_pid); then
		if [[ ${1:-} == --kill ]]; then
			kill -KILL "$pid" 2>/dev/null || true
		elif ! rabbit_ctl stop >/dev/null 2>&1; then
			warn "rabbitmqctl stop failed; terminating pid $pid"
			kill -TERM "$pid" 2>/dev/null || true
		fi
		for ((i = 0; i < 100; i++)); do
			pid_alive "$pid" || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		log "rabbitmq stopped"
	fi
	rm -f "$RMQ_PIDFILE"
	if [[ -f $RMQ_DIR/started-epmd ]]; then
		rabbit_stop_idle_epmd
		rm -f "$RMQ_DIR/started-epmd"
	fi
}

rabbit_stop_idle_epmd() {
	local epmd names i
	epmd=$(command -v epmd 2>/dev/null || printf '%s\n' /usr/lib/erlang/erts-*/bin/epmd | tail -n 1)
	[[ -x $epmd ]] || return 0
	# A node's registration drops a moment after it exits.
	for ((i = 0; i < 20; i++)); do
		names=$("$epmd" -names 2>/dev/null) || return 0
		grep -q '^name ' <<<"$names" || break
		sleep 0.1
	done
	if grep -q '^name ' <<<"$names"; then
		log "epmd left running: other Erlang nodes still use it"
	else
		"$epmd" -kill >/dev/null 2>&1 || true
	fi
}
