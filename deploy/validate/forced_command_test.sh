#!/usr/bin/env bash
# forced_command_test.sh GATE: the node's forced command (ferry-node-ssh-command, built from
# shared/node-commands) behind a real sshd configured by the node image's sshd_config
# (deploy/compose/node-sshd_config), with this test's port, key and root layered on top.
#
# The allow/deny table is Rust unit tests of the gate (shared/node-commands), and every
# command the worker really sends goes through this same gate in the integration tests
# (deploy/launcher forces it on the workers' key of every test and dev node). What is left
# here is what only sshd + the image's config decide: an allowed command runs, anything
# else exits 126, no interactive session, no rsync download, no port forwarding.
#
# Needs root, /usr/sbin/sshd and rsync (skipped otherwise).
# Prints one line per failed case and "forced-command: N passed, M failed".
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GATE=${1:?usage: forced_command_test.sh PATH-TO-ferry-node-ssh-command}
SSHD_CONFIG=$REPO/deploy/compose/node-sshd_config
TMP=$(mktemp -d -t ferry-fc.XXXXXX)
ROOT=$TMP/root
ID=ab12cd34-0000-4000-8000-00000000beef
FILE=$ROOT/ab/$ID
PASSED=0
FAILED=0
SSHD_PID=""

cleanup() {
	if [[ -n $SSHD_PID ]]; then kill "$SSHD_PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT

expect() {
	local what=$1
	shift
	if "$@" >/dev/null 2>"$TMP/err"; then
		PASSED=$((PASSED + 1))
	else
		FAILED=$((FAILED + 1))
		printf '  FAIL %s (%s)\n' "$what" "$(head -c 300 "$TMP/err")"
	fi
}
refused() {
	local rc=0
	"$@" </dev/null >/dev/null 2>&1 || rc=$?
	((rc == 126))
}
q() { printf "'%s' " "$@"; }
remote() { "${SSH[@]}" "$USER_AT" -- "$(q "$@")"; }
sha256_matches() {
	local got
	got=$(remote sha256sum -- "$FILE") && [[ ${got%% *} == "$(sha256sum <"$FILE" | cut -d' ' -f1)" ]]
}
pull_refused() {
	! rsync --protect-args -e "${SSH[*]}" "$USER_AT:$FILE" "$TMP/pulled" 2>/dev/null && [[ ! -e $TMP/pulled ]]
}
# A stdio forward (-W) to sshd's own port: accepted, it would relay sshd's banner.
forward_refused() {
	local out
	out=$(timeout 10 "${SSH[@]}" -W "127.0.0.1:$PORT" "$USER_AT" </dev/null 2>/dev/null) || true
	[[ $out != SSH-* ]]
}

if ((EUID != 0)) || [[ ! -x /usr/sbin/sshd ]] || ! command -v rsync >/dev/null; then
	echo "note: live sshd test skipped (needs root, /usr/sbin/sshd and rsync)"
	echo "forced-command: 0 passed, 0 failed"
	exit 0
fi
[[ -x $GATE ]] || {
	echo "forced-command: $GATE is not executable (cargo build --bin ferry-node-ssh-command)"
	exit 1
}
mkdir -p "$ROOT/ab" /run/sshd
head -c 65536 /dev/urandom >"$FILE"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=$(id -un)
ssh-keygen -q -t ed25519 -N '' -C ferry-worker -f "$TMP/client"
ssh-keygen -q -t ed25519 -N '' -C ferry-node -f "$TMP/host"
printf 'restrict,command="%s %s" %s\n' "$GATE" "$ROOT" "$(cut -d' ' -f1,2 "$TMP/client.pub")" >"$TMP/authorized_keys"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$TMP/host.pub")" >"$TMP/known_hosts"
/usr/sbin/sshd -t -f "$SSHD_CONFIG" -h "$TMP/host" || {
	echo "  FAIL sshd -t rejects deploy/compose/node-sshd_config"
	echo "forced-command: 0 passed, 1 failed"
	exit 1
}
# The image's config, with this test's port, user, keys and root on top (-o wins).
/usr/sbin/sshd -D -e -f "$SSHD_CONFIG" -h "$TMP/host" -o "Port=$PORT" -o ListenAddress=127.0.0.1 \
	-o "PidFile=$TMP/sshd.pid" -o "AllowUsers=$user" -o PermitRootLogin=forced-commands-only \
	-o "AuthorizedKeysFile=$TMP/authorized_keys" -o "ForceCommand=$GATE $ROOT" 2>"$TMP/sshd.log" &
SSHD_PID=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
	sleep 0.1
done
SSH=(ssh -F /dev/null -p "$PORT" -i "$TMP/client" -o BatchMode=yes -o IdentitiesOnly=yes
	-o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$TMP/known_hosts" -o ConnectTimeout=10)
USER_AT=$user@127.0.0.1

expect "an allowed command runs (sha256sum of a stored file)" sha256_matches
expect "cat is refused (exit 126)" refused remote cat /etc/hostname
expect "a path outside the root is refused (exit 126)" refused remote sha256sum -- /etc/passwd
expect "an interactive session is refused (exit 126)" refused "${SSH[@]}" -T "$USER_AT"
expect "rsync download (--sender) is refused" pull_refused
expect "port forwarding is refused" forward_refused

echo "forced-command: $PASSED passed, $FAILED failed (over a real sshd)"
((FAILED == 0))
