# shellcheck shell=bash
# A private PostgreSQL cluster: initdb + pg_ctl on a loopback port, trust auth for the
# superuser `ferry`. initdb refuses to run as root, so as root every server command runs
# as the `postgres` OS user, which must own (and be able to reach) the data directory.

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

# pg_start DATADIR PORT LOGFILE [SERVER_OPTION...]: initdb DATADIR if new, then start the
# server on 127.0.0.1:PORT and wait until it accepts connections. SERVER_OPTIONs are extra
# postgres arguments, e.g. "-c fsync=off". LOGFILE is opened by us (root), so it may live
# where the postgres user cannot write.
pg_start() {
	local data=$1 port=$2 logfile=$3 bin sockdir
	shift 3
	bin=$(pg_bindir) || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
	if pg_running "$data"; then
		log "postgres already running ($data)"
		return 0
	fi
	if [[ ! -s $data/PG_VERSION ]]; then
		mkdir -p "$data"
		chmod 700 "$data"
		chown "$(pg_owner):" "$data"
		log "initdb $data"
		as_postgres "$bin/initdb" -D "$data" -A trust -U ferry -E UTF8 --locale=C >>"$logfile" 2>&1 ||
			{
				show_log_tail "$logfile"
				die "initdb failed"
			}
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

# pg_ensure_db PORT DBNAME: create DBNAME (owner ferry) unless it exists.
pg_ensure_db() {
	local port=$1 db=$2 bin exists
	bin=$(pg_bindir)
	exists=$("$bin/psql" -X -q -t -A -h 127.0.0.1 -p "$port" -U ferry -d postgres \
		-c "SELECT 1 FROM pg_database WHERE datname = '$db'")
	if [[ $exists != 1 ]]; then
		"$bin/createdb" -h 127.0.0.1 -p "$port" -U ferry -O ferry "$db"
		log "created database $db"
	fi
}
