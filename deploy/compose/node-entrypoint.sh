#!/bin/bash
# Entry point of the storage node image: sshd (the workers' rsync target, every session
# forced through ferry-node-ssh-command) and ferry-node (serves the files over HTTP).
#
#   node-entrypoint all   [FERRY-NODE ARGS]   both in one container (compose); when
#                                             either exits, the other is stopped too
#   node-entrypoint sshd                      sshd alone (Kubernetes: one container each)
#   node-entrypoint agent [FERRY-NODE ARGS]   ferry-node alone
#
# sshd runs as the unprivileged user ferry, so ferry is the only account it can log in.
# Its host key is mounted, never baked into the image: /etc/ferry/host-keys/<hostname>
# (Kubernetes: one Secret key per StatefulSet pod) or
# /etc/ferry/host-keys/ssh_host_ed25519_key (compose: one secret per node service).
set -euo pipefail

SSHD_CONFIG=/etc/ferry/sshd_config
HOST_KEYS=/etc/ferry/host-keys

host_key() {
	local candidate
	for candidate in "$HOST_KEYS/$(hostname)" "$HOST_KEYS/ssh_host_ed25519_key"; do
		if [[ -r $candidate ]]; then
			printf '%s\n' "$candidate"
			return 0
		fi
	done
	echo "node-entrypoint: no readable SSH host key in $HOST_KEYS (expected $(hostname) or ssh_host_ed25519_key)" >&2
	return 1
}

sshd_args() {
	local key
	key=$(host_key)
	/usr/sbin/sshd -t -f "$SSHD_CONFIG" -h "$key"
	SSHD=(/usr/sbin/sshd -D -e -f "$SSHD_CONFIG" -h "$key")
}

mode=${1:-all}
(($# == 0)) || shift
case $mode in
sshd)
	sshd_args
	exec "${SSHD[@]}"
	;;
agent)
	exec /usr/local/bin/ferry-node "$@"
	;;
all)
	sshd_args
	"${SSHD[@]}" &
	sshd_pid=$!
	/usr/local/bin/ferry-node "$@" &
	agent_pid=$!
	trap 'kill -TERM "$sshd_pid" "$agent_pid" 2>/dev/null || true' TERM INT
	rc=0
	wait -n "$sshd_pid" "$agent_pid" || rc=$?
	kill -TERM "$sshd_pid" "$agent_pid" 2>/dev/null || true
	wait "$sshd_pid" "$agent_pid" 2>/dev/null || true
	exit "$rc"
	;;
*)
	echo "usage: node-entrypoint all|sshd|agent [ferry-node args]" >&2
	exit 2
	;;
esac
