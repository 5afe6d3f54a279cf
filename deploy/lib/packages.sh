# shellcheck shell=bash
# System packages the dev cluster and the test suite need (Debian 12).

# pg_bindir: the newest installed PostgreSQL server binary dir, e.g. /usr/lib/postgresql/15/bin.
pg_bindir() {
	local initdb
	initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
	[[ -x $initdb ]] || return 1
	dirname "$initdb"
}

RABBITMQ_LIB_BIN=/usr/lib/rabbitmq/bin

# ensure_packages: apt-get install whatever is missing, with one `apt-get update` first,
# and nothing at all when everything is there. Installing does not start the system
# services where policy-rc.d forbids it; we never use them anyway (private instances).
ensure_packages() {
	local missing=() sudo=()
	pg_bindir >/dev/null || missing+=(postgresql)
	[[ -x $RABBITMQ_LIB_BIN/rabbitmq-server ]] || missing+=(rabbitmq-server)
	[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
	{ command -v ssh && command -v ssh-keygen; } >/dev/null 2>&1 || missing+=(openssh-client)
	command -v rsync >/dev/null 2>&1 || missing+=(rsync)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	command -v openssl >/dev/null 2>&1 || missing+=(openssl) # e2e/tus/curl.sh, as the README types it
	# The build links libcrypto (md5, shared/src/hashing/openssl_md5.rs) through openssl-sys.
	{ command -v pkg-config && pkg-config --exists libcrypto; } >/dev/null 2>&1 || missing+=(pkg-config libssl-dev)
	((${#missing[@]})) || return 0

	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}) and not root: install them first"
		sudo=(sudo)
	fi
	log "installing missing packages: ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# ensure_rust_tools: cargo plus the rustfmt and clippy components the test suite runs.
ensure_rust_tools() {
	command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs) first"
	local component
	for component in rustfmt clippy; do
		local sub=${component/rustfmt/fmt}
		if ! cargo "$sub" --version >/dev/null 2>&1; then
			command -v rustup >/dev/null 2>&1 || die "cargo $sub missing and rustup not found"
			log "installing rust component $component"
			rustup component add "$component"
		fi
	done
}

# docs_assets: installs the pinned front-end assets (Redoc, Swagger UI, Uppy) from the npm
# registry once; the API serves them itself, so the docs render with no network at run time.
docs_assets() {
	[[ -s $REPO/deploy/docs/node_modules/redoc/bundles/redoc.standalone.js &&
		-s $REPO/deploy/docs/node_modules/swagger-ui-dist/swagger-ui-bundle.js &&
		-s $REPO/deploy/docs/node_modules/uppy/dist/uppy.min.js ]] && return 0
	command -v npm >/dev/null || die "npm is needed for the docs assets (install nodejs + npm)"
	log "installing docs assets (npm ci in deploy/docs)"
	(cd "$REPO/deploy/docs" && npm ci --legacy-peer-deps --no-audit --no-fund >/dev/null) ||
		die "npm ci in deploy/docs failed"
}
