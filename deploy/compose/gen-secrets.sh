#!/usr/bin/env bash
# gen-secrets.sh [DIR]: creates the secrets docker-compose.yml mounts (default DIR:
# deploy/compose/secrets, git-ignored). Existing secrets are kept, so running it again
# is harmless; derived files (URLs, authorized_keys, known_hosts) are rewritten from them.
#
#   postgres_password, rabbitmq_password   service passwords
#   database_url, broker_url               Ferry's URLs with those passwords (database.url_file, broker.url_file)
#   rabbitmq_credentials.conf              RabbitMQ's default_user/default_pass (read on its first start only)
#   jwt_secret, signing_secret             auth.jwt_secret_file, signing.secret_file (64 hex chars)
#   admin_password                         Ferry's first admin (user "admin"), set by the bootstrap service
#   worker_ssh_key[.pub]                   the workers' SSH key (ed25519)
#   authorized_keys                        the nodes' entry for it, restricted to ferry-node-ssh-command
#   NODE_host_key[.pub], known_hosts       one host key per node, pinned for the workers
#
# The directory is 0700: other users of the Docker host cannot read into it. The files
# are 0444 because compose mounts them as they are (compose ignores uid/gid/mode for
# file secrets) and the containers read them as uid 10001. Run it as a user whose uid is
# not 10001: OpenSSH refuses a private key owned by the reading user unless it is 0600.
set -euo pipefail

DIR=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets}
NODES=${FERRY_COMPOSE_NODES:-node1 node2 node3}
SSH_PORT=2222
FORCED_COMMAND="/usr/lib/ferry/ferry-node-ssh-command /srv/ferry"

command -v ssh-keygen >/dev/null || {
	echo "gen-secrets: ssh-keygen not found (apt-get install openssh-client)" >&2
	exit 1
}

mkdir -p "$DIR"
chmod 700 "$DIR"
umask 077

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# secret NAME BYTES: a random hex secret, created once.
secret() {
	[[ -s $DIR/$1 ]] || printf '%s\n' "$(random_hex "$2")" >"$DIR/$1"
}

# derived NAME: replaces NAME with stdin.
derived() {
	rm -f "$DIR/$1"
	cat >"$DIR/$1"
}

keypair() {
	[[ -s $DIR/$1 ]] || ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$DIR/$1"
}

secret postgres_password 24
secret rabbitmq_password 24
secret jwt_secret 32
secret signing_secret 32
secret admin_password 12
keypair worker_ssh_key ferry-worker

pg=$(<"$DIR/postgres_password")
mq=$(<"$DIR/rabbitmq_password")
printf 'postgres://ferry:%s@postgres:5432/ferry\n' "$pg" | derived database_url
printf 'amqp://ferry:%s@rabbitmq:5672/%%2f\n' "$mq" | derived broker_url
printf 'default_user = ferry\ndefault_pass = %s\n' "$mq" | derived rabbitmq_credentials.conf
printf 'restrict,command="%s" %s\n' "$FORCED_COMMAND" "$(cut -d' ' -f1,2 "$DIR/worker_ssh_key.pub") ferry-worker" |
	derived authorized_keys

known_hosts=""
for node in $NODES; do
	keypair "${node}_host_key" "ferry-$node"
	known_hosts+="[$node]:$SSH_PORT $(cut -d' ' -f1,2 "$DIR/${node}_host_key.pub")"$'\n'
done
printf '%s' "$known_hosts" | derived known_hosts

chmod 0444 "$DIR"/*
echo "gen-secrets: secrets are in $DIR (admin password: $DIR/admin_password)"
