#!/usr/bin/env python3
"""The benchmark suite behind bench/run: starts each server pinned to one
core, loads it from the other, measures, and writes the results folder.

Run it through bench/run (which installs the tools and builds the binaries);
`python3 bench/suite.py --help` lists the options.

Every run is a fresh server process. Rounds are interleaved: round 1 runs
every scenario against every server, then round 2, … so a slow minute of
the machine hits all servers alike. Figures are medians over the rounds.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = "0"
LOAD_CORE = "1"
HOST = "127.0.0.1"


# --- the servers -----------------------------------------------------------

class Server:
    """One server under test: how to start it and which port it serves."""

    def __init__(self, name, port, argv, python=False, note=""):
        self.name, self.port, self.argv, self.python, self.note = name, port, argv, python, note

    def url(self):
        return "http://%s:%d/" % (HOST, self.port)


def nofile_hard():
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)


def nginx_conf(dirpath, port):
    """An nginx config that needs nothing from the system: its own prefix,
    pid, logs and temp paths in `dirpath`."""
    dirpath.mkdir(parents=True, exist_ok=True)
    (dirpath / "logs").mkdir(exist_ok=True)
    (dirpath / "tmp").mkdir(exist_ok=True)
    conf = dirpath / "nginx.conf"
    conf.write_text("""# nginx as the reference: one worker (one pinned core), no access log,
# keep-alive never cut at 1000 requests.
worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen {host}:{port} backlog=1024;
        location / {{ return 200 "Hello, world!"; }}
    }}
}}
""".format(d=dirpath, host=HOST, port=port, nofile=nofile_hard()))
    return conf


def servers(args, out):
    tutorial = Path(args.shared) / "reference" / "tutorial_server.py"
    ngx_dir = out / "nginx"
    conf = nginx_conf(ngx_dir, 18082)
    all_servers = [
        Server("sockit", 18081, [args.sockit, "serve", "--listen", "%s:18081" % HOST],
               note="sockit serve, default verbosity (no -q)"),
        Server("nginx", 18082, ["nginx", "-p", str(ngx_dir), "-c", str(conf)]),
        Server("hyper", 18083, [args.hyper, "%s:18083" % HOST]),
        Server("tutorial", 18084, ["python3", str(tutorial), "18084", "http"], python=True,
               note="tutorial_server.py http: thread per connection, closes after each reply"),
        Server("threading", 18085, ["python3", str(BENCH / "threading_server.py"), "18085"],
               python=True, note="socketserver.ThreadingTCPServer, keep-alive"),
    ]
    if args.baseline:
        all_servers.insert(1, Server("baseline", 18086, [args.baseline, "serve", "--listen", "%s:18086" % HOST],
                                     note="an earlier sockit build (--baseline), default verbosity"))
    if not tutorial.exists():
        print("bench: %s not found: skipping the tutorial server" % tutorial, file=sys.stderr)
        all_servers = [s for s in all_servers if s.name != "tutorial"]
    return all_servers


# --- the scenarios ---------------------------------------------------------

class Scenario:
    def __init__(self, name, title, wrk_args, script="report.lua", idle=0, skip=None):
        self.name, self.title, self.wrk_args, self.script, self.idle = name, title, wrk_args, script, idle
        # server name -> why it is skipped
        self.skip = skip or {}


def scenarios(quick):
    idle = 1000 if quick else 10000
    return [
        Scenario("keepalive", "keep-alive, 50 connections", ["-c50"]),
        Scenario("close", "connection per request (Connection: close), 50 connections",
                 ["-c50", "-H", "Connection: close"]),
        Scenario("c1000", "1,000 connections, keep-alive", ["-c1000"],
                 skip={"tutorial": "a thread per connection cannot keep up with 1,000 "
                                   "concurrent connects (listen backlog overflows, timeouts)",
                       "threading": "a thread per connection cannot keep up with 1,000 "
                                    "concurrent connects (listen backlog overflows, timeouts)"}),
        Scenario("pipeline16", "pipelined, 16 requests per write, 50 connections", ["-c50"],
                 script="pipeline.lua",
                 skip={"tutorial": "answers one request per connection (recv once, reply, "
                                   "close): pipelined requests are dropped"}),
        Scenario("idle%dk" % (idle // 1000) if idle >= 1000 else "idle",
                 "%s idle keep-alive connections held open while 50 connections load it" % format(idle, ","),
                 ["-c50"], idle=idle,
                 skip={"tutorial": "closes every connection after one reply: nothing to hold",
                       "threading": "a thread per idle connection: not a contender"}),
    ]


# --- /proc -----------------------------------------------------------------

def children(pid):
    try:
        return [int(p) for p in Path("/proc/%d/task/%d/children" % (pid, pid)).read_text().split()]
    except OSError:
        return []


def cpu_ticks(pids):
    """utime + stime of the processes (all their threads), in clock ticks."""
    total = 0
    for pid in pids:
        try:
            fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total


def status_kib(pids, key):
    total = 0
    for pid in pids:
        try:
            for line in Path("/proc/%d/status" % pid).read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


# --- running things --------------------------------------------------------

class Log:
    """commands.txt: every command, exactly as run."""

    def __init__(self, path):
        self.file = open(path, "a")

    def command(self, argv, note=""):
        self.file.write(("# %s\n" % note if note else "") + " ".join(shlex.quote(a) for a in argv) + "\n")
        self.file.flush()


def wait_for_port(port, proc, limit=15.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d after %.0fs" % (port, limit))


def port_free(port, limit=10.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                time.sleep(0.1)
        except OSError:
            return
    raise RuntimeError("port %d still answers: another server is running there" % port)


class Running:
    """A started server: its process and the pids to measure."""

    def __init__(self, server, log):
        port_free(server.port)
        argv = ["taskset", "-c", SERVER_CORE] + server.argv
        log.command(argv, "server %s" % server.name)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
        self.server = server
        wait_for_port(server.port, self.proc)
        self.pids = [self.proc.pid] + children(self.proc.pid)
        # taskset execs, so proc.pid is the server itself; nginx forks its worker.
        deadline = time.time() + 5
        while server.name == "nginx" and len(self.pids) < 2 and time.time() < deadline:
            time.sleep(0.05)
            self.pids = [self.proc.pid] + children(self.proc.pid)

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            for pid in reversed(self.pids):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # Reap nothing else: workers are nginx's children, gone with it.
            break


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def wait4(proc, limit):
    """Waits for `proc` and returns (stdout, user+sys CPU seconds) from
    getrusage via wait4(2)."""
    deadline = time.time() + limit
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            out = proc.stdout.read() if proc.stdout else ""
            return out, usage.ru_utime + usage.ru_stime
        if time.time() > deadline:
            proc.kill()
            limit = 5
            deadline = time.time() + 5
        time.sleep(0.02)


def run_wrk(url, scenario, duration, log, raw_name, raw_dir):
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-d%ss" % duration, "--timeout", "2s",
            "-s", str(BENCH / scenario.script)] + scenario.wrk_args + [url]
    log.command(argv, raw_name)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=raise_nofile)
    out, cpu = wait4(proc, duration + 30)
    (raw_dir / (raw_name + ".txt")).write_text(out)
    for line in out.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[len("WRKJSON "):])
            result["load_cpu_s"] = cpu
            return result
    raise RuntimeError("no report from wrk:\n" + out)


def run_one(server, scenario, duration, log, raw_dir, rnd):
    name = "%s-%s-%d" % (scenario.name, server.name, rnd)
    running = Running(server, log)
    holder = None
    try:
        rss_before = status_kib(running.pids, "VmRSS")
        held = 0
        rss_held = None
        if scenario.idle:
            argv = ["taskset", "-c", LOAD_CORE, "python3", str(BENCH / "hold.py"), HOST,
                    str(server.port), str(scenario.idle)]
            log.command(argv, name + " idle connections")
            holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, preexec_fn=raise_nofile)
            line = holder.stdout.readline()
            if not line.startswith("held "):
                raise RuntimeError("hold.py failed: %r" % line)
            held = int(line.split()[1])
            time.sleep(0.5)  # let the server settle (and free idle buffers)
            rss_held = status_kib(running.pids, "VmRSS")
        cpu0 = cpu_ticks(running.pids)
        t0 = time.time()
        result = run_wrk(server.url(), scenario, duration, log, name, raw_dir)
        wall = time.time() - t0
        cpu = (cpu_ticks(running.pids) - cpu0) / CLK_TCK
        result.update({
            "server": server.name, "scenario": scenario.name, "round": rnd,
            "rps": result["requests"] / (result["duration_us"] / 1e6),
            "errors": result["connect"] + result["read"] + result["write"] + result["status"] + result["timeout"],
            "server_cpu_s": cpu,
            "server_cpu_us_per_req": cpu * 1e6 / max(result["requests"], 1),
            "peak_rss_kib": status_kib(running.pids, "VmHWM"),
            "rss_before_kib": rss_before, "rss_held_kib": rss_held, "held": held,
            "rss_per_idle_kib": ((rss_held - rss_before) / held) if held else None,
            "wall_s": wall,
        })
        if holder and holder.poll() is not None:
            result["note"] = "holder exited early"
        return result
    finally:
        if holder:
            holder.stdin.close()
            holder.kill()
            holder.wait()
        running.stop()


# --- point 7: sockit bench vs wrk --------------------------------------------

def compare(args, all_servers, log, raw_dir, rounds, duration):
    """sockit bench -t1 -c50 and wrk -t1 -c50, each pinned to the load core,
    against nginx and the tutorial server on the server core."""
    results = []
    targets = [s for s in all_servers if s.name in ("nginx", "tutorial")]
    for rnd in range(1, rounds + 1):
        for server in targets:
            # Full length for the Python server too: its throughput is noisy.
            d = duration
            running = Running(server, log)
            try:
                tools = ["wrk", "sockit"] if rnd % 2 else ["sockit", "wrk"]
                for tool in tools:
                    name = "compare-%s-%s-%d" % (server.name, tool, rnd)
                    cpu0 = cpu_ticks(running.pids)
                    if tool == "wrk":
                        r = run_wrk(server.url(), Scenario("compare", "", ["-c50"]), d, log, name, raw_dir)
                        rps = r["requests"] / (r["duration_us"] / 1e6)
                        p50, reqs, errors = r["p50_us"], r["requests"], r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
                        cpu = r["load_cpu_s"]
                    else:
                        argv = ["taskset", "-c", LOAD_CORE, args.sockit, "bench", "-t1", "-c50",
                                "-d%s" % d, "--json", server.url()]
                        log.command(argv, name)
                        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                text=True, preexec_fn=raise_nofile)
                        out, cpu = wait4(proc, d + 30)
                        (raw_dir / (name + ".json")).write_text(out)
                        j = json.loads(out)
                        rps, p50, reqs, errors = j["requests_per_sec"], j["latency"]["p50_us"], j["requests"], j["errors"]["total"]
                    server_cpu = (cpu_ticks(running.pids) - cpu0) / CLK_TCK
                    results.append({"target": server.name, "tool": tool, "round": rnd, "rps": rps,
                                    "p50_us": p50, "requests": reqs, "errors": errors,
                                    "load_cpu_us_per_req": cpu * 1e6 / max(reqs, 1),
                                    "server_cpu_us_per_req": server_cpu * 1e6 / max(reqs, 1)})
                    print("  %-28s %10.0f req/s  p50 %8.0fus  load CPU %.2f us/req" % (
                        name, rps, p50, cpu * 1e6 / max(reqs, 1)), flush=True)
            finally:
                running.stop()
    return results


# --- summary ---------------------------------------------------------------

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return ("{:,.%df}" % digits).format(v)


def ratio(v, ref):
    if v is None or not ref:
        return "–"
    return "%.2f×" % (v / ref)


def summarize(out, meta, runs, cmp_runs, all_scenarios, all_servers, quick):
    lines = ["# Benchmark results %s" % meta["date"], ""]
    lines += ["Machine: %s, %s cores, %s; kernel %s." % (meta["cpu"], meta["cores"], meta["memory"], meta["kernel"]),
              "Command: `%s`" % meta["command"], "",
              "Each server is pinned to core %s (`taskset -c %s`), the load generator (wrk %s, `-t1`) "
              "to core %s; each run is a fresh server process; rounds are interleaved; figures are "
              "medians of %d round(s) (req/s also shows min–max). CPU µs/req is the server's "
              "utime+stime over the run (from /proc/PID/stat) divided by the requests. Peak RSS is "
              "VmHWM. Ratios are to nginx in the same run. Server output goes to /dev/null."
              % (SERVER_CORE, SERVER_CORE, meta["versions"].get("wrk", "?"), LOAD_CORE, meta["rounds"]),
              ""]
    if quick:
        lines += ["**Quick smoke run**: one short run per scenario, fewer idle connections; "
                  "not figures to quote.", ""]
    by = {}
    for r in runs:
        by.setdefault((r["scenario"], r["server"]), []).append(r)
    medians = {}
    for sc in all_scenarios:
        lines += ["## %s" % sc.title, ""]
        head = "| server | req/s | min–max | ×nginx | p50 µs | p99 µs | p99.9 µs | p99 ×nginx | errors | peak RSS MiB | ×nginx | CPU µs/req | ×nginx |"
        if sc.idle:
            head += " RSS before MiB | RSS holding idle MiB | growth KiB/idle conn | RSS holding ×nginx |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        ref = None
        for srv in all_servers:
            rs = by.get((sc.name, srv.name))
            if not rs:
                continue
            m = {k: med([r.get(k) for r in rs]) for k in
                 ("rps", "p50_us", "p99_us", "p99_9_us", "peak_rss_kib", "server_cpu_us_per_req",
                  "rss_before_kib", "rss_held_kib", "rss_per_idle_kib")}
            m["errors"] = sum(r["errors"] for r in rs)
            m["min"] = min(r["rps"] for r in rs)
            m["max"] = max(r["rps"] for r in rs)
            medians[(sc.name, srv.name)] = m
            if srv.name == "nginx":
                ref = m
        for srv in all_servers:
            if srv.name in sc.skip:
                lines.append("| %s | skipped: %s |" % (srv.name, sc.skip[srv.name]) + " |" * (head.count("|") - 3))
                continue
            m = medians.get((sc.name, srv.name))
            if not m:
                continue
            r0 = ref or {}
            row = "| %s | %s | %s–%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                srv.name, fmt(m["rps"]), fmt(m["min"]), fmt(m["max"]), ratio(m["rps"], r0.get("rps")),
                fmt(m["p50_us"]), fmt(m["p99_us"]), fmt(m["p99_9_us"]), ratio(m["p99_us"], r0.get("p99_us")),
                fmt(m["errors"]), fmt(m["peak_rss_kib"] and m["peak_rss_kib"] / 1024, 1),
                ratio(m["peak_rss_kib"], r0.get("peak_rss_kib")),
                fmt(m["server_cpu_us_per_req"], 2), ratio(m["server_cpu_us_per_req"], r0.get("server_cpu_us_per_req")))
            if sc.idle:
                row += " %s | %s | %s | %s |" % (
                    fmt(m["rss_before_kib"] and m["rss_before_kib"] / 1024, 1),
                    fmt(m["rss_held_kib"] and m["rss_held_kib"] / 1024, 1),
                    fmt(m["rss_per_idle_kib"], 2), ratio(m["rss_held_kib"], r0.get("rss_held_kib")))
            lines.append(row)
        if sc.script == "pipeline.lua":
            lines.append("")
            lines.append("wrk records one latency sample per pipelined batch, and none for some "
                         "batches, so these percentiles (0 where it recorded too few) are not "
                         "comparable; req/s and CPU µs/req are.")
        lines.append("")
    if any(srv.name == "baseline" for srv in all_servers):
        lines += baseline_section(medians, all_scenarios)
    lines += targets_section(medians, all_scenarios)
    if cmp_runs:
        lines += compare_section(cmp_runs)
    lines += ["## Files", "",
              "- `commands.txt`: every command, as run", "- `versions.txt`: tools and machine",
              "- `runs.jsonl`: one JSON object per run (all figures)",
              "- `raw/`: each load generator's output", ""]
    (out / "summary.md").write_text("\n".join(lines))
    return "\n".join(lines)


def baseline_section(medians, all_scenarios):
    """sockit against the --baseline build, scenario by scenario."""
    lines = ["## sockit against the baseline build (same run)", "",
             "| scenario | req/s ×baseline | p99 ×baseline | CPU µs/req ×baseline | peak RSS ×baseline | growth KiB/idle conn (baseline) |",
             "|---|---|---|---|---|---|"]
    for sc in all_scenarios:
        new, old = medians.get((sc.name, "sockit")), medians.get((sc.name, "baseline"))
        if not new or not old:
            continue
        growth = "%s (%s)" % (fmt(new["rss_per_idle_kib"], 2), fmt(old["rss_per_idle_kib"], 2)) if sc.idle else "–"
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            sc.name, ratio(new["rps"], old["rps"]), ratio(new["p99_us"], old["p99_us"]),
            ratio(new["server_cpu_us_per_req"], old["server_cpu_us_per_req"]),
            ratio(new["peak_rss_kib"], old["peak_rss_kib"]), growth))
    return lines + [""]


def targets_section(medians, all_scenarios):
    """The issue's targets for the hello server, each met or missed."""
    def get(sc, srv, key):
        return (medians.get((sc, srv)) or {}).get(key)
    idle = next((s.name for s in all_scenarios if s.idle), None)
    checks = []

    def check(what, v, ref, ok):
        if v is None or ref is None:
            checks.append("| %s | – | – | – | not measured |" % what)
        else:
            digits = 2 if isinstance(v, float) and v < 100 else 0
            checks.append("| %s | %s | %s | %s | %s |" % (
                what, fmt(v, digits), fmt(ref, digits), ratio(v, ref) if ref else "–",
                "met" if ok(v, ref) else "**missed**"))

    check("keep-alive req/s ≥ 1.0× nginx", get("keepalive", "sockit", "rps"), get("keepalive", "nginx", "rps"), lambda v, r: v >= r)
    check("keep-alive CPU µs/req ≤ 0.85× nginx", get("keepalive", "sockit", "server_cpu_us_per_req"),
          get("keepalive", "nginx", "server_cpu_us_per_req"), lambda v, r: v <= 0.85 * r)
    check("connection per request req/s ≥ 1.1× nginx", get("close", "sockit", "rps"), get("close", "nginx", "rps"), lambda v, r: v >= 1.1 * r)
    check("1,000 connections req/s ≥ 1.0× nginx", get("c1000", "sockit", "rps"), get("c1000", "nginx", "rps"), lambda v, r: v >= r)
    check("1,000 connections p99 ≤ nginx (µs)", get("c1000", "sockit", "p99_us"), get("c1000", "nginx", "p99_us"), lambda v, r: v <= r)
    check("1,000 connections errors = 0", get("c1000", "sockit", "errors"), 0, lambda v, r: v == 0)
    check("pipelined req/s ≥ 1.0× nginx", get("pipeline16", "sockit", "rps"), get("pipeline16", "nginx", "rps"), lambda v, r: v >= r)
    if idle:
        check("RSS holding idle connections ≤ nginx (KiB)", get(idle, "sockit", "rss_held_kib"), get(idle, "nginx", "rss_held_kib"), lambda v, r: v <= r)
    check("peak RSS under keep-alive load ≤ nginx (KiB)", get("keepalive", "sockit", "peak_rss_kib"), get("keepalive", "nginx", "peak_rss_kib"), lambda v, r: v <= r)
    return ["## The hello server's targets (issue 5)", "", "| target | sockit | nginx | ratio | |", "|---|---|---|---|---|"] + checks + [""]


def compare_section(cmp_runs):
    rounds = len({r["round"] for r in cmp_runs})
    lines = ["## sockit bench vs wrk, per core (`-t1 -c50`, both pinned to the one load core; median of %d interleaved rounds)" % rounds, "",
             "| target | tool | req/s per core (min–max) | p50 µs | load generator CPU µs/req (getrusage) | errors |", "|---|---|---|---|---|---|"]
    meds = {}
    for target in ("nginx", "tutorial"):
        for tool in ("wrk", "sockit"):
            rs = [r for r in cmp_runs if r["target"] == target and r["tool"] == tool]
            if not rs:
                continue
            m = {k: med([r[k] for r in rs]) for k in ("rps", "p50_us", "load_cpu_us_per_req")}
            m["errors"] = sum(r["errors"] for r in rs)
            meds[(target, tool)] = m
            label = "sockit bench" if tool == "sockit" else "wrk"
            spread = "%s (%s–%s)" % (fmt(m["rps"]), fmt(min(r["rps"] for r in rs)), fmt(max(r["rps"] for r in rs)))
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                target, label, spread, fmt(m["p50_us"]), fmt(m["load_cpu_us_per_req"], 2), m["errors"]))
    lines.append("")
    for target in ("nginx", "tutorial"):
        w, s = meds.get((target, "wrk")), meds.get((target, "sockit"))
        if w and s:
            lines.append("- %s, per core: sockit bench/wrk req/s %.2f×, p50 %.2f×, load CPU per request %.2f×" % (
                target, s["rps"] / w["rps"], s["p50_us"] / w["p50_us"] if w["p50_us"] else 0,
                s["load_cpu_us_per_req"] / w["load_cpu_us_per_req"] if w["load_cpu_us_per_req"] else 0))
    lines.append("")
    return lines


# --- metadata --------------------------------------------------------------

def capture(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else ""
    except (OSError, subprocess.TimeoutExpired):
        return "not available"


def metadata(args, out):
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = "%.0f GiB RAM" % (kib / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    hyper_version = "?"
    lock = BENCH / "hyper-hello" / "Cargo.lock"
    if lock.exists():
        text = lock.read_text()
        i = text.find('name = "hyper"\nversion = "')
        if i >= 0:
            hyper_version = text[i:].split('"')[3]
    versions = {
        "wrk": capture(["wrk", "-v"]).split(" [")[0].replace("wrk ", ""),
        "nginx": capture(["nginx", "-v"]),
        "python3": capture(["python3", "--version"]),
        "sockit": capture([args.sockit, "--version"]),
        "rustc": capture(["rustc", "--version"]),
        "hyper": "hyper " + hyper_version,
        "kernel": platform.release(),
        "somaxconn": Path("/proc/sys/net/core/somaxconn").read_text().strip(),
        "tcp_tw_reuse": Path("/proc/sys/net/ipv4/tcp_tw_reuse").read_text().strip(),
        "ip_local_port_range": Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().strip(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().strip(),
    }
    (out / "versions.txt").write_text("".join("%s: %s\n" % kv for kv in versions.items()))
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "versions": versions, "command": args.command, "rounds": args.rounds}


# --- main ------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockit", required=True, help="the sockit release binary")
    p.add_argument("--hyper", required=True, help="the hyper-hello release binary")
    p.add_argument("--shared", default=str(ROOT.parent / "shared"), help="the shared/ folder (tutorial_server.py)")
    p.add_argument("--out", required=True, help="the results folder")
    p.add_argument("--quick", action="store_true", help="smoke form: one short run per scenario")
    p.add_argument("--compare", action="store_true", help="only the sockit bench vs wrk comparison")
    p.add_argument("--no-compare", action="store_true", help="skip the sockit bench vs wrk comparison")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds (default: 3; 5 with --compare, whose verdict is a median of 5)")
    p.add_argument("--duration", type=int, default=5, help="seconds per run (Python servers: a third)")
    p.add_argument("--only", default="", help="comma-separated server names to run (default: all)")
    p.add_argument("--baseline", default="",
                   help="an earlier sockit binary to run beside --sockit (server name 'baseline'): "
                        "the summary then adds each figure's ratio to it, to show a change does not regress")
    p.add_argument("--command", default="bench/run", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rounds is None:
        args.rounds = 5 if args.compare else 3
    if args.quick:
        args.rounds, args.duration = 1, 1
    out = Path(args.out).resolve()
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    log = Log(out / "commands.txt")
    meta = metadata(args, out)
    all_servers = servers(args, out)
    if args.only:
        keep = set(args.only.split(","))
        all_servers = [s for s in all_servers if s.name in keep or s.name == "nginx"]
    all_scenarios = scenarios(args.quick)
    runs = []
    started = time.time()
    if not args.compare:
        for rnd in range(1, args.rounds + 1):
            for sc in all_scenarios:
                for srv in all_servers:
                    if srv.name in sc.skip:
                        continue
                    d = args.duration if not srv.python else max(2, args.duration // 3)
                    try:
                        r = run_one(srv, sc, d, log, raw, rnd)
                    except Exception as e:  # one failed run is reported, not fatal
                        print("bench: %s %s round %d failed: %s" % (sc.name, srv.name, rnd, e), file=sys.stderr)
                        continue
                    runs.append(r)
                    with open(out / "runs.jsonl", "a") as f:
                        f.write(json.dumps(r) + "\n")
                    print("  round %d  %-11s %-10s %10.0f req/s  p99 %8.0fus  errors %-6d  CPU %.2f us/req  peak RSS %.1f MiB%s" % (
                        rnd, sc.name, srv.name, r["rps"], r["p99_us"], r["errors"], r["server_cpu_us_per_req"],
                        r["peak_rss_kib"] / 1024,
                        "  held %d: %+.2f KiB/conn" % (r["held"], r["rss_per_idle_kib"]) if r["held"] else ""), flush=True)
    cmp_runs = []
    if args.compare or not args.no_compare:
        print("sockit bench vs wrk:", flush=True)
        cmp_runs = compare(args, all_servers, log, raw, args.rounds, args.duration)
        with open(out / "compare.jsonl", "a") as f:
            for r in cmp_runs:
                f.write(json.dumps(r) + "\n")
    text = summarize(out, meta, runs, cmp_runs, [] if args.compare else all_scenarios, all_servers, args.quick)
    print()
    print(text)
    print("bench: %d runs in %.0fs; results in %s" % (len(runs) + len(cmp_runs), time.time() - started, out))


if __name__ == "__main__":
    main()
