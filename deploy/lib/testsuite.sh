# shellcheck shell=bash
# `deploy/dev test`: fmt, clippy, debug build, then the whole cargo test suite against ONE
# throw-away PostgreSQL cluster and ONE RabbitMQ node on free loopback ports, started by
# `ferry-dev services` (the harness makes a database, a vhost and sshds per test through
# the same launcher). Everything lives in a mktemp dir and is torn down on exit, whatever
# happens.

TEST_TMP=""
FERRY_DEV=""

test_main() {
	local rc=0

	phase packages
	ensure_packages
	ensure_rust_tools

	TEST_TMP=$(mktemp -d -t ferry-test.XXXXXX)
	# The postgres user must be able to traverse into its data dirs below.
	chmod 711 "$TEST_TMP"
	trap test_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	TARGET_DIR=$(cd "$REPO" && abs_path "${CARGO_TARGET_DIR:-target}")

	cd "$REPO" || die "cannot cd to $REPO"
	phase fmt
	run_child cargo fmt --all -- --check || die "formatting differs: run 'cargo fmt --all'"
	phase launcher
	run_child cargo build -p ferry-launcher --bin ferry-dev || die "cargo build of ferry-dev failed"
	FERRY_DEV=$TARGET_DIR/debug/ferry-dev
	# PostgreSQL starts now; RabbitMQ boots (5-11 s) in the background while clippy and
	# the build run.
	"$FERRY_DEV" --bin-dir "$TARGET_DIR/debug" services start "$TEST_TMP/services" ||
		die "the test run's PostgreSQL and RabbitMQ did not start"
	phase clippy
	run_child cargo clippy --workspace --all-targets -- -D warnings || die "clippy found problems"
	phase build
	run_child cargo build --workspace --bins || die "cargo build failed"
	phase deployments
	# compose, Dockerfiles, Kubernetes manifests, systemd units, configs and the node's
	# forced ssh command, validated offline (no Docker engine or cluster here).
	run_child "$REPO/deploy/validate/run.sh" || die "deployment validation failed"

	phase services
	"$FERRY_DEV" services wait "$TEST_TMP/services" || die "RabbitMQ did not come up"
	export FERRY_TEST_SERVICES=$TEST_TMP/services

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

# test_cleanup: EXIT trap. Stops what test_main started (and strays a crashed test left
# behind, see `ferry-dev services stop`), removes the temp dir, prints the timings and
# keeps the exit status.
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
	[[ -x $FERRY_DEV ]] && "$FERRY_DEV" services stop "$TEST_TMP/services"
	rm -rf "$TEST_TMP"
	PHASE_REPORT+=("$(printf '  %-18s %8s' teardown "$(fmt_ms $(($(now_ms) - t0)))")")
	printf '\n'
	phase_print
	printf 'deploy/dev test: %s\n' "$( ((rc == 0)) && echo PASSED || echo "FAILED (exit $rc)")"
	exit "$rc"
}
