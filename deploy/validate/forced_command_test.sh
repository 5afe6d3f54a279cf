#!/usr/bin/env bash
# forced_command_test.sh: tests deploy/systemd/ferry-node-ssh-command, the forced command
# that confines the workers' SSH key on a storage node.
#
#   1. its allow/deny table, with --dry-run (prints what it would run, runs nothing);
#   2. (root only, as sshd needs it) the real thing: a private sshd on a free loopback
#      port, configured by the node image's sshd_config (deploy/compose/node-sshd_config)
#      with the test's port, key and root layered on top, driven by the worker's exact
#      ssh and rsync command lines (worker/src/ssh.rs), including --protect-args.
#
# Prints one line per failed case and "forced-command: N passed, M failed".
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CMD=$REPO/deploy/systemd/ferry-node-ssh-command
SSHD_CONFIG=$REPO/deploy/compose/node-sshd_config
TMP=$(mktemp -d -t ferry-fc.XXXXXX)
ROOT=$TMP/root
ID=ab12cd34-0000-4000-8000-00000000beef
OTHER=cd12cd34-0000-4000-8000-00000000beef
FILE=$ROOT/ab/$ID
PASSED=0
FAILED=0
SSHD_PID=""

cleanup() {
	if [[ -n ${SSH[*]:-} ]]; then "${SSH[@]}" -O exit "$USER_AT" >/dev/null 2>&1 || true; fi
	if [[ -n $SSHD_PID ]]; then kill "$SSHD_PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); }
bad() {
	FAILED=$((FAILED + 1))
	printf '  FAIL %s\n' "$*"
}

# dry VERDICT DESCRIPTION COMMAND [STDIN]: VERDICT is allow (exit 0) or deny (exit 126).
dry() {
	local verdict=$1 what=$2 command=$3 input=${4:-} rc=0
	printf '%b' "$input" | SSH_ORIGINAL_COMMAND=$command "$CMD" --dry-run "$ROOT" >"$TMP/out" 2>&1 || rc=$?
	case $verdict:$rc in
	allow:0 | deny:126) ok ;;
	*) bad "dry-run $verdict: $what (exit $rc: $(head -c 300 "$TMP/out"))" ;;
	esac
}

mkdir -p "$ROOT/ab" "$TMP/outside"
q() { printf "'%s' " "$@"; } # the worker's quoting: every word single-quoted

dry allow "sha256sum (worker quoting)" "$(q sha256sum -- "$FILE")"
dry allow "md5sum (worker quoting)" "$(q md5sum -- "$FILE")"
dry deny "md5sum outside the root" "$(q md5sum -- /etc/shadow)"
dry allow "rm -f" "$(q rm -f -- "$FILE")"
dry allow "mv aside (scrub)" "$(q mv -f -- "$FILE" "$FILE.corrupt-1764000000")"
dry allow "orphan sweep find" "$(q find "$ROOT" -mindepth 2 -maxdepth 2 -type f -mmin +60)"
dry allow "find, root with a trailing slash" "$(q find "$ROOT/" -mindepth 2 -maxdepth 2 -type f -mmin +5)"
dry allow "rsync receiver, plain args" "rsync --server -te.LsfxCIvu --timeout=60 --partial-dir .rsync-partial --mkpath . $FILE"
dry allow "rsync receiver, --protect-args on stdin" "rsync --server -ste.LsfxCIvu" \
	"rsync\0--timeout=60\0--partial-dir\0.rsync-partial\0--mkpath\0.\0$FILE\0\0"
dry allow "rsync receiver, md5 transfer checksum (worker's exact stdin)" "rsync --server -ste.LsfxCIvu" \
	"rsync\0--log-format=X\0--timeout=60\0--checksum-choice=md5\0--partial-dir\0.rsync-partial\0--mkpath\0.\0$FILE\0\0"
dry deny "rsync receiver, other checksum choice" "rsync --server -ste.LsfxCIvu" \
	"rsync\0--checksum-choice=none\0.\0$FILE\0\0"
dry deny "rsync receiver, server-side log format" "rsync --server -ste.LsfxCIvu" \
	"rsync\0--log-format=%f\0.\0$FILE\0\0"

dry deny "interactive login" ""
dry deny "a shell" "sh -c id"
dry deny "cat" "$(q cat /etc/passwd)"
dry deny "sha256sum outside the root" "$(q sha256sum -- /etc/passwd)"
dry deny "sha256sum with .." "$(q sha256sum -- "$ROOT/ab/../../../etc/passwd")"
dry deny "shard not the uuid's prefix" "$(q sha256sum -- "$ROOT/ab/$OTHER")"
dry deny "sha256sum without --" "$(q sha256sum "$FILE")"
dry deny "rm -rf of the root" "$(q rm -rf -- "$ROOT")"
dry deny "rm of two files" "$(q rm -f -- "$FILE" "$ROOT/cd/$OTHER")"
dry deny "mv out of the root" "$(q mv -f -- "$FILE" /tmp/x)"
dry deny "find -delete" "$(q find "$ROOT" -mindepth 2 -maxdepth 2 -type f -delete)"
dry deny "find of /" "$(q find / -mindepth 2 -maxdepth 2 -type f -mmin +60)"
dry deny "command substitution" "sha256sum -- \$(id)"
dry deny "command list" "sha256sum -- $FILE; id"
dry deny "backticks" "sha256sum -- \`id\`"
dry deny "double quotes" "sha256sum -- \"$FILE\""
dry deny "rsync sender (download)" "rsync --server --sender -te.LsfxCIvu . $FILE"
dry deny "rsync keeping symlinks" "rsync --server -tle.LsfxCIvu . $FILE"
dry deny "rsync into a directory" "rsync --server -te.LsfxCIvu . $ROOT/ab/"
dry deny "rsync, protected destination outside the root" "rsync --server -ste.LsfxCIvu" \
	"rsync\0--mkpath\0.\0/etc/cron.d/x\0\0"
dry deny "rsync, protected --delete" "rsync --server -ste.LsfxCIvu" "rsync\0--delete\0.\0$FILE\0\0"
dry deny "rsync, protected --remove-source-files" "rsync --server -ste.LsfxCIvu" \
	"rsync\0--remove-source-files\0.\0$FILE\0\0"
dry deny "rsync, protected --inplace" "rsync --server -ste.LsfxCIvu" "rsync\0--inplace\0.\0$FILE\0\0"
dry deny "rsync, two destinations" "rsync --server -ste.LsfxCIvu" "rsync\0.\0$FILE\0$ROOT/cd/$OTHER\0\0"
dry deny "rsync, other --partial-dir" "rsync --server -ste.LsfxCIvu" "rsync\0--partial-dir=/tmp\0.\0$FILE\0\0"
dry deny "rsync, protected args cut short" "rsync --server -ste.LsfxCIvu" "rsync\0.\0$FILE"
ln -s "$TMP/outside" "$ROOT/cd"
dry deny "shard directory symlinked out of the root" "$(q sha256sum -- "$ROOT/cd/$OTHER")"
dry deny "rsync through a symlinked shard" "rsync --server -te.LsfxCIvu . $ROOT/cd/$OTHER"
rm "$ROOT/cd"
DRY=$((PASSED + FAILED))

# expect DESCRIPTION COMMAND...: one live case; the command must succeed.
expect() {
	local what=$1
	shift
	if "$@" >/dev/null 2>"$TMP/err"; then ok; else bad "live: $what ($(head -c 300 "$TMP/err"))"; fi
}
refused() {
	local rc=0
	"$@" </dev/null >/dev/null 2>&1 || rc=$?
	((rc == 126))
}
pushed() {
	rsync_push "$TMP/upload" "$FILE" && cmp -s "$TMP/upload" "$FILE" &&
		[[ $(cat "$TMP/push.out") == "ferry-transfer-md5 $(md5sum <"$TMP/upload" | cut -d' ' -f1)" ]] &&
		[[ $(stat -c %a "$FILE") == 644 && ! -e $ROOT/ab/.rsync-partial ]]
}
remote_sha256_matches() {
	local got
	got=$(remote sha256sum -- "$FILE") && [[ ${got%% *} == "$WANT" ]]
}
sweep_lists_file() {
	local got
	touch -d '-2 hours' "$FILE"
	got=$(remote find "$ROOT" -mindepth 2 -maxdepth 2 -type f -mmin +60) && [[ $got == "$FILE" ]]
}
moved_aside() {
	remote mv -f -- "$FILE" "$FILE.corrupt-1764000000" && [[ -f $FILE.corrupt-1764000000 && ! -e $FILE ]]
}
removed() {
	rsync_push "$TMP/upload" "$FILE" && remote rm -f -- "$FILE" && [[ ! -e $FILE ]]
}
push_outside_refused() {
	! rsync_push "$TMP/upload" "$TMP/outside/$ID" 2>/dev/null && [[ ! -e $TMP/outside/$ID ]]
}
pull_refused() {
	! rsync --protect-args -e "${SSH[*]}" "$USER_AT:$FILE.corrupt-1764000000" "$TMP/pulled" 2>/dev/null &&
		[[ ! -e $TMP/pulled ]]
}
# A stdio forward (-W) to sshd's own port: accepted, it would relay sshd's banner.
forward_refused() {
	local out
	out=$(timeout 10 "${SSH[@]}" -o ControlPath=none -W "127.0.0.1:$PORT" "$USER_AT" </dev/null 2>/dev/null) || true
	[[ $out != SSH-* ]]
}

live() {
	if ((EUID != 0)) || [[ ! -x /usr/sbin/sshd ]] || ! command -v rsync >/dev/null; then
		echo "  note: live sshd test skipped (needs root, /usr/sbin/sshd and rsync)"
		return 0
	fi
	local port user key=$TMP/client host=$TMP/host_ed25519
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	user=$(id -un)
	ssh-keygen -q -t ed25519 -N '' -C ferry-worker -f "$key"
	ssh-keygen -q -t ed25519 -N '' -C ferry-node -f "$host"
	printf 'restrict,command="%s %s" %s\n' "$CMD" "$ROOT" "$(cut -d' ' -f1,2 "$key.pub")" >"$TMP/authorized_keys"
	printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$host.pub")" >"$TMP/known_hosts"
	mkdir -p /run/sshd "$TMP/ctl"
	chmod 700 "$TMP/ctl"
	/usr/sbin/sshd -t -f "$SSHD_CONFIG" -h "$host" || {
		bad "sshd -t rejects deploy/compose/node-sshd_config"
		return 0
	}
	# The image's config, with this test's port, user, keys and root on top (-o wins).
	/usr/sbin/sshd -D -e -f "$SSHD_CONFIG" -h "$host" -o "Port=$port" -o ListenAddress=127.0.0.1 \
		-o "PidFile=$TMP/sshd.pid" -o "AllowUsers=$user" -o PermitRootLogin=forced-commands-only \
		-o "AuthorizedKeysFile=$TMP/authorized_keys" -o "ForceCommand=$CMD $ROOT" 2>"$TMP/sshd.log" &
	SSHD_PID=$!
	local _
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	PORT=$port
	# worker/src/ssh.rs, option for option.
	SSH=(ssh -p "$port" -i "$key" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
		-o "UserKnownHostsFile=$TMP/known_hosts" -o ConnectTimeout=10 -o ServerAliveInterval=10
		-o ServerAliveCountMax=3 -o ControlMaster=auto -o "ControlPath=$TMP/ctl/%C" -o ControlPersist=60
		-c aes128-gcm@openssh.com)
	USER_AT=$user@127.0.0.1
	rsync_push() {
		rsync --protect-args --mkpath --times --chmod=F0644,D0755 --partial-dir=.rsync-partial \
			--checksum-choice=md5 "--out-format=ferry-transfer-md5 %C" --timeout=60 \
			-e "${SSH[*]}" "$1" "$USER_AT:$2" >"$TMP/push.out"
	}
	remote() { "${SSH[@]}" "$USER_AT" -- "$(q "$@")"; }

	head -c 1048576 /dev/urandom >"$TMP/upload"
	WANT=$(sha256sum "$TMP/upload" | cut -d' ' -f1)
	expect "rsync --protect-args push" pushed
	expect "remote sha256sum" remote_sha256_matches
	expect "orphan-sweep find" sweep_lists_file
	expect "mv aside (scrub)" moved_aside
	expect "rm -f" removed
	expect "cat is refused (exit 126)" refused remote cat /etc/hostname
	expect "an interactive session is refused (exit 126)" refused "${SSH[@]}" -T "$USER_AT"
	expect "rsync outside the root is refused" push_outside_refused
	expect "rsync download (--sender) is refused" pull_refused
	expect "port forwarding is refused" forward_refused
	LIVE=$((PASSED + FAILED - DRY))
}
LIVE=0
live

echo "forced-command: $PASSED passed, $FAILED failed ($DRY dry-run cases, $LIVE over a real sshd)"
((FAILED == 0))
