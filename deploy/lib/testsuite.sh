# shellcheck shell=bash
# `deploy/dev test`: fmt, clippy, debug build, then the whole cargo test suite against ONE
# throw-away PostgreSQL cluster and ONE RabbitMQ node on free loopback ports (the harness
# makes a database and a vhost per test, and starts its own sshd instances per test).
# Everything lives in a mktemp dir and is torn down on exit, whatever happens.

TEST_TMP=""
TEST_PG_DIR=""

test_main() {
	local rc=0 pg_port amqp_port mgmt_port dist_port

	phase packages
	ensure_packages
	ensure_rust_tools

	TEST_TMP=$(mktemp -d -t ferry-test.XXXXXX)
	# The postgres user must be able to traverse into its data dir below.
	chmod 711 "$TEST_TMP"
	trap test_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	RUN_DIR=$TEST_TMP/run
	LOG_DIR=$TEST_TMP/logs
	mkdir -p "$RUN_DIR" "$LOG_DIR"
	TARGET_DIR=$(cd "$REPO" && abs_path "${CARGO_TARGET_DIR:-target}")

	pg_port=$(free_port)
	amqp_port=$(free_port "$pg_port")
	mgmt_port=$(free_port "$pg_port" "$amqp_port")
	dist_port=$(free_port "$pg_port" "$amqp_port" "$mgmt_port")

	# RabbitMQ boots (5-11 s) in the background while fmt, clippy and the build run.
	rabbit_vars "$TEST_TMP/rabbitmq" "ferry-test-$$@localhost" "$amqp_port" "$mgmt_port" "$dist_port" \
		"$LOG_DIR/rabbitmq.log" "$RUN_DIR/rabbitmq.pid"
	rabbit_start

	cd "$REPO" || die "cannot cd to $REPO"
	phase fmt
	run_child cargo fmt --all -- --check || die "formatting differs: run 'cargo fmt --all'"
	phase clippy
	run_child cargo clippy --workspace --all-targets -- -D warnings || die "clippy found problems"
	phase build
	run_child cargo build --workspace --bins || die "cargo build failed"
	phase deployments
	# compose, Dockerfiles, Kubernetes manifests, systemd units, configs and the node's
	# forced ssh command, validated offline (no Docker engine or cluster here).
	run_child "$REPO/deploy/validate/run.sh" || die "deployment validation failed"

	phase services
	TEST_PG_DIR=$TEST_TMP/postgres
	# Password auth as the dev cluster's (scram-sha-256, a password of the run's own):
	# it::hostile checks that a connection without it is refused.
	write_secret "$TEST_TMP/postgres_password" 16
	# Durability is pointless for a throw-away cluster; many tests open pools at once.
	pg_start "$TEST_PG_DIR" "$pg_port" "$LOG_DIR/postgres.log" "$TEST_TMP/postgres_password" \
		-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300
	rabbit_wait 120
	# The harness creates a vhost per test and grants itself on it through the
	# management API, so its user must be an administrator.
	rabbit_admin_user ferry ferry
	ssh_gen_material "$TEST_TMP/ssh"
	mkdir -p /run/sshd

	FERRY_TEST_PG_URL="postgres://ferry:$(head -n 1 "$TEST_TMP/postgres_password")@127.0.0.1:$pg_port/postgres"
	export FERRY_TEST_PG_URL
	export FERRY_TEST_AMQP_URL="amqp://ferry:ferry@127.0.0.1:$amqp_port"
	export FERRY_TEST_RABBIT_MGMT_URL="http://127.0.0.1:$mgmt_port"
	export FERRY_TEST_SSH_DIR="$TEST_TMP/ssh"
	export FERRY_TEST_BIN_DIR="$TARGET_DIR/debug"
	# The fault suite restarts the run's PostgreSQL and RabbitMQ (its test binary runs
	# alone: cargo runs test binaries one after another).
	test_write_restart_scripts "$(pg_bindir)"
	export FERRY_TEST_RESTART_PG="$TEST_TMP/restart-postgres"
	export FERRY_TEST_RESTART_RABBIT="$TEST_TMP/restart-rabbitmq"
	log "FERRY_TEST_PG_URL=postgres://ferry:(password in $TEST_TMP/postgres_password)@127.0.0.1:$pg_port/postgres"
	log "FERRY_TEST_AMQP_URL=$FERRY_TEST_AMQP_URL"
	log "FERRY_TEST_RABBIT_MGMT_URL=$FERRY_TEST_RABBIT_MGMT_URL"
	log "FERRY_TEST_SSH_DIR=$FERRY_TEST_SSH_DIR"
	log "FERRY_TEST_BIN_DIR=$FERRY_TEST_BIN_DIR"

	phase tests
	run_child cargo test --workspace "$@" || rc=$?
	if ((rc)); then
		log "cargo test failed (exit $rc)"
		phase_fail
	fi

	# Only the whole suite runs the system phase; `deploy/dev test <filter>` is for
	# iterating on cargo tests.
	if (($# == 0)); then
		phase system
		system_main "$TEST_TMP/cluster" || {
			log "system checks failed"
			phase_fail
			rc=1
		}
		system_down
	fi
	exit "$rc"
}

# test_cleanup: EXIT trap. Stops what test_main started, removes the temp dir, prints the
# timings and keeps the exit status.
test_cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	((rc == 0 || PHASE_FAILED_MARKED)) || phase_fail
	phase_end
	local t0
	t0=$(now_ms)
	stop_child
	system_down
	rabbit_stop --kill
	[[ -n $TEST_PG_DIR ]] && pg_stop "$TEST_PG_DIR"
	test_kill_strays
	rm -rf "$TEST_TMP"
	PHASE_REPORT+=("$(printf '  %-18s %8s' teardown "$(fmt_ms $(($(now_ms) - t0)))")")
	printf '\n'
	phase_print
	printf 'deploy/dev test: %s\n' "$( ((rc == 0)) && echo PASSED || echo "FAILED (exit $rc)")"
	exit "$rc"
}

# test_kill_strays: processes whose command line names our temp dir (e.g. an sshd the
# harness left behind after a crash), never anything else.
test_kill_strays() {
	local f pid cmdline
	[[ -n $TEST_TMP ]] || return 0
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
		cmdline=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
		if [[ $cmdline == *"$TEST_TMP/"* ]]; then
			log "stopping stray process $pid: ${cmdline:0:120}"
			kill -TERM "$pid" 2>/dev/null || true
		fi
	done
}

# test_write_restart_scripts PG_BINDIR: scripts the fault suite calls to restart the
# run's PostgreSQL (fast shutdown, start with the same options) and RabbitMQ (the
# broker application stops and starts: every connection drops, queues recover from
# disk), each returning once the service answers again.
test_write_restart_scripts() {
	local bin=$1 ctl
	cat >"$TEST_TMP/restart-postgres" <<-EOF
		#!/usr/bin/env bash
		set -euo pipefail
		cd /
		runuser -u postgres -- "$bin/pg_ctl" -D "$TEST_PG_DIR" -m fast -w -t 60 -l "$TEST_PG_DIR/restart.log" restart >/dev/null
	EOF
	ctl=$(printf '%q ' env "${RMQ_ENV[@]}" "$RABBITMQ_LIB_BIN/rabbitmqctl" -q -n "$RMQ_NODE")
	cat >"$TEST_TMP/restart-rabbitmq" <<-EOF
		#!/usr/bin/env bash
		set -euo pipefail
		$ctl stop_app
		$ctl start_app
		$ctl await_startup
	EOF
	chmod +x "$TEST_TMP/restart-postgres" "$TEST_TMP/restart-rabbitmq"
}
