#!/bin/sh
# One-shot set-up of a fresh Ferry deployment, run from the api image (compose service
# `bootstrap`, Kubernetes Job `ferry-bootstrap`). Safe to run again: every step is
# idempotent.
#
#   1. apply the database migrations (ferry-api migrate; they also run at every start-up,
#      under an advisory lock);
#   2. create or reset the admin user, password from $BOOTSTRAP_ADMIN_PASSWORD_FILE;
#   3. register the storage nodes in $BOOTSTRAP_NODES that are not registered yet:
#      records separated by ';', fields by spaces:
#          name ssh_host ssh_port public_url region lat lon
#
# Configuration: $FERRY_CONFIG (the api's TOML) and FERRY_* variables, as for ferry-api.
set -eu

: "${FERRY_CONFIG:=/etc/ferry/api.toml}"
export FERRY_CONFIG
admin_user=${BOOTSTRAP_ADMIN_USER:-admin}
admin_password_file=${BOOTSTRAP_ADMIN_PASSWORD_FILE:-/run/secrets/admin_password}

echo "bootstrap: applying migrations"
ferry-api migrate

if [ -r "$admin_password_file" ]; then
	echo "bootstrap: admin user $admin_user"
	head -n 1 "$admin_password_file" | ferry-api user-add "$admin_user" --admin --password-stdin
else
	echo "bootstrap: $admin_password_file not readable; no admin user created" >&2
fi

registered=$(ferry nodes list | awk 'NR > 1 { print $2 }')
old_ifs=$IFS
IFS=';'
# shellcheck disable=SC2086 # word splitting on ';' is the point
set -- ${BOOTSTRAP_NODES:-}
IFS=$old_ifs
for record in "$@"; do
	# shellcheck disable=SC2086
	set -- $record
	[ $# -eq 0 ] && continue
	if [ $# -ne 7 ]; then
		echo "bootstrap: bad node record '$record' (want: name ssh_host ssh_port public_url region lat lon)" >&2
		exit 2
	fi
	if printf '%s\n' "$registered" | grep -qx "$1"; then
		echo "bootstrap: node $1 already registered"
		continue
	fi
	ferry nodes add --name "$1" --ssh-host "$2" --ssh-port "$3" --ssh-user ferry \
		--root-path /srv/ferry --public-url="$4" --region="$5" --lat="$6" --lon="$7"
done
echo "bootstrap: done"
