#!/usr/bin/env python3
"""Turns the raw results of measure.py (JSON) into the markdown table (stdout) and,
with --out, docs/PERFORMANCE.md. Standard library only; can be re-run on a saved JSON:

    deploy/bench/report.py /tmp/ferry-bench-results.json [--out docs/PERFORMANCE.md]

Every figure is the median of the runs, with min and max. A ratio row pairs the runs
of two series by index (run i of one with run i of the other: they ran back to back),
so its median, min and max are of the per-run ratios.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


class Report:
    def __init__(self, data):
        self.data = data
        self.series = data["series"]
        self.meta = data["meta"]
        self.rows = []
        self.verdicts = []  # (section, what, met)

    def values(self, key):
        return [v for v in self.series.get(key, []) if v is not None]

    def med(self, key):
        v = self.values(key)
        return statistics.median(v) if v else None

    def section(self, title):
        self.rows.append(f"| **{title}** | | | | | | |")
        self.current = title

    def row(self, what, values, unit, target="", check=None):
        """check: a function of the median returning True/False; None: no target."""
        if not values:
            self.rows.append(f"| {what} | not measured | | | {unit} | {target} | |")
            if check:
                self.verdicts.append((self.current, what, target, None))
            return
        m = statistics.median(values)
        met = ""
        if check:
            ok = check(m)
            met = "yes" if ok else "**no**"
            self.verdicts.append((self.current, what, target, ok))
        self.rows.append(f"| {what} | {fmt(m)} | {fmt(min(values))} | {fmt(max(values))} | {unit} | {target} | {met} |")

    def series_row(self, key, what, unit, target="", check=None):
        self.row(what, self.values(key), unit, target, check)

    def ratio(self, a, b):
        va, vb = self.series.get(a, []), self.series.get(b, [])
        return [x / y for x, y in zip(va, vb) if x is not None and y]

    def ratio_row(self, a, b, what, target="", check=None):
        self.row(what, self.ratio(a, b), "x", target, check)

    def cpu_note(self, key):
        runs = self.data.get("cpu", {}).get(key, [])
        if not runs:
            return ""
        names = [n for n in runs[0] if not n.startswith("_")]
        med = {n: statistics.median(r.get(n, 0) for r in runs) for n in names}
        parts = [f"{n} {v:.1f}" for n, v in sorted(med.items(), key=lambda kv: -kv[1]) if v >= 0.05]
        busy = statistics.median(r["_busy_cores"] for r in runs)
        secs = statistics.median(r["_seconds"] for r in runs)
        # What no listed process accounts for: the kernel's own threads, and anything else
        # running on the machine (another user's build would show here).
        other = statistics.median(max(0.0, r["_busy_cores"] * r["_seconds"] - sum(r.get(n, 0) for n in names))
                                  for r in runs)
        return (f"CPU-seconds (median of runs): {', '.join(parts) or 'none'}, anything else {other:.1f}; "
                f"the machine was busy {busy:.1f} of {os.cpu_count()} cores over those {secs:.1f} s")

    def cpu_line(self, label, key):
        note = self.cpu_note(key)
        return f"{label}: {note}." if label and note else f"{note}." if note else ""

    # --- the table ----------------------------------------------------------------------

    def build(self):
        m = self.meta
        size = m["size_mib"]
        size_txt = f"{size // 1024} GiB" if size % 1024 == 0 else f"{size} MiB"
        self.size_txt = size_txt
        self.section(f"1. Upload ingest: {size_txt} in {m['chunk_mib']} MiB chunks, one client (peers' upload.py)")
        self.series_row("ingest.ferry_multipart", "Ferry, multipart chunks (as the original's clients send them)",
                        "MiB/s")
        self.series_row("ingest.ferry_raw", "Ferry, raw-body chunks", "MiB/s")
        self.series_row("ingest.ferry_raw_md5given", "Ferry, raw-body chunks, md5 precomputed (server alone)",
                        "MiB/s")
        self.series_row("ingest.ferry_tus", "Ferry over tus 1.0 (`/files/`, the same tus client as @tus/server's row)",
                        "MiB/s")
        self.series_row("ingest.drf", "drf-chunked-upload (the original's stack, gunicorn 2 sync workers)", "MiB/s")
        self.series_row("ingest.tus", "@tus/server + file-store (Node)", "MiB/s")
        self.series_row("ingest.cp_sync", "cp + sync of the same file (the disk's limit)", "MiB/s")
        self.series_row("ingest.client_sink", "client ceiling: raw-put into nginx /sink (no server work, no disk)",
                        "MiB/s")
        self.series_row("ingest.client_sink_md5", "client ceiling with the client's md5 (drf mode, --finish-md5)",
                        "MiB/s")
        for mode, label in (("ferry_multipart", "multipart"), ("ferry_raw", "raw")):
            self.ratio_row(f"ingest.{mode}", "ingest.drf", f"Ferry {label} ÷ drf", "≥ 5x", lambda v: v >= 5)
            self.ratio_row(f"ingest.{mode}", "ingest.tus", f"Ferry {label} ÷ tus", "≥ 1.2x", lambda v: v >= 1.2)
            self.ratio_row(f"ingest.{mode}", "ingest.cp_sync", f"Ferry {label} ÷ cp+sync", "≥ 0.7x",
                           lambda v: v >= 0.7)
        self.ratio_row("ingest.ferry_tus", "ingest.tus", "Ferry over tus ÷ @tus/server (same client)", "≥ 1x",
                       lambda v: v >= 1)
        for key, label in (("ferry_multipart", "ferry-api, multipart"), ("ferry_raw", "ferry-api, raw"),
                           ("ferry_tus", "ferry-api, over tus"), ("tus", "@tus/server"), ("drf", "drf (gunicorn)")):
            self.series_row(f"ingest.{key}.cpu_per_gib", f"server CPU-seconds per GiB ingested: {label}", "CPU-s")
        # Not a target row: the same client work on both sides (tus's client hashes nothing).
        self.ratio_row("ingest.ferry_raw_md5given", "ingest.tus",
                       "Ferry raw, md5 precomputed ÷ tus (neither client hashes; Ferry's server still does)")

        self.section(f"2. Completion to durable: {size_txt}, R = 2")
        self.series_row("durable.ferry_s", "Ferry: completing POST → verified on 2 nodes", "s")
        self.series_row("durable.post_s", "… of which the completing POST: → downloadable (200: md5 verified, "
                        "redirect and first MiB checked)", "s")
        self.series_row("durable.shell_s", "shell baseline: md5sum, then rsync -e ssh to node1, then node2", "s")
        self.ratio_row("durable.ferry_s", "durable.shell_s", "Ferry ÷ shell baseline, completion to durable", "≤ 0.6x", lambda v: v <= 0.6)

        w = m["wrk_seconds"]
        self.section(f"3. Download: the same {size_txt} file")
        self.series_row("download.node_range", f"node agent, random 1 MiB Range GETs (wrk -t2 -c32, {w} s)", "MiB/s")
        self.series_row("download.nginx_range", "nginx, same file, same requests", "MiB/s")
        self.ratio_row("download.node_range", "download.nginx_range", "node agent ÷ nginx, Range", "≥ 0.9x",
                       lambda v: v >= 0.9)
        self.series_row("download.node_range.p99_ms", "node agent, Range p99 latency", "ms")
        self.series_row("download.nginx_range.p99_ms", "nginx, Range p99 latency", "ms")
        self.series_row("download.node_whole", "node agent, whole file, 1 stream (curl; copy already verified)",
                        "MiB/s")
        self.series_row("download.node_whole_first", "node agent, whole file, first read after the copy changed "
                        "(sha256 checked as served)", "MiB/s")
        self.series_row("download.nginx_whole", "nginx, whole file, 1 stream (curl)", "MiB/s")
        self.ratio_row("download.node_whole", "download.nginx_whole", "node agent ÷ nginx, whole file", "≥ 0.9x",
                       lambda v: v >= 0.9)

        self.section(f"4. Redirect: GET /storage/download/<id>/ with a JWT (wrk -t2 -c64, {w} s)")
        self.series_row("redirect.rps", "redirects (302)", "req/s", "≥ 10,000", lambda v: v >= 10_000)
        self.series_row("redirect.p50_ms", "redirect p50 latency", "ms")
        self.series_row("redirect.p99_ms", "redirect p99 latency", "ms", "< 10 ms", lambda v: v < 10)

        self.section("5. Memory (peak RSS, VmHWM reset before each run)")
        self.series_row("memory.api_peak_mib", "ferry-api peak RSS, 32 clients each uploading a 64 MiB chunk at once",
                        "MiB", "< 100 MiB", lambda v: v < 100)
        self.series_row("memory.api_idle_mib", "… ferry-api RSS just before", "MiB")
        self.series_row("memory.worker_64m_mib", "ferry-worker peak RSS, assembling + replicating a 64 MiB file", "MiB")
        small = self.med("memory.worker_64m_mib")
        self.series_row("memory.worker_1g_mib", f"ferry-worker peak RSS, assembling + replicating a {size_txt} file", "MiB",
                        "independent of size", None if small is None else
                        (lambda v: v <= small + max(8, 0.1 * small)))

        n = m["small_files"]
        self.section(f"6. Many small files: {n:,} x 64 KiB uploaded, completed, on 2 nodes (16 client threads)")
        self.series_row("small.w1", "1 worker process", "files/s")
        self.series_row("small.w2", "2 worker processes", "files/s")
        self.ratio_row("small.w2", "small.w1", "small files, 2 workers ÷ 1 worker", "≥ 1.6x", lambda v: v >= 1.6)
        self.series_row("small.w2", "small files end to end, 2 workers on loopback", "files/s", "≥ 300",
                        lambda v: v >= 300)

        self.section(f"7. Read-after-write under a burst: {n:,} x 64 KiB single-request uploads, 16 client threads, "
                     "each followed at once by a download through the redirect")
        self.series_row("burst.non302", "downloads right after a 200 that were not a 302", "count", "0",
                        lambda v: v == 0)
        self.series_row("burst.mismatch", "downloads whose bytes differ", "count", "0", lambda v: v == 0)
        self.series_row("burst.from_staging", "… of them served from the staging copy (no node copy yet)", "count")
        self.series_row("burst.post_p50_ms", "completing POST p50 (200 = downloadable)", "ms")
        self.series_row("burst.post_p99_ms", "completing POST p99", "ms")
        self.series_row("burst.files_per_s", "uploaded + downloaded", "files/s")

        if m.get("rtt_ms"):
            self.section(f"8. Remote nodes: small files with {m['rtt_ms']:g} ms added RTT to every node "
                         "(ssh and agent ports behind delayproxy.py)")
            self.series_row("rtt.w1", "1 worker process", "files/s")
            self.series_row("rtt.w2", "2 worker processes", "files/s")
            self.series_row("rtt.w4", "4 worker processes", "files/s")
            self.ratio_row("rtt.w2", "rtt.w1", "2 workers ÷ 1 worker at added RTT", "≥ 1.8x", lambda v: v >= 1.8)
            self.ratio_row("rtt.w4", "rtt.w1", "4 workers ÷ 1 worker at added RTT", "≥ 3x", lambda v: v >= 3)

        self.section("9. What durability costs on the nodes' disk (write a temp name, rename; plain vs. "
                     "fsync of the file + one directory fsync per 16 files, as a replica push does)")
        self.series_row("fsync.plain_ms_per_small", "64 KiB file, plain", "ms/file")
        self.series_row("fsync.durable_ms_per_small", "64 KiB file, fsynced (+ 1/16 directory fsync)", "ms/file")
        self.series_row("fsync.plain_64m_s", "64 MiB file, plain", "s")
        self.series_row("fsync.durable_64m_s", "64 MiB file, fsynced", "s")

    def table(self):
        head = ["| what | median | min | max | unit | target | met? |",
                "| --- | ---: | ---: | ---: | --- | --- | --- |"]
        return "\n".join(head + self.rows)

    def summary(self):
        met = [v for v in self.verdicts if v[3]]
        missed = [v for v in self.verdicts if v[3] is False]
        lines = [f"Targets met: {len(met)} of {len(self.verdicts)}."]
        if missed:
            lines.append("Missed: " + "; ".join(f"{what} ({target})" for _, what, target, _ in missed) + ".")
        return " ".join(lines)

    # --- notes ----------------------------------------------------------------------------

    def notes(self):
        med = self.med
        out = []

        def para(title, how, bounds):
            text = f"### {title}\n\n" + "\n".join(f"- {x}" for x in how if x)
            text += "\n\nWhat bounds it:\n\n" + "\n".join(f"- {x}" for x in bounds if x)
            out.append(text + "\n")

        drf, sink_md5, cp = med("ingest.drf"), med("ingest.client_sink_md5"), med("ingest.cp_sync")
        reach = ""
        if drf and sink_md5 and cp:
            reach = (f"5x drf is {fmt(5 * drf)} MiB/s here, against a client ceiling of {fmt(sink_md5)} MiB/s "
                     f"while the client computes the md5 (and {fmt(med('ingest.client_sink'))} MiB/s without), "
                     f"and {fmt(cp)} MiB/s for cp + sync: ")
            reach += ("out of reach for any server measured with this client on this machine."
                      if 5 * drf > min(sink_md5, cp) else "within reach of the client and the disk.")
        para("1. Upload ingest", [
            "Every upload is `../shared/peers/client/upload.py` (one connection, keep-alive, 1 MiB blocks): "
            "`drf` mode for drf-chunked-upload and Ferry's multipart row, `tus` mode for tus, `raw-put "
            "--finish-md5` for Ferry's raw row. MiB/s = file size / client seconds, first request to last reply; "
            "for drf and Ferry that includes the completing md5 POST (drf re-reads the whole file inside it; "
            "Ferry answers 200 once it has checked the md5 against the running digest and recorded the file: "
            "downloadable at once, from the staging copy until the first node copy).",
            "In `drf` and `--finish-md5` modes the client computes the md5 while it sends (as a real client must), "
            "in a helper thread; the client-ceiling rows (raw-put into nginx's `/sink`, measured in the download "
            "section's runs) show what that costs. The md5-precomputed row (`--md5`) shows the server alone.",
            f"Ferry `fdatasync`s every chunk before it answers; drf and tus leave their bytes in the page cache. "
            f"The `sync` right after their uploads (not in their figures) took {fmt(med('ingest.drf.sync_after_s'))} s "
            f"(drf) and {fmt(med('ingest.tus.sync_after_s'))} s (tus), median; cp alone took "
            f"{fmt(med('ingest.cp_alone_s'))} s of the cp + sync figure.",
            f"Completing POST, median: Ferry multipart {fmt(med('ingest.ferry_multipart.finish_s'))} s, Ferry raw "
            f"{fmt(med('ingest.ferry_raw.finish_s'))} s, drf {fmt(med('ingest.drf.finish_s'))} s.",
            "Stored copies: drf's and tus's file is compared by md5 with the source after every run; Ferry checks "
            "its md5 itself (the 200), and run 1's two node copies of the multipart upload are compared here. "
            "Every Ferry upload then replicates (untimed) and is deleted, and the cluster is idle again, before "
            "the next measurement.",
        ], [
            "Ferry hashes every byte twice as it arrives: md5 (what the client protocol checks) and sha256 (what "
            "the nodes' scrub and the signed download links check). A chunk's bytes are copied into 256 KiB "
            "buffers of a reused pool, each going to two threads at once (`api/src/upload/staging.rs`): md5 alone on one, sha256 + the write on the other, with writeback "
            "started every 2 MiB so the chunk's closing fdatasync is short (about 1 ms, strace). md5 cannot be "
            "split: it is OpenSSL's (libcrypto's assembly; 731 MiB/s on one core of this CPU, `openssl speed`, "
            "against about 600 for the md-5 crate), sha256 the sha2 crate's (SHA-NI, as fast here as OpenSSL's), "
            "so the two digests cost ferry-api about 2 CPU-seconds per GiB on a quiet machine: two thirds of its "
            "samples in perf, the rest the kernel's receive and write path.",
            "A chunk of 2 MiB or more leaves the page cache once it is fsynced (`POSIX_FADV_DONTNEED`), so the "
            "next chunk's write reuses those pages: on this VM a write into pages not touched for a while is "
            "slow (perf before the change: the copy into the page cache took as many of ferry-api's samples as "
            "md5, 33 %). The replication reads such a staging copy back from the disk.",
            "Where ferry-api's CPU goes, before and after these changes (perf, top symbols): "
            "docs/PROFILE-INGEST.md.",
            "The upload is CPU-bound on 2 cores shared with the client (busy cores below), which in `drf` and "
            "`--finish-md5` modes hashes md5 too. tus computes no checksum at all, and drf's md5 is a re-read "
            "after the last chunk. What would raise it: one digest instead of two (sha256 only on the nodes; "
            "about 0.6 CPU-s per GiB).",
            "Multipart costs ferry-api more CPU than a raw body: multer gathers frames into buffers of its own "
            "(a copy) and searches them for the boundary; the file bytes are then copied into the pool's "
            "buffers, so multer reuses its memory at once instead of faulting in fresh pages; see below and "
            "docs/PROFILE-INGEST.md.",
            reach,
            self.cpu_line("Ferry multipart", "ingest.ferry_multipart"),
            self.cpu_line("Ferry raw", "ingest.ferry_raw"),
            self.cpu_line("Ferry raw, md5 precomputed", "ingest.ferry_raw_md5given"),
            self.cpu_line("Ferry over tus", "ingest.ferry_tus"),
            self.cpu_line("drf", "ingest.drf"),
            self.cpu_line("tus", "ingest.tus"),
        ])
        para("2. Completion to durable", [
            "From sending the completing `POST <upload url>` (md5) of an uploaded file to the moment 2 of its "
            "replicas are `present` (what `GET /admin/api/files/<id>` reports, read in PostgreSQL every 10 ms). "
            "`present` means rsync finished, the copy's transfer checksum matched the source's and the source's "
            "sha256 the upload's. Both node copies are "
            "then compared with the source by md5 here (untimed).",
            "The shell baseline is what the original's Celery task did after the upload: `md5sum` of the file, "
            "then `rsync -e ssh` to node1, then to node2 (a fresh ssh connection each, default cipher), into the "
            "same node roots over the same sshds; its source is in the page cache. Ferry's staging copy, uploaded "
            "in 8 MiB chunks, is not: ferry-api drops a chunk's pages once it is fsynced (section 1), so Ferry's "
            "rsyncs read it from the disk.",
        ], [
            "Ferry finalises the md5 from the running digest stored with the upload (no re-read), then runs the "
            "two replicate jobs at once: rsync over a multiplexed ssh (aes128-gcm) to each node with XXH3-128 as "
            "rsync's transfer checksum (`--checksum-choice=xxh128`): the sender hashes staging as it reads it, the "
            "receiver checks the file it rebuilt against that, and the worker, reading staging once per push "
            "beside rsync for its sha256 (the upload's) and XXH3-128, compares that with the one rsync printed "
            "(`%C`), so nothing re-reads the copy on the node. The baseline reads the file for md5sum, then "
            "copies twice, one "
            "node after the other, each with a new ssh handshake and the default cipher (chacha20-poly1305).",
            "On 2 cores two rsyncs in parallel are CPU-bound (busy cores below; ssh encryption and rsync's "
            "checksums on both ends, the worker's sha256 of the source). R = 2 costs twice the CPU of one copy. Ferry gains by running the copies "
            "side by side and by not re-reading the file, neither for its md5 nor on the nodes. The detached ssh "
            "ControlMaster processes, which encrypt the data, count under 'anything else'.",
            self.cpu_line("Ferry", "durable.ferry_s"),
            self.cpu_line("Shell baseline", "durable.shell_s"),
        ])
        para("3. Download", [
            f"The file from section 2, served by the node the API redirects to "
            f"({self.data['notes'].get('download.node', '?')}) and by the peers' nginx (sendfile, 2 workers) "
            "started on that node's directory: the very same file, on the same disk, in page cache. wrk runs the "
            "peers' `range.lua` (random aligned 1 MiB ranges; MiB/s = requests/s); one Range answer from each is "
            "checked byte for byte against the source first, and one whole download from the node by md5.",
        ], [
            "The node agent reads 1 MiB steps with `pread` into pooled buffers (zeroed once when made, then "
            "reused: at most 512 in use, 64 kept idle; `node-agent/src/buffers.rs`) handed to hyper without a "
            "copy (`Bytes::from_owner`), reads step n+1 while hyper sends step n, and answers a 1 MiB range with "
            "one blocking-pool call (open, stat, range, read). Per byte that is one copy into the buffer and one "
            "into the socket, against nginx's `sendfile` (one); both are CPU-bound here (2 cores shared with wrk), "
            "see the CPU-seconds below. Before this pooling (fresh zero-filled buffers, a hand-off per step) the "
            "agent measured 0.76x nginx on Range and 0.36x on whole files.",
            "Whole-file reads are checked against the sha256 signed into the link: the first whole read of a "
            "copy hashes it on another thread while the steps go out (the last step waits for the verdict; a "
            "mismatch cuts the body short and withdraws the copy). After a match, whole reads of the unchanged "
            "copy (same inode, size, mtime, ctime) skip the hash for `node.reverify_secs` (default a day); the "
            "monitor's scrub re-checks every copy regardless. So the bench reports both: the plain whole-file "
            "row reads a verified copy (the byte-for-byte check before the runs was its first read), the "
            "first-read row is the copy after `touch` (new mtime/ctime, so verified again), bounded by sha256 "
            "on one core (about 1,065 MiB/s here).",
            self.cpu_line("Node agent, Range", "download.node_range"),
            self.cpu_line("nginx, Range", "download.nginx_range"),
            self.cpu_line("Node agent, whole file", "download.node_whole"),
            self.cpu_line("Node agent, whole file, first read", "download.node_whole_first"),
            self.cpu_line("nginx, whole file", "download.nginx_whole"),
        ])
        para("4. Redirect", [
            "wrk with the JWT header, 64 connections on 2 threads, after a 2 s warm-up; every answer must be a 302 "
            "(any other status fails the run).",
        ], [
            "Per request: JWT (HS256) check, the replica-location cache (`api.replica_cache_ms`, so no PostgreSQL "
            "query on a hit), in-memory heartbeats, an HMAC-SHA256 signature for the URL. perf shows the kernel's "
            "scheduling and wake-ups on top; wrk's two threads share the 2 cores with ferry-api, so p99 is mostly "
            "run-queue latency.",
            self.cpu_line("", "redirect.rps"),
        ])
        para("5. Memory", [
            "ferry-api: 32 threads released at once, each PUTting the first 64 MiB chunk of a new 128 MiB upload "
            "as a raw body (2 GiB in flight). Peak = VmHWM once all answered, reset (`clear_refs` 5) before. The "
            f"aggregate intake was {fmt(med('memory.api_concurrent_mib_s'))} MiB/s (every chunk fdatasync'ed). "
            "These uploads are left open; their staging bytes are removed after each run.",
            "ferry-worker: the larger VmHWM of the two workers from the completing POST until the file is on 2 "
            f"nodes (section 2 for the {self.size_txt} file; 64 MiB files here). 'Independent of size' is read as: "
            "the big file's peak within max(8 MiB, 10 %) of the 64 MiB file's.",
        ], [
            "Bytes read off the network and not yet hashed and written are bounded: they are copied into 256 KiB "
            "buffers of a pool, 4 (1 MiB) per request and 64 (16 MiB) for the whole process, each held until "
            "both its threads are done (`api/src/upload/staging.rs`); a request that finds the budget spent "
            "reads more slowly (TCP back-pressure). ferry-api's peak is therefore its RSS before the burst, plus "
            "at most 16 MiB of buffers, hyper's read buffers and two blocking-pool threads per upload in flight, plus what the "
            "allocator keeps around. mimalloc is built with `no_thp`: with transparent huge pages its segments "
            "were backed by 2 MiB pages threads barely touched (`AnonHugePages` was about 90 MiB of this burst's "
            "RSS), and with `purge_delay` 0 it returns freed pages at once (with the default delay an idle "
            "thread never got round to it: 70-90 MiB stayed resident after the burst instead of 40-50). "
            "VmHWM resets to the current RSS, not to the idle one, so runs 2 and 3 start from what run 1 left.",
            "No file byte passes through a worker: the digest comes from the upload's row and rsync/ssh, child "
            "processes, do the copying (their memory is not in the worker's RSS), so the worker's peak does not "
            "grow with the file.",
            self.cpu_line("", "memory.api_peak_mib"),
        ])
        para("6. Many small files", [
            f"{self.meta['small_files']:,} different names, 64 KiB each, one-request uploads "
            "(`POST /storage/tmp-upload/?wait=0` with file, filename and md5; the answer comes once the bytes and "
            "their md5 are checked and the file is recorded: 200 with the default write quorum of 0) from 16 "
            "client threads with kept-alive connections. files/s = "
            "files / time from the first request until all their replicas (2 each) are `present` (read in "
            "PostgreSQL every 100 ms). For 1 worker, worker2 is stopped (SIGTERM) during that run; runs alternate "
            "2 workers, 1 worker.",
            f"All uploads were answered after (median) {fmt(med('small.w2.upload_s'))} s with 2 workers and "
            f"{fmt(med('small.w1.upload_s'))} s with 1; the rest of the time is replication.",
        ], [
            "Per file: two replicate jobs through RabbitMQ quorum queues (the API records the file itself in the "
            "upload's transaction). Replicate jobs bound "
            "for one node travel in batches: one rsync session (`--files-from`) per batch over the node's openssh "
            "master connection, the copy's XXH3-128 per file from rsync itself against the worker's read of the "
            "source (whose sha256 must be the upload's), the files fsynced by the receiver "
            "(`--fsync`) and the shard directories the push changed by the node's forced command after the "
            "receiving rsync exits. A node's second session starts only beside a busy one when a full batch "
            "waits, so under load batches grow rather than sessions multiplying; how full is bounded by "
            "`worker.replicate_in_flight` (256: about 21 files per session with 2 workers and 3 nodes; at 64 "
            "it was 11, and a session costs about 28 CPU-ms of process trees on both ends). A worker's jobs "
            "start their records, begin their copies, record their replicas, send their events and end "
            "their records in one statement per group (`worker/src/gather.rs`: what queued meanwhile).",
            "CPU: one worker saturates the 2 cores as two do (busy cores below). A worker's lanes share its "
            "`worker.replicate_in_flight` deliveries, so a second worker process halves every batch and doubles "
            "the rsync sessions (and the ssh masters), each session about 28 CPU-ms of process trees: on these "
            "2 cores one worker moves more files per CPU-second than two, and the 2-worker ÷ 1-worker ratio "
            "shows the machine, not a shared lock (workers share nothing but the queues and PostgreSQL rows "
            "they claim). With more cores, a second worker's sessions run beside the first's. To raise "
            "files/s further, the next step is the node agent accepting a signed PUT and hashing while it "
            "writes (no process at all).",
            "One user's uploads take turns on the user's row (the quota check, `users::lock_quota_left`, and "
            "the usage counter the triggers move) from the check to the commit. That commit no longer waits "
            "for the WAL flush (`ferry_store::wal`: the transaction commits with synchronous_commit off and the "
            "request then waits for the flush outside the lock, before its answer), so the row is held for "
            "the check and the commit, not a disk flush: pg_stat_statements over 1,000 such uploads from 16 "
            "threads, the quota check's mean went from 35-52 ms (nearly all of it waiting for the row) to 3.75 "
            "ms. Replicas' NOTIFY, which held PostgreSQL's one notification lock through each commit's flush "
            "and so put every replica's commit in line, is sent after the commit. About 15 statements per "
            "file remain (35 before the grouping, 20 before a file's upload and chunk rows, its placement and "
            "its replica rows, its job records and outbox rows, and the caller's account and quota were read or "
            "written by one statement each), 0.05-0.4 ms each. In perf, PostgreSQL's CPU went mostly "
            "to the user's row that every upload updates and locks: index scans walking its chain of dead "
            "versions (heap_hot_search_buffer 17 %), multixact lookups on it (12 %; foreign-key checks "
            "beside the quota lock), the deferred usage triggers (10 %); and to WAL fsyncs (13 %). Now a "
            "verified single-request upload moves that row once instead of three times (inserted "
            "`complete` with its file) and `users` has fillfactor 10 (its page pruned early): 4.1-5.3 -> "
            "3.1-3.3 PostgreSQL CPU-seconds per 1,000 files on the dev cluster. Its sessions run with "
            "`jit=off`: the monitor's sweeps compiled for ~570 ms a call once some ten thousand files "
            "existed.",
            "The ssh ControlMaster processes run detached from the workers, so their CPU (the client-side "
            "encryption of every multiplexed session) is counted under 'anything else'. With one worker part of "
            "the worker's own share also shows up there, so the split between the two is approximate.",
            self.cpu_line("2 workers", "small.w2"),
            self.cpu_line("1 worker", "small.w1"),
        ])
        para("7. Read-after-write under a burst", [
            f"{self.meta['small_files']:,} single-request uploads of 64 KiB (random bytes each) from 16 client "
            "threads; each thread, on its upload's 200, at once asks `GET /storage/download/<id>/` and follows "
            "the 302 (to a node, or to the staging copy on the API before the first node copy), comparing the "
            "bytes. 'non-302' counts every answer other than a 302 (a 503 from a file on no node and not in "
            "staging would count), 'differ' every body that is not the upload.",
            "With `storage.write_quorum` at its default 0 the completing POST answers 200 once the md5 is "
            "verified and the file recorded; until its first node copy the redirect goes to the verified "
            "staging copy, served by the API (`api/src/routes/staging.rs`). The row 'served from staging' counts "
            "those downloads.",
        ], [
            "The POST's p50/p99 is the upload itself plus recording the file (a row update, no byte re-read).",
        ])
        if self.meta.get("rtt_ms"):
            para(f"8. Remote nodes: {self.meta['rtt_ms']:g} ms added RTT", [
                "This machine's kernel has no `sch_netem`, so `deploy/bench/delayproxy.py` (asyncio, standard "
                f"library) sits in front of every node's sshd and agent and holds each chunk {self.meta['rtt_ms'] / 2:g} "
                "ms in each direction; the nodes are re-registered on the proxy's ports (PATCH /admin/api/nodes, "
                "host keys pinned for the new ports) and restored after. The same small-files test as section 6 "
                "then runs with 2, 4 (two extra ferry-worker processes started with worker1's command line and "
                "environment) and 1 worker.",
            ], [
                "With the nodes a round trip away, a session waits (ssh channel set-up, rsync's protocol turns), and "
                "what queues meanwhile rides in the next batch: a worker's lanes hold up to "
                "`worker.replicate_in_flight` files, so one worker already overlaps the waiting and keeps the 2 "
                "cores busy (below). More worker processes then add CPU per file (smaller batches, more sessions "
                "and ssh masters) rather than overlap: the ratio targets assume a worker that waits on the "
                "network, which on these 2 cores this one no longer does.",
                self.cpu_line("4 workers", "rtt.w4"),
                self.cpu_line("1 worker", "rtt.w1"),
            ])
        return "\n".join(out)


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / (1 << 20)
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    osname = ""
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    return (f"{os.cpu_count()} cores ({model}), {mem:.1f} GiB RAM, {osname}, kernel {platform.release()}, "
            f"one virtual disk ({sh('findmnt', '-no', 'SOURCE,FSTYPE', '/').replace(' ', ', ')})")


def versions(peers):
    parts = []
    commit = sh("git", "-C", REPO, "rev-parse", "--short", "HEAD")
    dirty = sh("git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--", "api", "worker", "shared",
               "node-agent", "monitor", "cli", "Cargo.lock")
    parts.append(f"Ferry {commit}" + (" (with uncommitted changes in the crates)" if dirty else ""))
    venv = os.path.join(peers, "drf", ".venv", "bin", "python")
    if os.path.exists(venv):
        parts.append(sh(venv, "-c", "import django, rest_framework, gunicorn; print(f'Django {django.__version__}, "
                                    "DRF {rest_framework.__version__}, gunicorn {gunicorn.__version__}')"))
    pkg = os.path.join(peers, "tus", "node_modules", "@tus", "server", "package.json")
    if os.path.exists(pkg):
        with open(pkg) as f:
            parts.append(f"node {sh('node', '-v')}, @tus/server {json.load(f)['version']}")
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip() if sh("which", "nginx") else ""
    if nginx:
        parts.append(nginx.split(": ", 1)[-1])
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    parts.append(" ".join((wrk.stdout + wrk.stderr).split()[:2]))
    rsync = sh("rsync", "--version").split()
    if len(rsync) > 2:
        parts.append(f"rsync {rsync[2]}")
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
    parts.append((ssh.stderr or ssh.stdout).split(",")[0].strip())
    return ", ".join(p for p in parts if p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json")
    ap.add_argument("--out", help="write the whole report (docs/PERFORMANCE.md) here")
    ap.add_argument("--command", default="deploy/bench/run", help="the command line to reproduce the run")
    ap.add_argument("--peers", default=os.path.join(os.path.dirname(REPO), "shared", "peers"))
    ap.add_argument("--load", default="", help="load averages when the run started")
    args = ap.parse_args()
    with open(args.json) as f:
        data = json.load(f)
    rep = Report(data)
    rep.build()
    table = rep.table()
    errors = data.get("errors", [])
    print(table)
    print()
    print(rep.summary())
    if errors:
        print("\nBROKEN: " + "; ".join(errors))
    if not args.out:
        return 0
    m = data["meta"]
    doc = [
        "# Performance",
        "",
        f"Measured {m['started']} by `{args.command}` on this machine: {machine()}. "
        f"Load average (1, 5, 15 min) when it started: {args.load or 'n/a'}; when it ended: "
        f"{m.get('load_end', 'n/a')}. Versions: {versions(args.peers)}.",
        "",
        "To reproduce (from the repository root, as root on Debian 12; installs what is missing; "
        "`deploy/dev bench` runs the same script):",
        "",
        "```sh",
        args.command,
        "```",
        "",
        f"It builds the release binaries, starts its own cluster with `deploy/dev up` on free ports in a scratch "
        f"dir (PostgreSQL, RabbitMQ, 3 storage nodes with sshd + ferry-node, ferry-api, 2 ferry-workers, "
        f"ferry-monitor; R = 2), starts the peers of `../shared/peers` (drf-chunked-upload, @tus/server, nginx) "
        f"with their own scripts, and measures them side by side, interleaved run by run. Every figure is the "
        f"median of {m['runs']} runs, with min and max; ratios are of the same run. The load averages above "
        f"and the 'anything else' CPU-seconds in the notes show how much else ran on the machine meanwhile "
        f"(the bench's own small-files test alone keeps dozens of processes runnable).",
        "",
        ("The nodes' sshds ran with `SetEnv HOME=<empty dir>`, as `deploy/dev up` configures them: sshd "
         "runs every remote command through the login shell, and on this VM root's `~/.bashrc` runs "
         "`pyenv init` (~0.1 CPU-s and ~0.4 s per command), which a storage node's ssh user would not."),
        "",
        rep.summary(),
        "",
        table,
        "",
    ]
    if errors:
        doc += ["**The run stopped early:** " + "; ".join(errors), ""]
    doc += ["## What each figure measures, and what bounds it", "", rep.notes()]
    with open(args.out + ".tmp", "w") as f:
        f.write("\n".join(doc))
    os.replace(args.out + ".tmp", args.out)
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
