#!/usr/bin/python3
"""The seed's system with its own client: an API backend with one asyncpg pool, and
containers of three kinds of worker (extraction, semantic, event), each container a process
with its own asyncpg pool (min_size=1, max_size=3), against one PostgreSQL server.

  fleet.py run  --port P [--host H] [--seconds S] [--containers N] [--json FILE] [--label L]
  fleet.py chart --output fleet.png RESULT.json...

`run` prints, second by second, one compact line: per application its sessions (s; from
pg_stat_activity), logins waiting for it (w; from connbudget.status), jobs or requests done
(j) and errors (e) in that second; at the end a summary, and with --json the figures.
The API serves steady requests with bursts of 10 at once, on a pool that shrinks when idle
(so it needs new logins all along); worker jobs arrive at random moments. A container
whose pool cannot be created restarts it after a second, like a container restart policy.
`chart` draws the runs of one or more result files side by side (python3-matplotlib).
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import random
import statistics
import sys
import time

import asyncpg

KINDS = ("extraction", "semantic", "event")
APPS = {"api": "backend", "extraction": "extraction_worker", "semantic": "semantic_worker",
        "event": "event_worker"}


def classify(error):
    """An error a job or request met, by class."""
    text = str(error)
    if isinstance(error, asyncpg.exceptions.AdminShutdownError) or "terminating idle connection" in text:
        return "reclaimed"
    if isinstance(error, (asyncpg.exceptions.ConnectionDoesNotExistError, ConnectionError, OSError)):
        return "connection lost"
    if isinstance(error, asyncpg.exceptions.InternalClientError) and "another operation" in text:
        return "connection lost"  # asyncpg, when the server ends a connection it is resetting
    if isinstance(error, asyncpg.exceptions.InterfaceError) and "released back to the pool" in text:
        return "connection lost"  # asyncpg, when the server ends a connection just handed out
    if "timed out waiting for a slot" in text or isinstance(error, asyncio.TimeoutError):
        return "timed out"
    if "has no connection left" in text or "too many clients" in text:
        return "server full"
    if "remaining connection slots are reserved" in text:
        return "refused by PostgreSQL after admission"
    if "reserved for other connection budgets" in text:
        return "reserved for other budgets"
    if "connection budget" in text and "is full" in text:
        return "budget full"
    return type(error).__name__


class Stats:
    """What one process did, sent to the parent once a second."""

    def __init__(self, out, kind, index):
        self.out, self.kind, self.index = out, kind, index
        self.done, self.errors, self.latencies = 0, {}, []
        self.served_at = None  # when its first job was done (seconds since it started)
        self.started = time.monotonic()

    def job(self, latency):
        self.done += 1
        self.latencies.append(latency)
        if self.served_at is None:
            self.served_at = time.monotonic() - self.started

    def error(self, error):
        cls = classify(error)
        if cls == type(error).__name__:  # not one the fleet expects: keep what it said
            cls = "%s: %s" % (cls, str(error)[:120])
        self.errors[cls] = self.errors.get(cls, 0) + 1

    def flush(self, final=False):
        self.out.put((self.kind, self.index, self.done, self.errors, self.latencies, self.served_at, final))
        self.done, self.errors, self.latencies = 0, {}, []


def connect_kwargs(args, kind):
    return dict(host=args.host, port=args.port, user=args.user_prefix + kind, database=args.database,
                server_settings={"application_name": APPS[kind]},
                statement_cache_size=0 if args.no_statement_cache else 100)


async def reporter(stats, stop_at):
    while time.monotonic() < stop_at:
        await asyncio.sleep(1)
        stats.flush()


async def api_main(args, out, stop_at):
    stats = Stats(out, "api", 0)
    pool = None
    while pool is None and time.monotonic() < stop_at:
        try:
            # Connections are replaced after 20 queries and when idle for 2 s: the API logs in
            # again and again while the workers scale.
            pool = await asyncpg.create_pool(min_size=1, max_size=10, max_inactive_connection_lifetime=2,
                                             max_queries=20, **connect_kwargs(args, "api"))
        except Exception as error:  # the API cannot even start
            stats.error(error)
            await asyncio.sleep(0.5)
    report = asyncio.ensure_future(reporter(stats, stop_at))
    tasks = set()

    async def request():
        arrived = time.monotonic()
        try:
            async with pool.acquire(timeout=5) as con:
                await con.execute("SELECT pg_sleep(0.02)")
            stats.job(time.monotonic() - arrived)
        except Exception as error:
            stats.error(error)

    tick = 0
    while time.monotonic() < stop_at:
        burst = 10 if tick % 40 == 0 else 1  # every 2 s, ten requests at once
        for _ in range(burst):
            task = asyncio.ensure_future(request())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        tick += 1
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks, return_exceptions=True)
    await report
    stats.flush(final=True)
    if pool:
        pool.terminate()


async def container_main(args, kind, index, out, stop_at):
    stats = Stats(out, kind, index)
    rng = random.Random("%s-%d-%d" % (kind, index, args.seed))
    jobs = asyncio.Queue()
    report = asyncio.ensure_future(reporter(stats, stop_at))

    async def arrivals():
        jobs.put_nowait(time.monotonic())  # a container starts because there is work
        while time.monotonic() < stop_at:
            await asyncio.sleep(rng.expovariate(1 / args.job_interval))
            jobs.put_nowait(time.monotonic())

    async def run_job(pool, arrived):
        try:
            async with pool.acquire(timeout=15) as con:
                await con.execute("SELECT pg_sleep($1)", rng.uniform(0.05, 0.25))
            stats.job(time.monotonic() - arrived)
        except Exception as error:
            stats.error(error)

    feeder = asyncio.ensure_future(arrivals())
    pool = None
    running = set()
    while time.monotonic() < stop_at:
        if pool is None:
            try:
                pool = await asyncpg.create_pool(min_size=1, max_size=3, timeout=15,
                                                 **connect_kwargs(args, kind))
            except Exception as error:
                stats.error(error)
                await asyncio.sleep(1)  # the container restarts
                continue
        try:
            arrived = await asyncio.wait_for(jobs.get(), timeout=max(0.01, stop_at - time.monotonic()))
        except asyncio.TimeoutError:
            break
        task = asyncio.ensure_future(run_job(pool, arrived))
        running.add(task)
        task.add_done_callback(running.discard)
    feeder.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await report
    stats.flush(final=True)
    if pool:
        pool.terminate()


def process_main(args, kind, index, out, stop_at):
    # A process of its own, as a container is; stop_at is in this machine's monotonic time.
    if kind == "api":
        asyncio.run(api_main(args, out, stop_at))
    else:
        asyncio.run(container_main(args, kind, index, out, stop_at))


async def server_view(con):
    """Sessions per application, and logins waiting per budget and reclaimed so far."""
    sessions = {row[0]: row[1] for row in await con.fetch(
        "SELECT application_name, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1")}
    budgets = {}
    if await con.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_connbudget'"):
        budgets = {row[0]: (row[1], row[2]) for row in await con.fetch(
            "SELECT budget, waiting, reclaimed FROM connbudget.status")}
    return sessions, budgets


def budget_of(kind):
    return "api" if kind == "api" else kind


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run(args):
    monitor = await asyncpg.connect(host=args.host, port=args.monitor_port or args.port, user=args.monitor_user,
                                    database=args.database, server_settings={"application_name": "fleet-monitor"})
    out = multiprocessing.Queue()
    log_offset = os.path.getsize(args.log_file) if args.log_file and os.path.exists(args.log_file) else 0
    start = time.monotonic()
    stop_at = start + args.seconds
    processes = [multiprocessing.Process(target=process_main, args=(args, "api", 0, out, stop_at))]
    for index in range(args.containers):
        for kind in KINDS:
            processes.append(multiprocessing.Process(target=process_main, args=(args, kind, index, out, stop_at)))
    processes[0].start()
    # The workers start a little later, one container after another, over the ramp.
    spacing = args.ramp / max(1, len(processes) - 1)
    next_start = 1
    kinds = ("api",) + KINDS
    totals = {k: {"done": 0, "errors": {}, "latencies": [], "served": {}, "seen": set()} for k in kinds}
    series = []
    header = "    t | " + " | ".join(
        ("%-7s  s   j  e" % "api") if k == "api" else ("%-10s  s  w   j  e" % k) for k in kinds)
    print(header, flush=True)
    second = 0
    while time.monotonic() < stop_at + 3 and (any(p.is_alive() for p in processes[:next_start]) or
                                                next_start < len(processes)):
        # Start the containers due by now.
        while next_start < len(processes) and time.monotonic() >= start + 1 + (next_start - 1) * spacing:
            processes[next_start].start()
            next_start += 1
        await asyncio.sleep(max(0.0, start + second + 1 - time.monotonic()))
        second += 1
        per = {k: {"done": 0, "errors": 0} for k in kinds}
        try:
            while True:
                kind, index, done, errors, latencies, served_at, final = out.get_nowait()
                t = totals[kind]
                t["done"] += done
                t["latencies"] += latencies
                for cls, n in errors.items():
                    t["errors"][cls] = t["errors"].get(cls, 0) + n
                if served_at is not None:
                    t["served"][index] = served_at
                t["seen"].add(index)
                per[kind]["done"] += done
                per[kind]["errors"] += sum(errors.values())
        except queue.Empty:
            pass
        try:
            sessions, budgets = await server_view(monitor)
        except Exception:
            sessions, budgets = {}, {}
        row = {"t": second, "apps": {}}
        cells = []
        for k in kinds:
            s = sessions.get(APPS[k], 0)
            w = budgets.get(budget_of(k), (0, 0))[0]
            row["apps"][k] = {"sessions": s, "waiting": w, "done": per[k]["done"], "errors": per[k]["errors"]}
            if k == "api":
                cells.append("%-7s %2d %3d %2d" % ("", s, per[k]["done"], per[k]["errors"]))
            else:
                cells.append("%-10s %2d %2d %3d %2d" % ("", s, w, per[k]["done"], per[k]["errors"]))
        series.append(row)
        if second <= args.seconds:
            print("%4ds | " % second + " | ".join(cells), flush=True)
    for p in processes:
        p.join(timeout=10)
    try:
        _, budgets = await server_view(monitor)
        refused_after_admission = None
        if args.log_file and os.path.exists(args.log_file):
            with open(args.log_file, errors="replace") as log:
                log.seek(log_offset)
                refused_after_admission = sum("remaining connection slots are reserved" in line for line in log)
    finally:
        await monitor.close()

    summary = {"label": args.label, "seconds": args.seconds, "containers": args.containers, "apps": {},
               "series": series, "refused_by_postgres_after_admission": refused_after_admission}
    for k in kinds:
        t = totals[k]
        count = 1 if k == "api" else args.containers
        served = t["served"]
        never = count - len(served)
        time_to_serve = list(served.values())  # from each container's start
        summary["apps"][k] = {
            "done": t["done"], "errors": t["errors"], "error_count": sum(t["errors"].values()),
            "p50_ms": round(1000 * percentile(t["latencies"], 50), 1) if t["latencies"] else None,
            "p99_ms": round(1000 * percentile(t["latencies"], 99), 1) if t["latencies"] else None,
            "never_served": never,
            "max_seconds_to_first_job": round(max(time_to_serve), 1) if time_to_serve else None,
            "reclaimed": budgets.get(budget_of(k), (0, 0))[1],
        }
    print_summary(summary)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f)
    return summary


def print_summary(summary):
    print("== %s: %d s, %d containers per kind" % (summary["label"], summary["seconds"], summary["containers"]))
    for k, a in summary["apps"].items():
        errors = ", ".join("%s %d" % (cls, n) for cls, n in sorted(a["errors"].items())) or "none"
        total = a["done"] + a["error_count"]
        rate = 100.0 * a["error_count"] / total if total else 0.0
        what = "requests" if k == "api" else "jobs"
        line = "   %-10s %5d %s, errors %d (%.1f%%: %s); latency p50 %s ms, p99 %s ms" % (
            k, a["done"], what, a["error_count"], rate, errors, a["p50_ms"], a["p99_ms"])
        if k != "api":
            line += "; containers never served %d, slowest to its first job %s s; reclaimed %d" % (
                a["never_served"], a["max_seconds_to_first_job"], a["reclaimed"])
        print(line)
    if summary.get("refused_by_postgres_after_admission") is not None:
        print("   logins PostgreSQL refused after pg_connbudget admitted them: %d"
              % summary["refused_by_postgres_after_admission"])
    sys.stdout.flush()


def chart(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = []
    for path in args.results:
        with open(path) as f:
            runs.append(json.load(f))
    colors = {"api": "tab:red", "extraction": "tab:blue", "semantic": "tab:green", "event": "tab:orange"}
    fig, axes = plt.subplots(3, len(runs), figsize=(5.5 * len(runs), 9), sharex=True, sharey="row", squeeze=False)
    for column, run_ in enumerate(runs):
        t = [row["t"] for row in run_["series"]]
        for k in colors:
            apps = [row["apps"].get(k, {}) for row in run_["series"]]
            axes[0][column].plot(t, [a.get("sessions", 0) for a in apps], label=k, color=colors[k])
            axes[1][column].plot(t, [a.get("done", 0) for a in apps], label=k, color=colors[k])
            axes[2][column].plot(t, [a.get("errors", 0) for a in apps], label=k, color=colors[k])
        axes[0][column].set_title(run_["label"])
        axes[2][column].set_xlabel("seconds")
    axes[0][0].set_ylabel("sessions")
    axes[1][0].set_ylabel("jobs (API: requests) per second")
    axes[2][0].set_ylabel("errors per second")
    axes[0][0].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(args.output, dpi=90)
    print("chart written to %s" % args.output)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--host", default=os.environ.get("PGHOST", "/tmp"))
    r.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    r.add_argument("--monitor-port", type=int, help="the server's own port, when --port is a pooler's")
    r.add_argument("--database", default="postgres")
    r.add_argument("--user-prefix", default="", help="roles are <prefix>api, <prefix>extraction, ...")
    r.add_argument("--monitor-user", default="postgres")
    r.add_argument("--seconds", type=int, default=40)
    r.add_argument("--ramp", type=float, default=8.0, help="seconds over which the containers start")
    r.add_argument("--containers", type=int, default=8, help="containers per kind of worker")
    r.add_argument("--job-interval", type=float, default=1.5, help="mean seconds between a container's jobs")
    r.add_argument("--no-statement-cache", action="store_true", help="for PgBouncer's transaction mode")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--label", default="fleet")
    r.add_argument("--json")
    r.add_argument("--log-file", help="the server log, to count logins PostgreSQL refused after admission")
    c = sub.add_parser("chart")
    c.add_argument("--output", required=True)
    c.add_argument("results", nargs="+")
    args = parser.parse_args()
    if args.command == "run":
        multiprocessing.set_start_method("spawn")  # containers share nothing with this process
        asyncio.run(run(args))
    else:
        chart(args)


if __name__ == "__main__":
    main()
