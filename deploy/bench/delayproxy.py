#!/usr/bin/env python3
"""A TCP proxy that adds a fixed one-way delay in each direction: the bench's stand-in
for a WAN link to remote storage nodes (this machine's kernel has no netem).

    delayproxy.py --delay-ms 10 LISTEN_PORT:TARGET_PORT [LISTEN_PORT:TARGET_PORT ...]

Every byte read from one side is written to the other `delay-ms` later, in order, so a
round trip through the proxy costs 2 x delay-ms on top of loopback; bandwidth is not
limited (a reader keeps reading while earlier data waits), which is what a long, fat
link looks like to a latency-bound protocol such as ssh + rsync on small files.
Listens on 127.0.0.1 only; runs until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import collections
import signal
import time


async def pump(reader, writer, delay):
    """Copies reader -> writer, each chunk held until `delay` after it arrived."""
    queue = collections.deque()
    arrived = asyncio.Event()
    done = False

    async def read_side():
        nonlocal done
        try:
            while True:
                data = await reader.read(256 * 1024)
                if not data:
                    break
                queue.append((time.monotonic() + delay, data))
                arrived.set()
        except (ConnectionError, OSError):
            pass
        done = True
        arrived.set()

    async def write_side():
        try:
            while True:
                if not queue:
                    if done:
                        break
                    arrived.clear()
                    await arrived.wait()
                    continue
                due, data = queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                queue.popleft()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(read_side(), write_side())


async def handle(client_reader, client_writer, target_port, delay):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, server_writer, delay), pump(server_reader, client_writer, delay))
    for w in (client_writer, server_writer):
        w.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay (RTT is twice this)")
    ap.add_argument("pairs", nargs="+", help="LISTEN_PORT:TARGET_PORT")
    args = ap.parse_args()
    delay = args.delay_ms / 1000
    servers = []
    for pair in args.pairs:
        listen, target = (int(p) for p in pair.split(":"))
        servers.append(await asyncio.start_server(
            lambda r, w, t=target: handle(r, w, t, delay), "127.0.0.1", listen, reuse_address=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
