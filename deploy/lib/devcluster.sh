# shellcheck shell=bash
# `deploy/dev up|down|status|logs`: a whole Ferry cluster on one machine, every piece a
# background process under one state dir ($FERRY_DEV_STATE, default <repo>/.state/dev):
#
#   ports.env            ports in use (env FERRY_DEV_* > saved > defaults)
#   env                  the services' FERRY_* environment, to run a binary by hand
#   run/NAME.pid         logs/NAME.log
#   postgres/            PostgreSQL data (a symlink if the postgres user cannot reach here)
#   rabbitmq/            RabbitMQ home, mnesia, config
#   secrets/             JWT and URL-signing secrets, RabbitMQ and PostgreSQL passwords (mode 600)
#   ssh/                 workers' key, operator's key, node host key, known_hosts
#   nodes/<name>/        data/ (the root), sshd_config, authorized_keys (workers' key forced
#                        through ferry-node-ssh-command, the production gate)
#   staging/             upload staging volume (api + workers)

DEV_NODES=(node1 node2 node3)
# Far apart (Frankfurt, Ashburn, Singapore), so nearest-node choice is visible.
DEV_NODE_LAT=(50.11 39.04 1.35)
DEV_NODE_LON=(8.68 -77.49 103.82)
DEV_WORKERS=(worker1 worker2)
DEV_ADMIN_USER="admin"
DEV_ADMIN_PASSWORD=adminadmin
DEV_MARKER=.ferry-dev-state

# dev_settings: paths and ports of the dev cluster.
dev_settings() {
	STATE=$(abs_path "${FERRY_DEV_STATE:-$REPO/.state/dev}")
	RUN_DIR=$STATE/run
	LOG_DIR=$STATE/logs
	TARGET_DIR=$(cd "$REPO" && abs_path "${CARGO_TARGET_DIR:-target}")
	BIN_DIR=$(abs_path "${FERRY_DEV_BIN_DIR:-$TARGET_DIR/release}")

	local -A port=([PG_PORT]=5433 [AMQP_PORT]=5673 [MGMT_PORT]=15673 [DIST_PORT]=25673
		[API_PORT]=8000 [SSH_BASE_PORT]=2200 [AGENT_BASE_PORT]=9000)
	local key value env_name
	if [[ -f $STATE/ports.env ]]; then
		while IFS='=' read -r key value; do
			[[ -n ${port[$key]+set} && $value =~ ^[0-9]+$ ]] && port[$key]=$value
		done <"$STATE/ports.env"
	fi
	for key in "${!port[@]}"; do
		env_name=FERRY_DEV_$key
		value=${!env_name:-}
		[[ -z $value ]] && continue
		[[ $value =~ ^[0-9]+$ ]] || die "$env_name must be a port number"
		port[$key]=$value
	done
	PG_PORT=${port[PG_PORT]} AMQP_PORT=${port[AMQP_PORT]} MGMT_PORT=${port[MGMT_PORT]}
	DIST_PORT=${port[DIST_PORT]} API_PORT=${port[API_PORT]}
	SSH_BASE_PORT=${port[SSH_BASE_PORT]} AGENT_BASE_PORT=${port[AGENT_BASE_PORT]}
	API_URL=http://127.0.0.1:$API_PORT

	# One node name per state dir, so two checkouts can each run a cluster.
	STATE_ID=$(printf '%s' "$STATE" | cksum | cut -d' ' -f1)
	# ssh control sockets: short (sun_path is 108 bytes) and one dir per cluster, so
	# one cluster's `down` never pulls the sockets from under another's workers.
	CONTROL_DIR=/tmp/ferry-ssh-$STATE_ID
	rabbit_vars "$STATE/rabbitmq" "ferry-dev-$STATE_ID@localhost" "$AMQP_PORT" "$MGMT_PORT" \
		"$DIST_PORT" "$LOG_DIR/rabbitmq.log" "$RUN_DIR/rabbitmq.pid"
}

dev_save_settings() {
	cat >"$STATE/ports.env" <<-EOF
		PG_PORT=$PG_PORT
		AMQP_PORT=$AMQP_PORT
		MGMT_PORT=$MGMT_PORT
		DIST_PORT=$DIST_PORT
		API_PORT=$API_PORT
		SSH_BASE_PORT=$SSH_BASE_PORT
		AGENT_BASE_PORT=$AGENT_BASE_PORT
	EOF
}

dev_ssh_port() { echo $((SSH_BASE_PORT + $1)); }
dev_agent_port() { echo $((AGENT_BASE_PORT + $1)); }

# dev_pg_dir: the PostgreSQL data dir (following the fallback symlink).
dev_pg_dir() {
	if [[ -L $STATE/postgres ]]; then readlink "$STATE/postgres"; else echo "$STATE/postgres"; fi
}

# dev_prepare_pg_dir: as root, the data dir must be reachable by the postgres user; a
# state dir under /root is not, so the data then lives under /var/lib/ferry-dev.
dev_prepare_pg_dir() {
	[[ -e $STATE/postgres ]] && return 0
	pg_can_use_dir "$STATE/postgres" && return 0
	local alt=/var/lib/ferry-dev/$STATE_ID/postgres
	mkdir -p "$(dirname "$alt")"
	chmod 755 /var/lib/ferry-dev "$(dirname "$alt")"
	ln -s "$alt" "$STATE/postgres"
	warn "the postgres user cannot reach $STATE; its data lives in $alt"
}

# dev_service_env: the FERRY_* environment shared by every service (each reads the
# sections it needs), also written to $STATE/env.
dev_service_env() {
	local rabbit_password pg_password var
	rabbit_password=$(<"$STATE/secrets/rabbitmq_password")
	pg_password=$(head -n 1 "$STATE/secrets/postgres_password")
	# The services read every FERRY_* variable; this script's own FERRY_DEV_* are not theirs.
	SERVICE_ENV=()
	for var in $(compgen -e); do
		if [[ $var == FERRY_DEV_* ]]; then SERVICE_ENV+=(-u "$var"); fi
	done
	SERVICE_ENV+=(
		# Output goes to log files: no ANSI colours in them.
		"NO_COLOR=1"
		"FERRY_DATABASE__URL=postgres://ferry:$pg_password@127.0.0.1:$PG_PORT/ferry"
		"FERRY_BROKER__URL=amqp://ferry:$rabbit_password@127.0.0.1:$AMQP_PORT/%2f"
		"FERRY_BROKER__MANAGEMENT_URL=http://127.0.0.1:$MGMT_PORT"
		"FERRY_AUTH__JWT_SECRET_FILE=$STATE/secrets/jwt_secret"
		"FERRY_SIGNING__SECRET_FILE=$STATE/secrets/signing_secret"
		"FERRY_STORAGE__STAGING_DIR=$STATE/staging"
		"FERRY_API__LISTEN=127.0.0.1:$API_PORT"
		"FERRY_API__PUBLIC_URL=$API_URL"
		"FERRY_API__REDOC_BUNDLE=$(redoc_bundle)"
		"FERRY_API__SWAGGER_UI_DIR=$REPO/deploy/docs/node_modules/swagger-ui-dist"
		"FERRY_API__UPPY_DIR=$REPO/deploy/docs/node_modules/uppy/dist"
		"FERRY_WORKER__SSH_KEY=$STATE/ssh/id_ed25519"
		"FERRY_WORKER__SSH_KNOWN_HOSTS=$STATE/ssh/known_hosts"
		"FERRY_WORKER__SSH_CONTROL_DIR=$CONTROL_DIR"
	)
	# It holds the broker's and the database's passwords: readable by its owner only. The umask must be set
	# before the redirection creates the file (a redirection on the subshell itself is
	# opened by this shell, with its umask), and chmod covers a file left by an older run.
	(
		umask 077
		{
			printf '# source this to run a Ferry binary against the dev cluster by hand\n'
			for var in "${SERVICE_ENV[@]}"; do
				if [[ $var == FERRY_*=* ]]; then printf 'export %q\n' "$var"; fi
			done
		} >"$STATE/env"
		chmod 600 "$STATE/env"
	)
}

# --- up ----------------------------------------------------------------------------------

# dev_up [--no-build]
dev_up() {
	local t0 rabbit_t0 name build=1 arg
	for arg in "$@"; do
		case $arg in
		--no-build) build=0 ;;
		*) die "up: unknown option $arg" ;;
		esac
	done
	t0=$(now_ms)
	phase packages
	ensure_packages
	dev_settings
	((build == 0)) || command -v cargo >/dev/null 2>&1 ||
		die "cargo not found: install Rust with rustup (https://rustup.rs) first"
	mkdir -p "$STATE" "$RUN_DIR" "$LOG_DIR" "$STATE/secrets" "$STATE/staging"
	: >"$STATE/$DEV_MARKER"
	chmod 700 "$STATE/secrets"
	dev_save_settings
	write_secret "$STATE/secrets/jwt_secret" 32
	write_secret "$STATE/secrets/signing_secret" 32
	write_secret "$STATE/secrets/rabbitmq_password" 12
	write_secret "$STATE/secrets/postgres_password" 16
	mkdir -p "$CONTROL_DIR"
	chmod 700 "$CONTROL_DIR"

	# RabbitMQ boots (5-11 s) in the background while PostgreSQL starts and cargo builds.
	phase postgres
	rabbit_t0=$(now_ms)
	rabbit_start
	dev_prepare_pg_dir
	pg_start "$(dev_pg_dir)" "$PG_PORT" "$LOG_DIR/postgres.log" "$STATE/secrets/postgres_password"
	pg_write_pidfile "$(dev_pg_dir)" "$RUN_DIR/postgres.pid"
	pg_ensure_db "$PG_PORT" ferry "$STATE/secrets/postgres_password"

	if ((build)); then
		phase build
		(cd "$REPO" && cargo build --release --bins) ||
			die "cargo build failed; PostgreSQL and RabbitMQ are left running ('deploy/dev down' stops them)"
	fi
	for name in ferry-api ferry-worker ferry-monitor ferry-node; do
		[[ -x $BIN_DIR/$name ]] || die "$BIN_DIR/$name was not built"
	done
	phase assets
	docs_assets

	phase nodes
	dev_service_env
	dev_start_nodes

	phase rabbitmq
	rabbit_wait 120
	RABBIT_NOTE=""
	if ((RMQ_LAUNCHED)); then
		RABBIT_NOTE="; RabbitMQ was ready $(fmt_ms $(($(now_ms) - rabbit_t0))) after launch"
	fi
	rabbit_admin_user ferry "$(<"$STATE/secrets/rabbitmq_password")"

	phase services
	dev_start_services

	phase register
	dev_register_nodes
	for name in "${DEV_WORKERS[@]}" monitor; do
		pid_of "$RUN_DIR/$name.pid" ferry- >/dev/null || {
			show_log_tail "$LOG_DIR/$name.log"
			die "$name exited"
		}
	done
	phase_end
	dev_summary "$(($(now_ms) - t0))"
	phase_print
}

dev_start_nodes() {
	local i name ssh_port agent_port root
	local user
	user=$(id -un)
	ssh_gen_material "$STATE/ssh"
	: >"$STATE/ssh/known_hosts.tmp"
	for i in "${!DEV_NODES[@]}"; do
		ssh_known_hosts_line "$STATE/ssh" "$(dev_ssh_port $((i + 1)))" >>"$STATE/ssh/known_hosts.tmp"
	done
	mv "$STATE/ssh/known_hosts.tmp" "$STATE/ssh/known_hosts"

	for i in "${!DEV_NODES[@]}"; do
		name=${DEV_NODES[i]}
		ssh_port=$(dev_ssh_port $((i + 1)))
		agent_port=$(dev_agent_port $((i + 1)))
		root=$STATE/nodes/$name/data
		mkdir -p "$root"
		node_authorized_keys "$STATE/ssh" "$BIN_DIR/ferry-node-ssh-command" "$root" "$STATE/nodes/$name/authorized_keys"
		sshd_write_config "$STATE/nodes/$name/sshd_config" "$ssh_port" "$STATE/ssh" "$RUN_DIR/sshd-$name.pid" \
			"$STATE/nodes/$name/authorized_keys"
		sshd_start "sshd-$name" "$STATE/nodes/$name/sshd_config" "$LOG_DIR/sshd-$name.log" \
			"$RUN_DIR/sshd-$name.pid" "$ssh_port"
		ssh_check "$STATE/ssh" "$STATE/ssh/known_hosts" "$user" "$ssh_port" "$root" ||
			die "cannot ssh to $name (port $ssh_port) with the dev key; see $LOG_DIR/sshd-$name.log"

		start_bg "$name" ferry-node env "${SERVICE_ENV[@]}" "FERRY_NODE__LISTEN=127.0.0.1:$agent_port" \
			"FERRY_NODE__ROOT=$root" "$BIN_DIR/ferry-node"
	done
	for i in "${!DEV_NODES[@]}"; do
		name=${DEV_NODES[i]}
		agent_port=$(dev_agent_port $((i + 1)))
		wait_until 30 "$name agent on port $agent_port" tcp_open 127.0.0.1 "$agent_port" \
			-- pid_of "$RUN_DIR/$name.pid" ferry-node || {
			show_log_tail "$LOG_DIR/$name.log"
			die "$name agent did not start"
		}
	done
}

dev_start_services() {
	local name
	# Creates or updates the admin user; also applies the migrations before the API starts.
	printf '%s\n' "$DEV_ADMIN_PASSWORD" |
		env "${SERVICE_ENV[@]}" "$BIN_DIR/ferry-api" user-add "$DEV_ADMIN_USER" --admin --password-stdin \
			>>"$LOG_DIR/api-user-add.log" 2>&1 || {
		show_log_tail "$LOG_DIR/api-user-add.log"
		die "ferry-api user-add failed"
	}
	start_bg api ferry-api env "${SERVICE_ENV[@]}" "$BIN_DIR/ferry-api"
	for name in "${DEV_WORKERS[@]}"; do
		start_bg "$name" ferry-worker env "${SERVICE_ENV[@]}" FERRY_WORKER__LISTEN=127.0.0.1:0 "$BIN_DIR/ferry-worker"
	done
	start_bg monitor ferry-monitor env "${SERVICE_ENV[@]}" "$BIN_DIR/ferry-monitor"
	wait_until 60 "$API_URL/readyz" http_ok "$API_URL/readyz" -- pid_of "$RUN_DIR/api.pid" ferry-api || {
		show_log_tail "$LOG_DIR/api.log"
		die "the API did not become ready"
	}
}

json_string() {
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}

# dev_register_nodes: POST each node to the admin API; 409 (already there) is fine.
dev_register_nodes() {
	local response token i name code body user out=$RUN_DIR/register.out
	user=$(id -un)
	response=$(curl -s --max-time 10 -X POST --data-urlencode "username=$DEV_ADMIN_USER" \
		--data-urlencode "password=$DEV_ADMIN_PASSWORD" "$API_URL/api-token-auth/") ||
		die "POST $API_URL/api-token-auth/ failed"
	token=$(sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$response")
	[[ -n $token ]] || die "no token in the /api-token-auth/ answer: $response"
	for i in "${!DEV_NODES[@]}"; do
		name=${DEV_NODES[i]}
		body=$(printf '{"name":%s,"ssh_host":"127.0.0.1","ssh_port":%d,"ssh_user":%s,"root_path":%s,"public_url":%s,"region":"dev","lat":%s,"lon":%s}' \
			"$(json_string "$name")" "$(dev_ssh_port $((i + 1)))" "$(json_string "$user")" \
			"$(json_string "$STATE/nodes/$name/data")" \
			"$(json_string "http://127.0.0.1:$(dev_agent_port $((i + 1)))")" \
			"${DEV_NODE_LAT[i]}" "${DEV_NODE_LON[i]}")
		code=$(curl -s -o "$out" -w '%{http_code}' --max-time 10 -X POST \
			-H "Authorization: JWT $token" -H 'Content-Type: application/json' \
			--data "$body" "$API_URL/admin/api/nodes") || code=000
		case $code in
		200 | 201) log "registered $name" ;;
		409) log "$name already registered" ;;
		*) die "registering $name: HTTP $code: $(head -c 500 "$out" 2>/dev/null)" ;;
		esac
	done
	rm -f "$out"
	# Ready means uploads can be placed: wait (bounded) until the monitor has seen
	# every node up and the API has its heartbeats.
	local tries up
	for ((tries = 0; tries < 150; tries++)); do
		up=$({ curl -s --max-time 5 -H "Authorization: JWT $token" "$API_URL/admin/api/nodes" || true; } |
			{ grep -o '"up":true' || true; } | wc -l)
		((up >= ${#DEV_NODES[@]})) && return 0
		sleep 0.2
	done
	warn "only $up of ${#DEV_NODES[@]} nodes report up after 30 s (see 'deploy/dev logs monitor')"
}

dev_summary() {
	local i rabbit_password pg_password
	rabbit_password=$(<"$STATE/secrets/rabbitmq_password")
	pg_password=$(head -n 1 "$STATE/secrets/postgres_password")
	cat <<-EOF

		Ferry dev cluster is up (took $(fmt_ms "$1")$RABBIT_NOTE).

		  API                  $API_URL
		  API docs             $API_URL/docs/redoc/
		  Admin page           $API_URL/admin/   login $DEV_ADMIN_USER / $DEV_ADMIN_PASSWORD
		  RabbitMQ management  http://127.0.0.1:$MGMT_PORT/   login ferry / $rabbit_password
		  PostgreSQL           psql postgres://ferry:$pg_password@127.0.0.1:$PG_PORT/ferry
	EOF
	for i in "${!DEV_NODES[@]}"; do
		printf '  %-20s http://127.0.0.1:%s   (sshd 127.0.0.1:%s, root %s)\n' "Node ${DEV_NODES[i]}" \
			"$(dev_agent_port $((i + 1)))" "$(dev_ssh_port $((i + 1)))" "$STATE/nodes/${DEV_NODES[i]}/data"
	done
	cat <<-EOF
		  State dir            $STATE   (service env: $STATE/env)

		  deploy/dev status | deploy/dev logs [-f] [name] | deploy/dev down [--purge]

	EOF
}

# --- down / status / logs ------------------------------------------------------------------

dev_down() {
	local purge=0 name i
	for arg in "$@"; do
		case $arg in
		--purge) purge=1 ;;
		*) die "down: unknown option $arg" ;;
		esac
	done
	dev_settings
	if [[ -d $STATE ]]; then
		# Clients of the broker and the database first, so they drain cleanly.
		stop_pidfile monitor "$RUN_DIR/monitor.pid" ferry-monitor 20
		for ((i = ${#DEV_WORKERS[@]} - 1; i >= 0; i--)); do
			stop_pidfile "${DEV_WORKERS[i]}" "$RUN_DIR/${DEV_WORKERS[i]}.pid" ferry-worker 30
		done
		stop_pidfile api "$RUN_DIR/api.pid" ferry-api 20
		for ((i = ${#DEV_NODES[@]} - 1; i >= 0; i--)); do
			name=${DEV_NODES[i]}
			stop_pidfile "$name" "$RUN_DIR/$name.pid" ferry-node 10
			stop_pidfile "sshd-$name" "$RUN_DIR/sshd-$name.pid" sshd 5
		done
		rabbit_stop
		pg_stop "$(dev_pg_dir)"
		rm -f "$RUN_DIR/postgres.pid"
	else
		log "nothing to stop: $STATE does not exist"
	fi
	((purge)) || return 0
	if [[ -d $STATE ]]; then
		[[ -f $STATE/$DEV_MARKER ]] || die "refusing to delete $STATE: no $DEV_MARKER in it"
		if [[ -L $STATE/postgres ]]; then
			rm -rf "$(dirname "$(readlink "$STATE/postgres")")"
			rmdir /var/lib/ferry-dev 2>/dev/null || true
		fi
		rm -rf "$STATE"
		log "deleted $STATE"
	fi
	rm -rf "$CONTROL_DIR"
}

# dev_status: one line per process; exit 3 when any is stopped.
dev_status() {
	local stopped=0 i name
	dev_settings
	printf '%-14s %-8s %-8s %s\n' PROCESS STATE PID PORT
	_status_line() { # NAME PID_OR_EMPTY PORT
		if [[ -n $2 ]]; then
			printf '%-14s %-8s %-8s %s\n' "$1" running "$2" "$3"
		else
			printf '%-14s %-8s %-8s %s\n' "$1" stopped - "$3"
			stopped=1
		fi
	}
	local pid=""
	if pg_running "$(dev_pg_dir)"; then read -r pid <"$(dev_pg_dir)/postmaster.pid" || true; fi
	_status_line postgres "$pid" "$PG_PORT"
	_status_line rabbitmq "$(rabbit_pid || true)" "amqp $AMQP_PORT, management $MGMT_PORT"
	for i in "${!DEV_NODES[@]}"; do
		name=${DEV_NODES[i]}
		_status_line "sshd-$name" "$(pid_of "$RUN_DIR/sshd-$name.pid" sshd || true)" "$(dev_ssh_port $((i + 1)))"
		_status_line "$name" "$(pid_of "$RUN_DIR/$name.pid" ferry-node || true)" "$(dev_agent_port $((i + 1)))"
	done
	_status_line api "$(pid_of "$RUN_DIR/api.pid" ferry-api || true)" "$API_PORT"
	for name in "${DEV_WORKERS[@]}"; do
		_status_line "$name" "$(pid_of "$RUN_DIR/$name.pid" ferry-worker || true)" "- (ops endpoint on a random port)"
	done
	_status_line monitor "$(pid_of "$RUN_DIR/monitor.pid" ferry-monitor || true)" -
	printf '\nstate dir: %s\n' "$STATE"
	((stopped == 0)) || return 3
}

# dev_logs [-f] [-n LINES] [NAME]
dev_logs() {
	local follow=() lines=50 name="" file
	while (($#)); do
		case $1 in
		-f | --follow) follow=(-F) ;;
		-n)
			lines=${2:?-n needs a number}
			shift
			;;
		-*) die "logs: unknown option $1" ;;
		*) name=$1 ;;
		esac
		shift
	done
	dev_settings
	[[ -d $LOG_DIR ]] || die "no logs yet: $LOG_DIR does not exist"
	if [[ -n $name ]]; then
		file=$LOG_DIR/$name.log
		if [[ ! -f $file ]]; then
			printf 'no log named %s; available:' "$name" >&2
			for file in "$LOG_DIR"/*.log; do printf ' %s' "$(basename "$file" .log)" >&2; done
			printf '\n' >&2
			exit 1
		fi
		exec tail -n "$lines" "${follow[@]}" "$file"
	fi
	exec tail -n "$lines" "${follow[@]}" "$LOG_DIR"/*.log
}

# redoc_bundle: where the Redoc standalone bundle lands (deploy/docs, npm ci).
redoc_bundle() {
	echo "$REPO/deploy/docs/node_modules/redoc/bundles/redoc.standalone.js"
}

# docs_assets: installs the pinned front-end assets (Redoc, Swagger UI, Uppy) from the npm registry
# once; the API serves them itself, so the docs render with no network at run time.
docs_assets() {
	[[ -s $(redoc_bundle) && -s $REPO/deploy/docs/node_modules/swagger-ui-dist/swagger-ui-bundle.js &&
		-s $REPO/deploy/docs/node_modules/uppy/dist/uppy.min.js ]] && return 0
	command -v npm >/dev/null || die "npm is needed for the docs assets (install nodejs + npm)"
	log "installing docs assets (npm ci in deploy/docs)"
	(cd "$REPO/deploy/docs" && npm ci --legacy-peer-deps --no-audit --no-fund >/dev/null) ||
		die "npm ci in deploy/docs failed"
}
