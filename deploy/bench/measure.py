#!/usr/bin/env python3
"""The measurements of `deploy/bench/run` (see its header); standard library only.

Runs against the cluster `run` started (its state dir, `ports.env`, pid files) and the
peers of ../shared/peers (their start/stop scripts and their one client, upload.py),
interleaving the runs of every side so that the machine's drift hits them alike. Writes
every raw figure to a JSON file that report.py turns into the table. Exit status: 0 when
everything measured (a missed target is a result, not an error), 1 when something is
broken (a stored copy's md5 differs, an HTTP error, a timeout), 2 for bad arguments.
"""

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

MIB = 1 << 20
CHUNK_MIB = 8


class Broken(Exception):
    """Something is wrong (not merely slow): the run stops and exits 1."""


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} bench: {msg}", file=sys.stderr, flush=True)


def run(*cmd, env=None, check=True, timeout=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise Broken(f"{' '.join(map(str, cmd))[:200]}: exit {p.returncode}: {(p.stderr or p.stdout).strip()[-800:]}")
    return p.stdout


def md5_file(path):
    return run("md5sum", path).split()[0]


def request(method, url, headers=None, body=None, conn=None, timeout=900):
    """One HTTP request; returns (status, headers dict with lower-case names, body).
    With `conn` (an http.client connection to the same host) the connection is reused;
    when the server had closed it meanwhile (its idle keep-alive limit,
    http.header_read_timeout_secs), the request is sent once more on a new connection,
    as browsers and HTTP libraries do for a request that got no answer at all
    (RFC 9112, 9.3.1)."""
    u = urllib.parse.urlsplit(url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    reused = not own and conn.sock is not None
    try:
        try:
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            if not reused:
                raise
            conn.close()
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
        data = resp.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        raise
    finally:
        if own:
            conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def form(fields):
    return urllib.parse.urlencode(fields).encode()


def small_body(name, data):
    """A single-request upload's multipart body (md5, filename, file) and its type."""
    boundary = "ferrybench" + hashlib.md5(name.encode()).hexdigest()[:12]
    md5 = hashlib.md5(data).hexdigest()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"md5\"\r\n\r\n{md5}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def free_port():
    """A free loopback port below the ephemeral range (as the harness picks them)."""
    import random
    import socket
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise Broken("no free port")


def last_segment(url):
    return urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


# --- process accounting ------------------------------------------------------------------

CLK = os.sysconf("SC_CLK_TCK")


def proc_table():
    """pid -> (ppid, own + reaped children's CPU seconds)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): ppid is 4, utime..cstime are 14..17
        table[int(name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK)
    return table


def tree_cpu(table, children, root):
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid][1]
            stack.extend(children.get(pid, ()))
    return total


def system_cpu():
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) / CLK, idle / CLK


class CpuMeter:
    """CPU seconds used by named process trees (a tree's exited, reaped descendants are
    in its ancestors' child times) and the whole machine, between start() and stop()."""

    def __init__(self, groups):
        self.groups = groups  # name -> callable returning root pids

    def _snap(self):
        table = proc_table()
        children = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        snap = {}
        for name, roots in self.groups.items():
            snap[name] = sum(tree_cpu(table, children, pid) for pid in roots())
        snap["_self_children"] = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap["_system"] = system_cpu()
        snap["_t"] = time.perf_counter()
        return snap

    def start(self):
        self.t0 = self._snap()

    def stop(self):
        t1 = self._snap()
        out = {name: round(t1[name] - self.t0[name], 2) for name in self.groups}
        a, b = self.t0["_self_children"], t1["_self_children"]
        out["bench client"] = round(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime, 2)
        total = t1["_system"][0] - self.t0["_system"][0]
        idle = t1["_system"][1] - self.t0["_system"][1]
        out["_busy_cores"] = round((total - idle) / max(t1["_t"] - self.t0["_t"], 1e-6), 2)
        out["_seconds"] = round(t1["_t"] - self.t0["_t"], 2)
        return out


def pidfile(path):
    try:
        with open(path) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, 0)
        return [pid]
    except (OSError, ValueError, IndexError):
        return []


def peak_rss_reset(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise Broken(f"no {key} for pid {pid}")


# --- results -----------------------------------------------------------------------------


class Results:
    """Named series of per-run values, saved as JSON for report.py."""

    def __init__(self, path, meta):
        self.path = path
        self.data = {"meta": meta, "series": {}, "cpu": {}, "notes": {}, "errors": []}

    def add(self, key, value):
        self.data["series"].setdefault(key, []).append(value)
        self.save()

    def cpu(self, key, value):
        self.data["cpu"].setdefault(key, []).append(value)
        self.save()

    def note(self, key, value):
        self.data["notes"][key] = value
        self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)


# --- the bench ---------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.state = args.state
        ports = {}
        with open(os.path.join(self.state, "ports.env")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    ports[k] = int(v)
        self.ports = ports
        self.api = f"http://127.0.0.1:{ports['API_PORT']}"
        self.pg = ["psql", "-X", "-Atq", "-h", "127.0.0.1", "-p", str(ports["PG_PORT"]), "-U", "ferry", "ferry"]
        # The dev PostgreSQL asks for the password (scram-sha-256); deploy/dev up made it.
        with open(os.path.join(self.state, "secrets", "postgres_password")) as f:
            self.pg_env = {**os.environ, "PGPASSWORD": f.read().strip()}
        self.peers = args.peers
        self.client_py = os.path.join(self.peers, "client", "upload.py")
        self.scratch = args.scratch
        self.size = args.size_mib * MIB
        self.runs = args.runs
        self.src = os.path.join(self.scratch, "src.bin")
        self.run_dir = os.path.join(self.state, "run")
        self.results = Results(args.json, self.meta())
        self.psql, self.sql_lock = None, threading.Lock()
        self.peers_started = []
        groups = {
            "ferry-api": lambda: pidfile(os.path.join(self.run_dir, "api.pid")),
            "ferry-worker x2": lambda: pidfile(os.path.join(self.run_dir, "worker1.pid"))
            + pidfile(os.path.join(self.run_dir, "worker2.pid")),
            "node agents": lambda: sum((pidfile(os.path.join(self.run_dir, f"node{i}.pid")) for i in (1, 2, 3)), []),
            "node sshd (rsync --server)": lambda: sum(
                (pidfile(os.path.join(self.run_dir, f"sshd-node{i}.pid")) for i in (1, 2, 3)), []),
            "postgres": lambda: pidfile(os.path.join(self.run_dir, "postgres.pid")),
            "rabbitmq": lambda: pidfile(os.path.join(self.run_dir, "rabbitmq.pid")),
            "monitor": lambda: pidfile(os.path.join(self.run_dir, "monitor.pid")),
            "drf (gunicorn)": lambda: pidfile("/tmp/peers-drf/gunicorn.pid"),
            "tus (node)": lambda: pidfile("/tmp/peers-tus/tus.pid"),
            "nginx": lambda: pidfile("/tmp/peers-nginx/nginx.pid"),
        }
        self.meter = CpuMeter(groups)

    def meta(self):
        a = self.args
        return {"size_mib": a.size_mib, "runs": a.runs, "wrk_seconds": a.wrk_seconds, "small_files": a.small_files, "rtt_ms": a.rtt_ms,
                "chunk_mib": CHUNK_MIB, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "python": platform.python_version()}

    # --- Ferry API helpers --------------------------------------------------------------

    def login(self):
        status, _, body = request("POST", f"{self.api}/api-token-auth/",
                                  {"Content-Type": "application/x-www-form-urlencoded"},
                                  form({"username": "admin", "password": "adminadmin"}))
        if status != 200:
            raise Broken(f"login: HTTP {status}: {body[:300]!r}")
        self.token = json.loads(body)["token"]
        self.auth = {"Authorization": f"JWT {self.token}"}
        self.auth_header = f"Authorization: JWT {self.token}"

    def nodes(self):
        status, _, body = request("GET", f"{self.api}/admin/api/nodes", self.auth)
        if status != 200:
            raise Broken(f"GET /admin/api/nodes: HTTP {status}")
        return json.loads(body)

    def sql(self, query):
        """One-row query on one long-lived psql (a psql per poll would cost more CPU than
        the polling is worth while the cluster is being measured)."""
        with self.sql_lock:
            if self.psql is None or self.psql.poll() is not None:
                self.psql = subprocess.Popen([*self.pg, "-v", "ON_ERROR_STOP=1"], env=self.pg_env, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
            self.psql.stdin.write(query.rstrip(";") + ";\n")
            self.psql.stdin.flush()
            line = self.psql.stdout.readline()
            if not line:
                err = self.psql.stderr.read()
                self.psql = None
                raise Broken(f"psql: {err.strip()[-500:]}")
            return line.strip()

    def replica_states(self, file_id, conn=None):
        status, _, body = request("GET", f"{self.api}/admin/api/files/{file_id}", self.auth, conn=conn)
        if status != 200:
            raise Broken(f"GET /admin/api/files/{file_id}: HTTP {status}: {body[:300]!r}")
        return [r["state"] for r in json.loads(body)["replicas"]]

    def wait_durable(self, file_id, timeout=900, poll=0.01):
        """Returns the perf_counter time at which 2 replicas were seen present (what
        `GET /admin/api/files/<id>` reports, read straight from PostgreSQL: cheaper for
        the cluster being measured than 100 API requests a second)."""
        if not re.fullmatch(r"[0-9a-f-]{36}", file_id):
            raise Broken(f"not a file id: {file_id!r}")
        query = (f"SELECT count(*) FILTER (WHERE state = 'present') || '|' || count(*) FILTER (WHERE state = 'failed') "
                 f"FROM replicas WHERE file_id = '{file_id}'")
        deadline = time.time() + timeout
        while time.time() < deadline:
            present, failed = (int(x) for x in self.sql(query).split("|"))
            if present >= 2:
                return time.perf_counter()
            if failed:
                states = self.replica_states(file_id)
                raise Broken(f"file {file_id}: a replica failed: {states}")
            time.sleep(poll)
        raise Broken(f"file {file_id}: not on 2 nodes after {timeout} s")

    def quiesce(self, timeout=900):
        """Wait until no job is queued or running: nothing to assemble, copy or delete,
        and the outbox is empty (so the next measurement runs alone)."""
        deadline = time.time() + timeout
        query = ("SELECT (SELECT count(*) FROM replicas WHERE state IN ('pending','copying','deleting'))"
                 " + (SELECT count(*) FROM uploads WHERE status = 'assembling')"
                 " + (SELECT count(*) FROM outbox)")
        while time.time() < deadline:
            if self.sql(query) == "0":
                return
            time.sleep(0.1)
        raise Broken(f"the cluster did not go idle within {timeout} s: {self.sql(query)} jobs left")

    def delete(self, file_id):
        status, _, body = request("DELETE", f"{self.api}/storage/files/{file_id}/", self.auth)
        if status not in (200, 202, 204):
            raise Broken(f"DELETE file {file_id}: HTTP {status}: {body[:300]!r}")

    def replica_paths(self, file_id):
        # <root>/<first two hex digits of the id>/<id> (docs/ARCHITECTURE.md)
        states = json.loads(request("GET", f"{self.api}/admin/api/files/{file_id}", self.auth)[2])["replicas"]
        by_id = {n["id"]: n for n in self.nodes()}
        return [os.path.join(by_id[r["node"]]["root_path"], file_id[:2], file_id)
                for r in states if r["state"] == "present"]

    def check_replicas(self, file_id, md5):
        paths = self.replica_paths(file_id)
        if len(paths) < 2:
            raise Broken(f"file {file_id}: {len(paths)} present replicas")
        for path in paths:
            got = md5_file(path)
            if got != md5:
                raise Broken(f"STORED COPY MD5 MISMATCH: {path}: {got}, expected {md5}")

    def worker_pids(self):
        return pidfile(os.path.join(self.run_dir, "worker1.pid")) + pidfile(os.path.join(self.run_dir, "worker2.pid"))

    def client(self, *args):
        p = subprocess.run([sys.executable, self.client_py, *map(str, args)], capture_output=True, text=True)
        if p.returncode != 0:
            raise Broken(f"upload.py {args[0]} {args[1]}: {p.stderr.strip()[-800:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    # --- setup ------------------------------------------------------------------------

    def prepare(self):
        self.login()
        deadline = time.time() + 120
        while not all(n["up"] for n in self.nodes()):
            if time.time() > deadline:
                raise Broken(f"nodes not up after 120 s: {self.nodes()}")
            time.sleep(0.5)
        log(f"generating {self.args.size_mib} MiB of random data")
        with open("/dev/urandom", "rb") as r, open(self.src, "wb") as w:
            for _ in range(self.args.size_mib):
                w.write(r.read(MIB))
        self.md5 = md5_file(self.src)
        # Untimed warm-up copy, as the peers' bench does: the first touch of fresh guest
        # memory on this VM is slow and would land on whatever runs first.
        shutil.copyfile(self.src, self.src + ".warm")
        os.remove(self.src + ".warm")
        run("sync")
        # Warm-up upload: the monitor has probed the nodes, placement finds them, the
        # workers' SSH control connections exist.
        small = os.path.join(self.scratch, "warm.bin")
        with open(small, "wb") as f:
            f.write(os.urandom(MIB))
        for _ in range(2):
            res = self.client("raw-put", f"{self.api}/storage/tmp-upload/?filename=warm.bin", small,
                              "-H", self.auth_header, "--finish-md5")
            self.wait_durable(last_segment(res["location"]), timeout=120)
        self.quiesce()

    def start_peer(self, name, *args):
        log(f"starting the {name} peer")
        p = subprocess.run([os.path.join(self.peers, name, "start.sh"), *map(str, args)],
                           stdout=sys.stderr, stderr=sys.stderr)
        if p.returncode != 0:
            raise Broken(f"{name}/start.sh failed")
        self.peers_started.append(name)

    def stop_peer(self, name):
        subprocess.run([os.path.join(self.peers, name, "stop.sh")], stdout=subprocess.DEVNULL, stderr=sys.stderr)
        if name in self.peers_started:
            self.peers_started.remove(name)

    # --- 1. ingest ----------------------------------------------------------------------

    def timed_sync(self):
        t = time.perf_counter()
        run("sync")
        return time.perf_counter() - t

    def peer_upload(self, key, mode, url, stored_dir):
        run("sync")
        self.meter.start()
        res = self.client(mode, url, self.src, "--chunk-mib", CHUNK_MIB)
        cpu = self.meter.stop()
        file_id = last_segment(res["location"])
        sync_after = self.timed_sync()
        stored = None
        for root, _, files in os.walk(stored_dir):
            for name in files:
                if name in (file_id, file_id + ".done"):
                    stored = os.path.join(root, name)
        if stored is None:
            raise Broken(f"{key}: stored file for {file_id} not found under {stored_dir}")
        got = md5_file(stored)
        if got != self.md5:
            raise Broken(f"{key}: STORED COPY MD5 MISMATCH: {stored}: {got}, expected {self.md5}")
        os.remove(stored)
        self.results.add(key, res["mib_per_s"])
        server = {"tus": "tus (node)", "drf": "drf (gunicorn)"}[mode]
        self.results.add(key + ".cpu_per_gib", round(cpu.get(server, 0) * 1024 / self.args.size_mib, 2))
        self.results.add(key + ".sync_after_s", round(sync_after, 3))
        if "finish_seconds" in res:
            self.results.add(key + ".finish_s", res["finish_seconds"])
        self.results.cpu(key, cpu)
        log(f"{key}: {res['mib_per_s']} MiB/s ({res['seconds']} s), sync after {sync_after:.2f} s, stored md5 ok")

    def ferry_upload(self, key, mode, run_no, md5_given=False):
        self.quiesce()
        run("sync")
        url = f"{self.api}/storage/tmp-upload/"
        if mode == "drf":
            args = ["drf", url, self.src, "-H", self.auth_header]
        elif mode == "tus":
            # The peers' own tus client, as against @tus/server, at Ferry's tus endpoint.
            args = ["tus", f"{self.api}/files/", self.src, "-H", self.auth_header]
        else:
            args = ["raw-put", f"{url}?filename=ingest-{run_no}.bin", self.src, "-H", self.auth_header, "--finish-md5"]
        if md5_given:
            args += ["--md5", self.md5]
        self.meter.start()
        res = self.client(*args, "--chunk-mib", CHUNK_MIB)
        cpu = self.meter.stop()
        file_id = last_segment(res["location"])
        self.results.add(key, res["mib_per_s"])
        self.results.add(key + ".cpu_per_gib", round(cpu.get("ferry-api", 0) * 1024 / self.args.size_mib, 2))
        self.results.add(key + ".finish_s", res.get("finish_seconds"))
        self.results.cpu(key, cpu)
        log(f"{key}: {res['mib_per_s']} MiB/s ({res['seconds']} s; completing POST {res.get('finish_seconds')} s)")
        self.wait_durable(file_id)
        if run_no == 1 and mode == "drf":
            self.check_replicas(file_id, self.md5)
        self.delete(file_id)
        self.quiesce()

    def section_ingest(self, drf_port, tus_port):
        for r in range(1, self.runs + 1):
            log(f"1. ingest, run {r}/{self.runs}")
            run("sync")
            copy = os.path.join(self.scratch, "copy.bin")
            t = time.perf_counter()
            shutil.copyfile(self.src, copy)
            cp_s = time.perf_counter() - t
            run("sync")
            total = time.perf_counter() - t
            os.remove(copy)
            self.results.add("ingest.cp_sync", round(self.args.size_mib / total, 1))
            self.results.add("ingest.cp_alone_s", round(cp_s, 3))
            log(f"cp + sync: {self.args.size_mib / total:.1f} MiB/s (cp alone {cp_s:.2f} s)")
            self.peer_upload("ingest.drf", "drf", f"http://127.0.0.1:{drf_port}/storage/tmp-upload/",
                             os.path.join(self.scratch, "drf"))
            self.peer_upload("ingest.tus", "tus", f"http://127.0.0.1:{tus_port}/files/",
                             os.path.join(self.scratch, "tus"))
            self.ferry_upload("ingest.ferry_multipart", "drf", r)
            self.ferry_upload("ingest.ferry_raw", "raw", r)
            self.ferry_upload("ingest.ferry_raw_md5given", "raw", r, md5_given=True)
            self.ferry_upload("ingest.ferry_tus", "tus", r)

    # --- 2. completion to durable ---------------------------------------------------------

    def ssh_cmd(self, port):
        d = os.path.join(self.state, "ssh")
        return (f"ssh -F /dev/null -p {port} -i {d}/ops_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes "
                f"-o UserKnownHostsFile={d}/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes")

    def section_durable(self):
        """Returns the id of the last file, kept for the download sections."""
        nodes = {n["name"]: n for n in self.nodes()}
        targets = [nodes["node1"], nodes["node2"]]
        user = run("id", "-un").strip()
        kept = None
        for r in range(1, self.runs + 1):
            log(f"2. completion to durable, run {r}/{self.runs}")
            if kept:
                self.delete(kept)
            self.quiesce()
            run("sync")
            res = self.client("raw-put", f"{self.api}/storage/tmp-upload/?filename=durable-{r}.bin", self.src,
                              "-H", self.auth_header, "--chunk-mib", CHUNK_MIB)
            upload_url, file_id = res["location"], last_segment(res["location"])
            workers = self.worker_pids()
            for pid in workers:
                peak_rss_reset(pid)
            self.meter.start()
            t0 = time.perf_counter()
            status, _, body = request("POST", upload_url, {**self.auth, "Content-Type":
                                                           "application/x-www-form-urlencoded"}, form({"md5": self.md5}))
            posted = time.perf_counter()
            if status != 200:
                raise Broken(f"completing POST: HTTP {status}: {body[:300]!r}")
            # Read-after-write: the 200 means a download redirects right away, to bytes
            # that match (the first MiB is compared; the whole file is checked on the nodes).
            status, headers, body = request("GET", f"{self.api}/storage/download/{file_id}/", self.auth)
            if status != 302:
                raise Broken(f"download right after the completing POST's 200: HTTP {status}: {body[:300]!r}")
            status, _, body = request("GET", headers["location"], {"Range": "bytes=0-1048575"})
            with open(self.src, "rb") as f:
                if status != 206 or body != f.read(1 << 20):
                    raise Broken(f"the first MiB right after the completing POST's 200: HTTP {status}")
            done = self.wait_durable(file_id)
            cpu = self.meter.stop()
            peak = max(proc_status_kib(pid, "VmHWM") for pid in workers) / 1024
            self.results.add("durable.ferry_s", round(done - t0, 3))
            self.results.add("durable.post_s", round(posted - t0, 3))
            self.results.add("memory.worker_1g_mib", round(peak, 1))
            self.results.cpu("durable.ferry_s", cpu)
            log(f"Ferry: completing POST {posted - t0:.2f} s, durable on 2 nodes after {done - t0:.2f} s; "
                f"worker peak RSS {peak:.1f} MiB")
            self.check_replicas(file_id, self.md5)
            kept = file_id

            # The original's Celery task, as a shell pipeline: md5sum, then rsync -e ssh to
            # each node in turn (a fresh ssh each, the default cipher).
            dests = [os.path.join(n["root_path"], "bench-baseline.bin") for n in targets]
            for d in dests:
                if os.path.exists(d):
                    os.remove(d)
            run("sync")
            self.meter.start()
            t0 = time.perf_counter()
            got = md5_file(self.src)
            for n, d in zip(targets, dests):
                run("rsync", "-e", self.ssh_cmd(n["ssh_port"]), self.src, f"{user}@127.0.0.1:{d}")
            took = time.perf_counter() - t0
            cpu = self.meter.stop()
            if got != self.md5 or any(os.path.getsize(d) != self.size for d in dests):
                raise Broken("shell baseline: md5 or copied size differs")
            for d in dests:
                os.remove(d)
            self.results.add("durable.shell_s", round(took, 3))
            self.results.cpu("durable.shell_s", cpu)
            log(f"shell baseline: {took:.2f} s")
        return kept

    # --- 3. downloads -------------------------------------------------------------------

    def wrk(self, url, connections, seconds, headers=(), script=None, env=None):
        cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
        for h in headers:
            cmd += ["-H", h]
        if script:
            cmd += ["-s", script]
        out = run(*cmd, url, env={**os.environ, **(env or {})})
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

        def latency(p):
            m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            value, unit = float(m.group(1)), m.group(2)
            return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        if bad:
            raise Broken(f"wrk {url}: {bad.group(0)}")
        return {"rps": rps, "p50": latency(50), "p99": latency(99), "socket_errors": errors.group(1) if errors else ""}

    def check_range(self, url):
        start = MIB
        status, _, body = request("GET", url, {"Range": f"bytes={start}-{start + MIB - 1}"})
        with open(self.src, "rb") as f:
            f.seek(start)
            want = f.read(MIB)
        if status != 206 or body != want:
            raise Broken(f"Range GET {url}: HTTP {status}, {len(body)} bytes, {'same' if body == want else 'DIFFERENT'}")

    def curl_whole(self, url):
        out = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total} %{size_download}", url).split()
        if out[0] != "200" or int(out[2]) != self.size:
            raise Broken(f"GET {url}: HTTP {out[0]}, {out[2]} bytes")
        return self.size / MIB / float(out[1])

    def section_download(self, file_id, nginx_port):
        status, headers, body = request("GET", f"{self.api}/storage/download/{file_id}/", self.auth)
        if status != 302:
            raise Broken(f"GET /storage/download/{file_id}/: HTTP {status}: {body[:300]!r}")
        location = headers["location"]
        port = urllib.parse.urlsplit(location).port
        node = next(n for n in self.nodes() if urllib.parse.urlsplit(n["public_url"]).port == port)
        path = next(p for p in self.replica_paths(file_id) if p.startswith(node["root_path"].rstrip("/") + "/"))
        # nginx serves the very same file (same disk, same page cache); its workers run
        # unprivileged (rsync already gives node copies mode 644).
        os.chmod(path, 0o644)
        self.start_peer("nginx", nginx_port, os.path.dirname(path))
        nginx_url = f"http://127.0.0.1:{nginx_port}/{os.path.basename(path)}"
        self.check_range(location)
        self.check_range(nginx_url)
        got = run("bash", "-c", 'curl -sf "$1" | md5sum', "_", location).split()[0]
        if got != self.md5:
            raise Broken(f"whole download from the node agent: md5 {got}, expected {self.md5}")
        lua = os.path.join(self.peers, "nginx", "range.lua")
        env = {"FILE_SIZE": str(self.size)}
        seconds = self.args.wrk_seconds
        for r in range(1, self.runs + 1):
            log(f"3. download, run {r}/{self.runs}")
            for key, url in (("download.nginx_range", nginx_url), ("download.node_range", location)):
                self.meter.start()
                w = self.wrk(url, 32, seconds, script=lua, env=env)
                self.results.cpu(key, self.meter.stop())
                self.results.add(key, round(w["rps"], 1))  # 1 MiB per request: req/s = MiB/s
                self.results.add(key + ".p99_ms", round(w["p99"], 2))
                log(f"{key}: {w['rps']:.1f} MiB/s, p99 {w['p99']:.1f} ms {w['socket_errors']}")
            for key, url in (("download.nginx_whole", nginx_url), ("download.node_whole", location)):
                self.meter.start()
                rate = self.curl_whole(url)
                self.results.cpu(key, self.meter.stop())
                self.results.add(key, round(rate, 1))
                log(f"{key}: {rate:.1f} MiB/s")
            # The node agent skips the sha256 of a copy it verified unless the copy's
            # metadata changed (node.reverify_secs): a touch makes the next whole read
            # the hashed one, as the first read of a new or replaced copy is.
            os.utime(path)
            self.meter.start()
            rate = self.curl_whole(location)
            self.results.cpu("download.node_whole_first", self.meter.stop())
            self.results.add("download.node_whole_first", round(rate, 1))
            log(f"download.node_whole_first: {rate:.1f} MiB/s")
            # The upload client's own ceiling (the peers' bench measures it the same way):
            # raw-put into nginx's /sink, which discards the body: no server work, no disk.
            sink = f"http://127.0.0.1:{nginx_port}/sink"
            for key, extra in (("ingest.client_sink", []), ("ingest.client_sink_md5", ["--finish-md5"])):
                res = self.client("raw-put", sink, self.src, "--chunk-mib", CHUNK_MIB, *extra)
                self.results.add(key, res["mib_per_s"])
                log(f"{key}: {res['mib_per_s']} MiB/s")
        self.stop_peer("nginx")
        self.results.note("download.node", node["name"])

    # --- 4. redirects -------------------------------------------------------------------

    def section_redirect(self, file_id):
        url = f"{self.api}/storage/download/{file_id}/"
        self.wrk(url, 64, 2, headers=[self.auth_header])  # warm-up (connections, replica cache)
        for r in range(1, self.runs + 1):
            log(f"4. redirect, run {r}/{self.runs}")
            self.meter.start()
            w = self.wrk(url, 64, self.args.wrk_seconds, headers=[self.auth_header])
            self.results.cpu("redirect.rps", self.meter.stop())
            self.results.add("redirect.rps", round(w["rps"]))
            self.results.add("redirect.p50_ms", round(w["p50"], 3))
            self.results.add("redirect.p99_ms", round(w["p99"], 3))
            log(f"redirect: {w['rps']:.0f} req/s, p50 {w['p50']:.2f} ms, p99 {w['p99']:.2f} ms {w['socket_errors']}")

    # --- 5. memory ----------------------------------------------------------------------

    def section_memory(self):
        api_pid = pidfile(os.path.join(self.run_dir, "api.pid"))[0]
        chunk = 64 * MIB
        with open(self.src, "rb") as f:
            payload = f.read(chunk)
        if len(payload) < chunk:
            payload += os.urandom(chunk - len(payload))
        url = f"{self.api}/storage/tmp-upload/"
        clients = 32
        for r in range(1, self.runs + 1):
            log(f"5. memory: {clients} clients x one 64 MiB chunk, run {r}/{self.runs}")
            self.quiesce()
            run("sync")
            idle = proc_status_kib(api_pid, "VmRSS") / 1024
            peak_rss_reset(api_pid)
            barrier = threading.Barrier(clients)

            def put(i):
                barrier.wait()
                # First chunk of a 128 MiB upload: the API takes it whole and keeps the
                # upload open (these uploads expire with the cluster).
                return request("PUT", f"{url}?filename=mem-{r}-{i}.bin",
                               {**self.auth, "Content-Type": "application/octet-stream",
                                "Content-Range": f"bytes 0-{chunk - 1}/{2 * chunk}"}, payload)

            self.meter.start()
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(put, range(clients)))
            took = time.perf_counter() - t
            cpu = self.meter.stop()
            bad = [(s, b[:200]) for s, _, b in answers if s not in (200, 201)]
            if bad:
                raise Broken(f"concurrent 64 MiB chunks: {len(bad)} failed: {bad[:3]}")
            peak = proc_status_kib(api_pid, "VmHWM") / 1024
            self.results.add("memory.api_peak_mib", round(peak, 1))
            self.results.add("memory.api_idle_mib", round(idle, 1))
            self.results.add("memory.api_concurrent_mib_s", round(clients * 64 / took, 1))
            self.results.cpu("memory.api_peak_mib", cpu)
            log(f"ferry-api peak RSS {peak:.1f} MiB (before: {idle:.1f} MiB); {clients * 64} MiB in {took:.1f} s")
            for s, _, b in answers:
                directory = os.path.join(self.state, "staging", json.loads(b)["id"])
                shutil.rmtree(directory, ignore_errors=True)  # 2 GiB a run; the uploads stay open

        small = os.path.join(self.scratch, "w64.bin")
        with open(small, "wb") as f:
            f.write(payload)
        small_md5 = hashlib.md5(payload).hexdigest()
        for r in range(1, self.runs + 1):
            log(f"5. memory: worker assembling a 64 MiB file, run {r}/{self.runs}")
            self.quiesce()
            res = self.client("raw-put", f"{url}?filename=w64-{r}.bin", small, "-H", self.auth_header)
            workers = self.worker_pids()
            for pid in workers:
                peak_rss_reset(pid)
            status, _, body = request("POST", res["location"], {**self.auth, "Content-Type":
                                                                "application/x-www-form-urlencoded"},
                                      form({"md5": small_md5}))
            if status != 200:
                raise Broken(f"completing POST: HTTP {status}: {body[:300]!r}")
            file_id = last_segment(res["location"])
            self.wait_durable(file_id)
            peak = max(proc_status_kib(pid, "VmHWM") for pid in workers) / 1024
            self.results.add("memory.worker_64m_mib", round(peak, 1))
            log(f"worker peak RSS {peak:.1f} MiB")
            self.delete(file_id)
        self.quiesce()

    # --- 6. many small files --------------------------------------------------------------

    def dev(self, *args):
        p = subprocess.run([os.path.join(self.args.deploy, "dev"), *args], capture_output=True, text=True)
        if p.returncode != 0:
            raise Broken(f"deploy/dev {' '.join(args)}: {(p.stderr + p.stdout).strip()[-1500:]}")

    def stop_worker2(self):
        pids = pidfile(os.path.join(self.run_dir, "worker2.pid"))
        if not pids:
            return
        os.kill(pids[0], signal.SIGTERM)
        deadline = time.time() + 40
        while time.time() < deadline:
            try:
                with open(f"/proc/{pids[0]}/status") as f:
                    if re.search(r"^State:\s+Z", f.read(), re.M):
                        break
            except OSError:
                break
            time.sleep(0.1)
        else:
            raise Broken("worker2 did not stop within 40 s of SIGTERM")

    def small_files(self, tag, workers, key=None):
        n = self.args.small_files
        data = os.urandom(64 * 1024)
        local = threading.local()
        ids = []

        def one(i):
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", self.ports["API_PORT"], timeout=120)
            body, ctype = small_body(f"small-{tag}-{i}.bin", data)
            # ?wait=0: the answer comes once the bytes and their md5 are recorded (202),
            # so 16 threads measure the pipeline's throughput, not 16 / the write-quorum
            # wait (section 7 measures that wait).
            status, _, answer = request("POST", f"{self.api}/storage/tmp-upload/?wait=0",
                                        {**self.auth, "Content-Type": ctype}, body, conn=local.conn)
            if status not in (200, 202):
                raise Broken(f"small file {i}: HTTP {status}: {answer[:300]!r}")
            ids.append(json.loads(answer)["id"])
            return time.perf_counter()

        self.quiesce()
        self.meter.start()
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            uploaded = max(pool.map(one, range(n)))
        # By the ids the uploads answered with: an index lookup per file. (A match on
        # the names scanned every file ever uploaded, 20 ms of PostgreSQL's CPU per
        # poll at 20,000 files, taken from the system being measured.)
        query = (f"SELECT count(*) FILTER (WHERE r.state = 'present') || '|' || "
                 f"count(*) FILTER (WHERE r.state = 'failed') FROM replicas r "
                 f"WHERE r.file_id = ANY('{{{','.join(ids)}}}'::uuid[])")
        deadline = time.time() + 1800
        while True:
            present, failed = (int(x) for x in self.sql(query).split("|"))
            if present >= 2 * n:
                break
            if failed:
                raise Broken(f"small files {tag}: {failed} replicas failed")
            if time.time() > deadline:
                raise Broken(f"small files {tag}: {present} of {2 * n} replicas present after 30 min")
            time.sleep(0.1)
        took = time.perf_counter() - t0
        cpu = self.meter.stop()
        key = key or f"small.w{workers}"
        self.results.add(key, round(n / took, 2))
        self.results.add(key + ".upload_s", round(uploaded - t0, 2))
        self.results.cpu(key, cpu)
        log(f"{key}: {n} small files with {workers} worker(s): {n / took:.1f} files/s "
            f"(all uploaded + verified after {uploaded - t0:.1f} s, on 2 nodes after {took:.1f} s)")

    def section_small(self):
        for r in range(1, self.runs + 1):
            log(f"6. many small files, run {r}/{self.runs}")
            self.small_files(f"{r}w2", 2)
            self.stop_worker2()
            try:
                self.small_files(f"{r}w1", 1)
            finally:
                self.dev("up", "--no-build")  # starts worker2 again, leaves the rest alone
            time.sleep(1)

    # --- 7. read-after-write under a burst ---------------------------------------------

    def section_burst(self):
        """1,000 x 64 KiB single-request uploads from 16 client threads, each followed at
        once by a download through the redirect: every answer must be a 302 to the same
        bytes (read-after-write); reports the completing POST's latency."""
        n = self.args.small_files
        for r in range(1, self.runs + 1):
            log(f"7. burst with read-after-write, run {r}/{self.runs}")
            self.quiesce()
            local = threading.local()

            def one(i, r=r):
                if not hasattr(local, "conn"):
                    local.conn = http.client.HTTPConnection("127.0.0.1", self.ports["API_PORT"], timeout=120)
                data = os.urandom(64 * 1024)
                body, ctype = small_body(f"burst-{r}-{i}.bin", data)
                t0 = time.perf_counter()
                status, _, answer = request("POST", f"{self.api}/storage/tmp-upload/",
                                            {**self.auth, "Content-Type": ctype}, body, conn=local.conn)
                took = time.perf_counter() - t0
                if status != 200:
                    return took, f"POST {status}", False, False
                file_id = json.loads(answer)["id"]
                status, headers, _ = request("GET", f"{self.api}/storage/download/{file_id}/", self.auth,
                                             conn=local.conn)
                if status != 302:
                    return took, f"download {status}", False, False
                location = headers["location"]
                staged = location.startswith(f"{self.api}/staging/")
                status, headers, got = request("GET", location)
                if status == 302 and staged:
                    # The staging copy was released meanwhile: its link moves on to a node.
                    status, _, got = request("GET", headers["location"])
                return took, None if status == 200 else f"copy {status}", got == data, staged

            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                results = list(pool.map(one, range(n)))
            took = time.perf_counter() - t0
            latencies = sorted(t for t, _, _, _ in results)
            errors = [e for _, e, _, _ in results if e]
            mismatches = sum(1 for _, e, same, _ in results if not e and not same)
            self.results.add("burst.from_staging", sum(1 for *_, staged in results if staged))
            self.results.add("burst.non302", len(errors))
            self.results.add("burst.mismatch", mismatches)
            self.results.add("burst.post_p50_ms", round(1000 * percentile(latencies, 50), 1))
            self.results.add("burst.post_p99_ms", round(1000 * percentile(latencies, 99), 1))
            self.results.add("burst.files_per_s", round(n / took, 1))
            log(f"burst: {n} files in {took:.1f} s, {len(errors)} non-302 ({sorted(set(errors))[:5]}), "
                f"{mismatches} byte mismatches, POST p50 {percentile(latencies, 50) * 1000:.0f} ms "
                f"p99 {percentile(latencies, 99) * 1000:.0f} ms")
            if mismatches:
                raise Broken(f"burst: {mismatches} downloads differ from their upload")

    # --- 8. scale-out with remote nodes (added RTT) ---------------------------------------

    def section_rtt(self):
        """Small files with the nodes' ssh and agent ports behind a delay proxy (the
        machine's kernel has no netem): replication becomes latency-bound as with remote
        nodes, and files/s should grow with worker processes (1, 2, 4)."""
        rtt = self.args.rtt_ms
        nodes = self.nodes()
        state_ssh = os.path.join(self.state, "ssh")
        known_hosts = os.path.join(state_ssh, "known_hosts")
        with open(known_hosts) as f:
            pinned = f.read()
        pairs, moved = [], []
        for node in nodes:
            ssh_proxy, agent_proxy = free_port(), free_port()
            agent_port = urllib.parse.urlsplit(node["public_url"]).port
            pairs += [f"{ssh_proxy}:{node['ssh_port']}", f"{agent_proxy}:{agent_port}"]
            moved.append((node, ssh_proxy, agent_proxy))
        proxy = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "delayproxy.py"),
                                  "--delay-ms", str(rtt / 2), *pairs], stdout=subprocess.PIPE, text=True)
        extra_workers = []
        try:
            if proxy.stdout.readline().strip() != "ready":
                raise Broken("delayproxy.py did not start")
            # The proxy ports present the nodes' own host keys: pin them under the new ports.
            lines = []
            for node, ssh_proxy, _ in moved:
                for line in pinned.splitlines():
                    host, _, key = line.partition(" ")
                    if host in (f"[127.0.0.1]:{node['ssh_port']}", f"[{node['ssh_host']}]:{node['ssh_port']}"):
                        lines.append(f"[127.0.0.1]:{ssh_proxy} {key}")

            def pin_proxy_ports():
                # Also after every `deploy/dev up`, which writes known_hosts anew.
                with open(known_hosts, "w") as f:
                    f.write(pinned.rstrip("\n") + "\n" + "\n".join(lines) + "\n")

            pin_proxy_ports()
            for node, ssh_proxy, agent_proxy in moved:
                self.patch_node(node["id"], {"ssh_host": "127.0.0.1", "ssh_port": ssh_proxy,
                                             "public_url": f"http://127.0.0.1:{agent_proxy}"})
            time.sleep(3)  # the monitor's next probe goes through the proxy
            for r in range(1, self.runs + 1):
                log(f"8. small files at {rtt} ms RTT to the nodes, run {r}/{self.runs}")
                self.small_files(f"{r}rtt2", 2, key=f"rtt.w2")
                extra_workers = [self.spawn_worker_like_worker1() for _ in range(2)]
                self.small_files(f"{r}rtt4", 4, key=f"rtt.w4")
                for proc in extra_workers:
                    proc.terminate()
                for proc in extra_workers:
                    proc.wait(timeout=40)
                extra_workers = []
                self.stop_worker2()
                try:
                    self.small_files(f"{r}rtt1", 1, key=f"rtt.w1")
                finally:
                    self.dev("up", "--no-build")
                    pin_proxy_ports()
        finally:
            for proc in extra_workers:
                proc.kill()
            for node, _, _ in moved:
                self.patch_node(node["id"], {"ssh_host": node["ssh_host"], "ssh_port": node["ssh_port"],
                                             "public_url": node["public_url"]})
            with open(known_hosts, "w") as f:
                f.write(pinned)
            proxy.terminate()
            proxy.wait(timeout=10)

    def patch_node(self, node_id, fields):
        status, _, body = request("PATCH", f"{self.api}/admin/api/nodes/{node_id}",
                                  {**self.auth, "Content-Type": "application/json"}, json.dumps(fields).encode())
        if status != 200:
            raise Broken(f"PATCH node {node_id}: HTTP {status}: {body[:300]!r}")

    def spawn_worker_like_worker1(self):
        """One more ferry-worker with worker1's command line and environment (whatever
        started worker1), logging next to the scratch dir; the caller stops it."""
        pids = pidfile(os.path.join(self.run_dir, "worker1.pid"))
        if not pids:
            raise Broken("worker1 is not running")
        with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        with open(f"/proc/{pids[0]}/environ", "rb") as f:
            env = dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)
        log_file = open(os.path.join(self.scratch, f"extra-worker-{time.monotonic_ns()}.log"), "w")
        return subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT)

    # --- 9. what durability costs on this disk ------------------------------------------

    def section_fsync(self):
        """What a replica's durability adds, on the nodes' filesystem: rsync's receiver
        writes a temp name, fsyncs it (--fsync) and renames it; the worker then syncs
        the batch's shard directories. Timed here without rsync around it: 200 x 64 KiB
        files written as rsync writes them, without and with those fsyncs (one
        directory fsync per 16 files, a batch), and one 64 MiB file."""
        node_root = self.nodes()[0]["root_path"]
        data = os.urandom(64 * 1024)
        big = os.urandom(1 << 20)

        def write(dirpath, name, payload, repeat, durable):
            tmp = os.path.join(dirpath, f".{name}.tmp")
            with open(tmp, "wb") as f:
                for _ in range(repeat):
                    f.write(payload)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.rename(tmp, os.path.join(dirpath, name))

        def dir_fsync(dirpath):
            fd = os.open(dirpath, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        for r in range(1, self.runs + 1):
            log(f"9. what the fsyncs cost, run {r}/{self.runs}")
            for durable in (False, True):
                d = os.path.join(node_root, f"bench-fsync-{r}-{int(durable)}")
                os.makedirs(d)
                run("sync")
                t0 = time.perf_counter()
                for i in range(200):
                    write(d, f"f{i}", data, 1, durable)
                    if durable and i % 16 == 15:
                        dir_fsync(d)
                if durable:
                    dir_fsync(d)
                small = (time.perf_counter() - t0) / 200 * 1000
                run("sync")
                t0 = time.perf_counter()
                write(d, "big", big, 64, durable)
                if durable:
                    dir_fsync(d)
                whole = time.perf_counter() - t0
                key = "fsync.durable" if durable else "fsync.plain"
                self.results.add(f"{key}_ms_per_small", round(small, 3))
                self.results.add(f"{key}_64m_s", round(whole, 3))
                shutil.rmtree(d)
            log(f"fsync: 64 KiB file {self.results.data['series']['fsync.plain_ms_per_small'][-1]} ms plain, "
                f"{self.results.data['series']['fsync.durable_ms_per_small'][-1]} ms durable")

    # --- main -------------------------------------------------------------------------

    def main(self):
        a = self.args
        drf_port, tus_port, nginx_port = a.drf_port, a.tus_port, a.nginx_port
        self.prepare()
        self.results.note("src_md5", self.md5)
        try:
            self.start_peer("drf", drf_port, os.path.join(self.scratch, "drf"))
            self.start_peer("tus", tus_port, os.path.join(self.scratch, "tus"))
            self.section_ingest(drf_port, tus_port)
        finally:
            self.stop_peer("drf")
            self.stop_peer("tus")
        kept = self.section_durable()
        try:
            self.section_download(kept, nginx_port)
        finally:
            self.stop_peer("nginx")
        self.section_redirect(kept)
        self.section_memory()
        self.section_small()
        self.section_burst()
        if self.args.rtt_ms:
            self.section_rtt()
        self.section_fsync()
        with open("/proc/loadavg") as f:
            self.results.data["meta"]["load_end"] = " ".join(f.read().split()[:3])
        self.results.save()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True, help="the cluster's state dir (deploy/dev FERRY_DEV_STATE)")
    ap.add_argument("--deploy", required=True, help="the repository's deploy/ dir")
    ap.add_argument("--peers", required=True, help="../shared/peers")
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--json", required=True, help="raw results go here")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--small-files", type=int, default=1000)
    ap.add_argument("--rtt-ms", type=float, default=20, help="added RTT to the nodes in section 8 (0: skip it)")
    ap.add_argument("--drf-port", type=int, default=18081)
    ap.add_argument("--tus-port", type=int, default=18082)
    ap.add_argument("--nginx-port", type=int, default=18083)
    args = ap.parse_args()
    if args.size_mib < 16 or args.runs < 1:
        ap.error("need --size-mib >= 16 and --runs >= 1")
    bench = Bench(args)
    try:
        bench.main()
    except Broken as e:
        log(f"BROKEN: {e}")
        bench.results.data["errors"].append(str(e))
        bench.results.save()
        return 1
    finally:
        for name in list(bench.peers_started):
            bench.stop_peer(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
