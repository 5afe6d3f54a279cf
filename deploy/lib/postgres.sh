# shellcheck shell=bash
# A private PostgreSQL cluster: initdb + pg_ctl on a loopback port, superuser `ferry`
# with a password: every connection, over TCP or the unix socket, authenticates with
# scram-sha-256 (issue 15 item 17; `trust` let anyone with a shell on the machine in).
# initdb refuses to run as root, so as root every server command runs as the `postgres`
# OS user, which must own (and be able to reach) the data directory.

# as_postgres CMD...: run CMD as `postgres` when we are root, else as ourselves. From /,
# because initdb and pg_ctl fail when they cannot read the current directory.
as_postgres() {
	if ((EUID == 0)); then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# pg_owner: the OS user owning data directories.
pg_owner() {
	if ((EUID == 0)); then echo postgres; else id -un; fi
}

# pg_can_use_dir DIR: true when the postgres user can create DIR (every parent traversable).
pg_can_use_dir() {
	local dir=$1 parent
	parent=$(dirname "$dir")
	mkdir -p "$parent"
	as_postgres test -x "$parent" 2>/dev/null
}

# pg_running DATADIR: true when a postmaster serves DATADIR.
pg_running() {
	local bin
	bin=$(pg_bindir) || return 1
	[[ -s $1/postmaster.pid ]] || return 1
	as_postgres "$bin/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# pg_start DATADIR PORT LOGFILE PASSWORD_FILE [SERVER_OPTION...]: initdb DATADIR if new
# (superuser `ferry`, its password the first line of PASSWORD_FILE, scram-sha-256 for
# every connection), then start the server on 127.0.0.1:PORT and wait until it accepts
# connections; a cluster made by an older version that still trusts local connections
# is given the password and made to ask for it. SERVER_OPTIONs are extra postgres
# arguments, e.g. "-c fsync=off". LOGFILE is opened by us (root), so it may live where
# the postgres user cannot write.
pg_start() {
	local data=$1 port=$2 logfile=$3 password_file=$4 bin sockdir pwfile
	shift 4
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
	if pg_running "$data"; then
		log "postgres already running ($data)"
		pg_require_password "$data" "$port" "$password_file"
		return 0
	fi
	if [[ ! -s $data/PG_VERSION ]]; then
		mkdir -p "$data"
		chmod 700 "$data"
		chown "$(pg_owner):" "$data"
		log "initdb $data"
		# initdb reads the password from a file the postgres user can read: a copy of
		# its own (mode 600), removed at once.
		pwfile=$(mktemp)
		cat "$password_file" >"$pwfile"
		chown "$(pg_owner):" "$pwfile"
		as_postgres "$bin/initdb" -D "$data" -A scram-sha-256 --pwfile="$pwfile" -U ferry -E UTF8 --locale=C \
			>>"$logfile" 2>&1 ||
			{
				rm -f "$pwfile"
				show_log_tail "$logfile"
				die "initdb failed"
			}
		rm -f "$pwfile"
	fi
	# The unix socket goes in the data dir unless that path is too long for sun_path
	# (108 bytes); then TCP only.
	sockdir=$data
	((${#data} < 90)) || sockdir=""
	as_postgres "$bin/pg_ctl" -D "$data" -w -t 60 \
		-o "-p $port -k '$sockdir' -c listen_addresses=127.0.0.1 $*" start >>"$logfile" 2>&1 ||
		{
			show_log_tail "$logfile"
			die "PostgreSQL did not start on port $port"
		}
	pg_require_password "$data" "$port" "$password_file"
}

# pg_require_password DATADIR PORT PASSWORD_FILE: for a running cluster whose
# pg_hba.conf still trusts connections (initdb -A trust, before issue 15 item 17):
# give `ferry` the password, make every trust line scram-sha-256, reload. A no-op for
# a cluster that already asks for passwords.
pg_require_password() {
	local data=$1 port=$2 password_file=$3 bin
	as_postgres grep -Eq '^[[:space:]]*(local|host)[^#]*[[:space:]]trust[[:space:]]*$' "$data/pg_hba.conf" || return 0
	bin=$(pg_bindir)
	log "postgres: $data trusted local connections; setting the password and requiring it"
	# The statement goes through stdin, never a command line (ps would show it).
	printf "ALTER ROLE ferry PASSWORD '%s';\n" "$(head -n 1 "$password_file")" |
		"$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U ferry -d postgres >/dev/null ||
		die "could not set the password of the PostgreSQL role ferry"
	as_postgres sed -i -E 's/^([[:space:]]*(local|host)[^#]*[[:space:]])trust[[:space:]]*$/\1scram-sha-256/' \
		"$data/pg_hba.conf"
	as_postgres "$bin/pg_ctl" -D "$data" reload >/dev/null
}

# pg_write_pidfile DATADIR PIDFILE: copy the postmaster pid out for `status`.
pg_write_pidfile() {
	local pid
	[[ -s $1/postmaster.pid ]] || return 0
	read -r pid <"$1/postmaster.pid" || true
	echo "$pid" >"$2"
}

# pg_stop DATADIR: fast shutdown (abort open transactions, clean checkpoint).
pg_stop() {
	local data=$1 bin
	[[ -d $data ]] || return 0
	pg_running "$data" || return 0
	bin=$(pg_bindir) || return 0
	if as_postgres "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
		log "postgres stopped"
	else
		warn "pg_ctl stop failed; killing the postmaster"
		as_postgres "$bin/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
	fi
}

# pg_ensure_db PORT DBNAME PASSWORD_FILE: create DBNAME (owner ferry) unless it exists.
pg_ensure_db() {
	local port=$1 db=$2 password bin exists
	bin=$(pg_bindir)
	password=$(head -n 1 "$3")
	exists=$(PGPASSWORD=$password "$bin/psql" -X -q -t -A -h 127.0.0.1 -p "$port" -U ferry -d postgres \
		-c "SELECT 1 FROM pg_database WHERE datname = '$db'")
	if [[ $exists != 1 ]]; then
		PGPASSWORD=$password "$bin/createdb" -h 127.0.0.1 -p "$port" -U ferry -O ferry "$db"
		log "created database $db"
	fi
}
