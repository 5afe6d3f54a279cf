# shellcheck shell=bash
# The system phase of `deploy/dev test`: the quick start itself (`deploy/dev up`, with
# the debug binaries just built) on its own state dir and free ports, then end-to-end
# checks through real HTTP against it, then `down --purge`:
#   e2e/readme-curl.sh   the original README's curl sequence, typed as written there
#   e2e/download-names.sh  curl -OJL, wget and aria2c keep the stored name (and its type)
#   e2e/tus/curl.sh      the README's tus sequence (create, PATCH with checksum, HEAD)
#   e2e/tus/run.sh       tuspy and tus-js-client (64 MiB, interrupted and resumed), and
#                        the page at / with Uppy in headless Chromium (after e2e/admin,
#                        which installs Chromium)
#   e2e/openapi.sh       openapi-spec-validator + schemathesis against the live API
#   e2e/admin            the admin page in headless Chromium (when present)

SYSTEM_STATE=""

# system_env CMD...: CMD against the system cluster (none of the caller's port settings;
# `up --free-ports` picks them).
system_env() {
	env -u FERRY_DEV_PG_PORT -u FERRY_DEV_AMQP_PORT -u FERRY_DEV_MGMT_PORT -u FERRY_DEV_DIST_PORT \
		-u FERRY_DEV_API_PORT -u FERRY_DEV_SSH_BASE_PORT -u FERRY_DEV_AGENT_BASE_PORT \
		"FERRY_DEV_STATE=$SYSTEM_STATE" "FERRY_DEV_BIN_DIR=$TARGET_DIR/debug" "$@"
}

system_main() {
	local state=$1 rc=0 pg api ssh_base agent_base
	SYSTEM_STATE=$state
	# Every check below logs in from 127.0.0.1, schemathesis dozens of times a minute:
	# the login rate limit is tested on its own (tests/tests/it/hostile.rs).
	system_env FERRY_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS=1000 FERRY_AUTH__LOGIN_ATTEMPTS_PER_MINUTE_PER_USER=1000 \
		"$REPO/deploy/dev" up --no-build --free-ports || return 1
	pg=$(sed -n 's/^PG_PORT=//p' "$state/ports.env")
	api=$(sed -n 's/^API_PORT=//p' "$state/ports.env")
	ssh_base=$(sed -n 's/^SSH_BASE_PORT=//p' "$state/ports.env")
	agent_base=$(sed -n 's/^AGENT_BASE_PORT=//p' "$state/ports.env")

	# Issue 15 item 17: the env file and the secrets hold the broker's and the database's
	# passwords; the database lets nobody in without its password.
	local mode file
	for file in "$state/env" "$state/secrets/postgres_password"; do
		mode=$(stat -c %a "$file")
		if [[ $mode != 600 ]]; then
			echo "system: $file has mode $mode; it holds a password and must be 600" >&2
			rc=1
		fi
	done
	system_pg_requires_password "$state" "$pg" || rc=1

	local base=http://127.0.0.1:$api
	# A user of its own for schemathesis, which deletes what it finds.
	(
		set -a
		# shellcheck disable=SC1091
		. "$state/env"
		set +a
		echo schemathesis-pass | "$TARGET_DIR/debug/ferry-api" user-add schemathesis --password-stdin >/dev/null
		echo bobbobbob | "$TARGET_DIR/debug/ferry-api" user-add bob --password-stdin >/dev/null
		echo tus-e2e-pass | "$TARGET_DIR/debug/ferry-api" user-add tus --password-stdin >/dev/null
	) || return 1
	BASE=$base "$REPO/e2e/readme-curl.sh" || rc=1
	BASE=$base "$REPO/e2e/download-names.sh" || rc=1
	BASE=$base "$REPO/e2e/tus/curl.sh" || rc=1
	BASE=$base E2E_USER=schemathesis E2E_PASSWORD=schemathesis-pass "$REPO/e2e/openapi.sh" || rc=1
	if [[ -x $REPO/e2e/admin/run.sh ]]; then
		FERRY_E2E_BASE_URL=$base FERRY_E2E_ADMIN=admin:adminadmin FERRY_E2E_USER=bob:bobbobbob \
			FERRY_E2E_NODE_JSON="{\"name\":\"node-e2e\",\"ssh_host\":\"127.0.0.1\",\"ssh_port\":$((ssh_base + 1)),\"ssh_user\":\"$(id -un)\",\"root_path\":\"$state/nodes/node1/data\",\"public_url\":\"http://127.0.0.1:$((agent_base + 1))\",\"lat\":50.1,\"lon\":8.7}" \
			FERRY_E2E_ARTIFACTS=${FERRY_TEST_ARTIFACTS:-$REPO/target/test-artifacts} \
			"$REPO/e2e/admin/run.sh" || rc=1
	fi
	BASE=$base E2E_USER=tus E2E_PASSWORD=tus-e2e-pass \
		FERRY_E2E_ARTIFACTS=${FERRY_TEST_ARTIFACTS:-$REPO/target/test-artifacts} "$REPO/e2e/tus/run.sh" || rc=1
	return "$rc"
}

# system_pg_requires_password STATE PORT: the dev cluster's PostgreSQL refuses `psql`
# without the password over TCP and over its unix socket, and lets it in with it.
system_pg_requires_password() {
	local state=$1 port=$2 bin sockdir host ok=0 out
	bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin | sort -V | tail -n 1)
	sockdir=$(readlink -f "$state/postgres")
	for host in 127.0.0.1 "$sockdir"; do
		[[ $host == 127.0.0.1 || -S $host/.s.PGSQL.$port ]] || continue
		if out=$(env -u PGPASSWORD PGPASSFILE="$state/no-such-pgpass" "$bin/psql" -X -w -q -h "$host" -p "$port" -U ferry -d ferry \
			-c 'SELECT 1' 2>&1); then
			echo "system: psql -h $host without a password was let into the dev PostgreSQL" >&2
			ok=1
		elif [[ $out != *password* ]]; then
			echo "system: psql -h $host without a password failed otherwise than on authentication: $out" >&2
			ok=1
		fi
		if ! PGPASSWORD=$(head -n 1 "$state/secrets/postgres_password") "$bin/psql" -X -w -q -h "$host" -p "$port" \
			-U ferry -d ferry -c 'SELECT 1' >/dev/null; then
			echo "system: psql -h $host with the password was refused by the dev PostgreSQL" >&2
			ok=1
		fi
	done
	return "$ok"
}

# system_down: stops the system cluster (EXIT-safe; a no-op when it never started).
system_down() {
	[[ -n $SYSTEM_STATE ]] || return 0
	system_env "$REPO/deploy/dev" down --purge >/dev/null 2>&1 || true
	SYSTEM_STATE=""
}
