"""API read latency: profile lookup by identifier over HTTP, against raw Redis reads.

Run on a started local stack (``cdp stack up``)::

    .venv/bin/python -m bench.api_latency --profiles 10000 --rate 500 --seconds 20

Steps, in a fresh namespace:

1. seed ``--profiles`` generated profiles through the real write path
   (``bench/seed.py``: identifier links, aliases, ``profile_upsert`` of
   ``build_profile`` documents with the journey);
2. start the API as ``cdp api`` does (``python -m cdp api``: uvicorn, one
   process, no access log) in a subprocess on a free loopback port, with the
   dev-only access file's keys (``--department``, default marketing: its view
   is projected on every response);
3. from one asyncio client process (aiohttp, keep-alive), look up
   random seeded customers by email (``GET /v1/profiles?email=...``):

   - **fixed rate**: ``--rate`` requests/s for ``--seconds``, open loop: each
     request is scheduled at ``start + i / rate`` and its latency runs from
     that scheduled moment to the end of the response, so a stalled client or
     server shows up as latency instead of as fewer requests;
   - **max rate**: ``--concurrency`` closed-loop tasks for ``--max-seconds``,
     each sending its next request when its last one is answered;

4. **raw baseline**, same client process, same event loop, same lookups and
   phases: the store's ``lookup`` + ``get_profile`` as raw commands on
   ``redis.asyncio`` (``HGET`` of the identifier index key, then one pipeline
   of ``HGET`` alias + ``HGET`` document: 2 round trips; the API's handler does 3:
   lookup, alias resolution, document).

Prints p50/p99/max and requests/s per phase, the fixed-rate start lag (how
late requests were started: waiting for one of the 64 in-flight slots, or a
busy client) and the load average. The namespace is deleted at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import redis
import redis.asyncio as aioredis

from bench.common import free_port, latency_summary, load, namespace, percentile, rss_kib
from bench.seed import seed_profiles
from cdp.identity.config import default_identity_config
from cdp.identity.identifiers import normalize
from cdp.serve import keys
from cdp.serve.store import ReadModelStore
from cdp.settings import PROJECT_ROOT, Settings
from cdp.worker_process import settings_env

DEV_KEYS = {
    "admin": "cdp-dev-admin-key",
    "marketing": "cdp-dev-marketing-key",
    "sales": "cdp-dev-sales-key",
    "service": "cdp-dev-service-key",
}
"""The published dev-only keys of ``cdp/api/dev_access.yaml`` (docs/api.md)."""

LOOKUP_PATH = "/v1/profiles"

GRACE_S = 5.0
"""Fixed rate: how long after the last request was due the phase waits for answers."""

MAX_IN_FLIGHT = 64
"""Fixed rate: most requests open at once (and the size of the client's connection pool)."""

Operation = Callable[[str], Awaitable[bool]]
"""One lookup of an email; True if the profile was found."""


@dataclass
class Phase:
    """The measured requests of one phase."""

    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    start_lags: list[float] = field(default_factory=list)
    failures: int = 0
    unfinished: int = 0
    """Fixed rate: requests not completed ``GRACE_S`` after the last one was due (overload)."""

    def line(self) -> str:
        """The phase's figures as one line."""
        rate = len(self.latencies) / self.seconds if self.seconds else 0.0
        done = len(self.latencies)
        text = f"{self.name:<26} {done:>7,} req in {self.seconds:5.1f}s = {rate:7,.0f} req/s"
        if self.unfinished:
            return (
                f"{text}  OVERLOADED: {self.unfinished:,} requests not answered {GRACE_S:.0f}s"
                " after the last was due (the queue grew; percentiles not printed)"
            )
        text += f"  {latency_summary(self.latencies)}"
        if self.start_lags:
            lag = percentile(sorted(self.start_lags), 0.99)
            text += f"  (start lag p99 {1000 * lag:.2f} ms)"
        if self.failures:
            text += f"  FAILED {self.failures:,}"
        return text


def wait_for_persistence(client: redis.Redis, timeout: float = 120.0) -> None:
    """Wait until Redis has no snapshot or AOF rewrite running.

    Seeding writes enough keys to trigger one (``save 60 10000``); its fork would
    otherwise land in the first measured phase and show up as the API's tail.
    """
    time.sleep(1.0)  # the server's cron starts a due snapshot within a second
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        info = client.info("persistence")
        if not info.get("rdb_bgsave_in_progress") and not info.get("aof_rewrite_in_progress"):
            return
        time.sleep(0.5)


async def fixed_rate(name: str, op: Operation, emails: Sequence[str], rate: float) -> Phase:
    """Open loop: request ``i`` is due at ``start + i / rate``; latency counts from then.

    At most ``MAX_IN_FLIGHT`` requests are open at a time (a due request waits
    for a slot, its latency still counting from when it was due: httpx's pool
    slows down badly with thousands of queued requests). Requests not started or
    answered ``GRACE_S`` after the last one was due are counted as unfinished:
    the target did not sustain the rate.
    """
    phase = Phase(name)
    start = time.monotonic() + 0.05
    deadline = start + len(emails) / rate + GRACE_S
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(index: int, email: str) -> None:
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        async with slots:
            if time.monotonic() > deadline:
                phase.unfinished += 1
                return
            phase.start_lags.append(max(0.0, time.monotonic() - due))
            ok = await op(email)
            phase.latencies.append(time.monotonic() - due)
            phase.failures += not ok

    tasks = [asyncio.create_task(one(i, email)) for i, email in enumerate(emails)]
    _done, pending = await asyncio.wait(tasks, timeout=len(emails) / rate + 0.05 + GRACE_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    phase.unfinished += len(pending)
    phase.seconds = time.monotonic() - start
    return phase


async def max_rate(
    name: str, op: Operation, emails: Sequence[str], concurrency: int, seconds: float = 0.0
) -> Phase:
    """Closed loop: ``concurrency`` tasks send the next request when theirs completes,
    until ``emails`` are used up or, if given, ``seconds`` have passed (cycling ``emails``)."""
    phase = Phase(name)
    pending = itertools.cycle(emails) if seconds else iter(emails)
    start = time.monotonic()

    async def runner() -> None:
        for email in pending:
            if seconds and time.monotonic() - start >= seconds:
                return
            began = time.monotonic()
            ok = await op(email)
            phase.latencies.append(time.monotonic() - began)
            phase.failures += not ok

    await asyncio.gather(*(runner() for _ in range(concurrency)))
    phase.seconds = time.monotonic() - start
    return phase


class ApiServer:
    """``python -m cdp api`` in a subprocess (as ``cdp api`` runs it)."""

    def __init__(self, settings: Settings, port: int, log_path: Path) -> None:
        env = settings_env(settings, CDP_LOG_LEVEL="warning")
        env.pop("CDP_ACCESS_CONFIG", None)  # the dev-only access file and its published keys
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cdp", "api", "--host", "127.0.0.1", "--port", str(port)],
                cwd=str(PROJECT_ROOT),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until ``/healthz`` answers; return the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"the API exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the API did not answer within {timeout}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


async def drive(
    server: ApiServer, settings: Settings, emails: list[str], args: argparse.Namespace
) -> list[Phase]:
    """Warm up, then the fixed-rate and max-rate phases against the API and raw Redis."""
    rng = random.Random(args.seed)
    count = int(args.rate * args.seconds)
    lookups = [rng.choice(emails) for _ in range(count)]
    warmup = [rng.choice(emails) for _ in range(200)]
    identity = default_identity_config()
    index_keys = {
        email: keys.identifier(settings.namespace, str(normalize("email", email, identity)))
        for email in {*lookups, *warmup}
    }
    headers = {"X-API-Key": DEV_KEYS[args.department]}
    redis_client = aioredis.Redis.from_url(settings.redis_url, max_connections=MAX_IN_FLIGHT)
    ns = settings.namespace
    # aiohttp, not httpx: httpx's client spent about 2 ms of CPU per request and
    # saturated the client process's core before the API was busy.
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(
        base_url=server.url,
        headers=headers,
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=30.0),
    ) as http:

        async def api_lookup(email: str) -> bool:
            async with http.get(LOOKUP_PATH, params={"email": email}) as response:
                await response.read()
                return response.status == 200

        async def raw_lookup(email: str) -> bool:
            linked = await redis_client.hget(index_keys[email], "p")
            if linked is None:
                return False
            profile_id = linked.decode()
            async with redis_client.pipeline(transaction=False) as pipe:
                pipe.hget(keys.alias(ns, profile_id), "to")
                pipe.hget(keys.profile(ns, profile_id), "doc")
                target, document = await pipe.execute()
            return document is not None and (target is None or target.decode() == profile_id)

        phases: list[Phase] = []
        for label, op in (("API", api_lookup), ("raw Redis", raw_lookup)):
            print(f"  {label}: warm-up ({len(warmup)} requests)", flush=True)
            await max_rate("warm-up", op, warmup, 4)
            print(f"  {label}: {count:,} requests at {args.rate:,.0f}/s", flush=True)
            phases.append(
                await fixed_rate(f"{label} at {args.rate:,.0f}/s", op, lookups, args.rate)
            )
            print(f"    {phases[-1].line()}", flush=True)
            print(f"  {label}: {args.max_seconds:.0f}s, {args.concurrency} concurrent", flush=True)
            name = f"{label} max ({args.concurrency} conc.)"
            phases.append(
                await max_rate(name, op, lookups, args.concurrency, seconds=args.max_seconds)
            )
            print(f"    {phases[-1].line()}", flush=True)
            if label == "API":
                print(f"  API server RSS {rss_kib(server.proc.pid) / 1024:.0f} MiB", flush=True)
    await redis_client.aclose()
    return phases


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=10_000, help="profiles to seed")
    parser.add_argument("--rate", type=float, default=500.0, help="fixed request rate")
    parser.add_argument("--seconds", type=float, default=20.0, help="fixed-rate duration")
    parser.add_argument("--concurrency", type=int, default=8, help="max-rate tasks")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="max-rate duration")
    parser.add_argument("--department", choices=sorted(DEV_KEYS), default="marketing")
    parser.add_argument("--processes", type=int, default=2, help="processes building profiles")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--logs", type=Path, default=Path(".cdp/bench"))
    args = parser.parse_args()

    print(f"start: {load()}", flush=True)
    with namespace("benchapi", topics=False) as settings:
        with ReadModelStore.from_settings(settings) as store:
            emails = seed_profiles(store, args.profiles, seed=args.seed, processes=args.processes)
            wait_for_persistence(store.client)
        print(f"seeded {args.profiles:,} profiles, {len(emails):,} with an email", flush=True)
        server = ApiServer(settings, free_port(), args.logs / f"bench-api-{settings.namespace}.log")
        try:
            print(f"API up after {server.wait_ready():.1f}s on {server.url}", flush=True)
            phases = asyncio.run(drive(server, settings, emails, args))
        finally:
            server.stop()
    print(f"end: {load()}")
    print(f"\nsummary ({args.profiles:,} profiles, lookup by email, {args.department} view)")
    for phase in phases:
        print(f"  {phase.line()}")


if __name__ == "__main__":
    main()
