# shellcheck shell=bash
# SSH material and private sshd instances standing in for storage nodes. Host keys are
# pinned through known_hosts; nothing here relaxes host key checking.

# ssh_gen_material DIR: the workers' client key id_ed25519, the operator's key
# ops_ed25519, the node host key ssh_host_ed25519_key, each created only if missing,
# and authorized_keys (the workers' public key, for sshds that force the gate in their
# config, as the test harness's do).
ssh_gen_material() {
	local dir=$1
	mkdir -p "$dir"
	chmod 700 "$dir"
	[[ -s $dir/id_ed25519 ]] ||
		ssh-keygen -q -t ed25519 -N '' -C "ferry-worker" -f "$dir/id_ed25519"
	[[ -s $dir/ops_ed25519 ]] ||
		ssh-keygen -q -t ed25519 -N '' -C "ferry-dev-operator" -f "$dir/ops_ed25519"
	[[ -s $dir/ssh_host_ed25519_key ]] ||
		ssh-keygen -q -t ed25519 -N '' -C "ferry-node-host" -f "$dir/ssh_host_ed25519_key"
	cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
	chmod 600 "$dir/authorized_keys"
}

# node_authorized_keys DIR GATE ROOT OUT: a node's authorized_keys as production writes
# it (deploy/systemd/authorized_keys.example): the workers' key may run only the node's
# forced command GATE over ROOT; the operator's key (benchmarks, checks) is unrestricted.
node_authorized_keys() {
	local dir=$1 gate=$2 root=$3 out=$4
	{
		printf 'restrict,command="%s %s" %s\n' "$gate" "$root" "$(cut -d' ' -f1,2 "$dir/id_ed25519.pub") ferry-worker"
		cut -d' ' -f1,2 "$dir/ops_ed25519.pub" | sed 's/$/ ferry-dev-operator/'
	} >"$out.tmp"
	chmod 600 "$out.tmp"
	mv "$out.tmp" "$out"
}

# ssh_known_hosts_line DIR PORT: the known_hosts entry pinning the host key on PORT.
ssh_known_hosts_line() {
	local key
	key=$(cut -d' ' -f1,2 "$1/ssh_host_ed25519_key.pub")
	printf '[127.0.0.1]:%s %s\n' "$2" "$key"
}

# sshd_write_config CONFIG PORT SSH_DIR PIDFILE AUTHORIZED_KEYS
sshd_write_config() {
	local config=$1 port=$2 dir=$3 pidfile=$4 authorized=$5
	mkdir -p "$(dirname "$config")"
	cat >"$config" <<-EOF
		# Private sshd for a Ferry dev storage node (written by deploy/dev).
		Port $port
		ListenAddress 127.0.0.1
		HostKey $dir/ssh_host_ed25519_key
		PidFile $pidfile
		AuthorizedKeysFile $authorized
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		# Keys live in a state or temp dir whose modes sshd would otherwise reject.
		StrictModes no
		PermitRootLogin prohibit-password
		UsePAM no
		PrintMotd no
		# Replication fans out: several workers x concurrency connections at once,
		# multiplexed over control masters.
		MaxStartups 64:30:128
		MaxSessions 64
		# sshd runs every remote command through the login shell, and bash started by sshd
		# reads ~/.bashrc: a storage node's ssh user has none, the developer may (pyenv
		# init costs ~0.4 s per command). An empty HOME keeps replicas off it.
		SetEnv HOME=$(dirname "$config")/home
	EOF
	mkdir -p "$(dirname "$config")/home"
}

# sshd_start NAME CONFIG LOGFILE PIDFILE PORT: start sshd (it daemonizes and writes
# PIDFILE itself) unless it is already running, then wait for the port.
sshd_start() {
	local name=$1 config=$2 logfile=$3 pidfile=$4 port=$5 pid
	if pid=$(pid_of "$pidfile" sshd); then
		log "$name already running (pid $pid)"
		return 0
	fi
	mkdir -p /run/sshd
	/usr/sbin/sshd -t -f "$config" 2>>"$logfile" || {
		show_log_tail "$logfile"
		die "$name: invalid sshd config $config"
	}
	# sshd must be started by absolute path (it re-executes itself per connection).
	/usr/sbin/sshd -f "$config" -E "$logfile" || {
		show_log_tail "$logfile"
		die "$name: sshd failed to start"
	}
	wait_until 10 "$name on port $port" tcp_open 127.0.0.1 "$port" || {
		show_log_tail "$logfile"
		die "$name: sshd is not listening on port $port"
	}
	log "$name started (pid $(pid_of "$pidfile" sshd || echo '?'), port $port)"
}

# ssh_check DIR KNOWN_HOSTS USER PORT ROOT: the operator's key logs in (host key
# pinned), and the workers' key runs a command through the node's gate (the orphan
# sweep's listing, harmless), so a node whose gate is missing or broken fails here.
ssh_check() {
	local dir=$1 known_hosts=$2 user=$3 port=$4 root=$5
	local opts=(-F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes
		-o UserKnownHostsFile="$known_hosts" -o GlobalKnownHostsFile=/dev/null
		-o StrictHostKeyChecking=yes -o ConnectTimeout=5 -p "$port")
	ssh "${opts[@]}" -i "$dir/ops_ed25519" "$user@127.0.0.1" true &&
		ssh "${opts[@]}" -i "$dir/id_ed25519" "$user@127.0.0.1" \
			"'find' '$root' '-mindepth' '2' '-maxdepth' '2' '-type' 'f' '-mmin' '+100000'" >/dev/null
}
