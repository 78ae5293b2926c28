#!/usr/bin/env python3
"""The harness behind scripts/bench: the gateway against the broker limit and against the
store-and-forward setup a user would otherwise build, in one run on one machine.

  limit        bench_mqtt pub: the same signed IF-021 envelopes straight to the backbone
               broker, QoS 1, a window of 256 (no parsing, no journal);
  gateway      D0036 files renamed into the inbox -> mhhs-gatewayd (journal synchronous=FULL,
               ECDSA P-256 signatures, AES-256-GCM payloads) -> the backbone;
  alternative  mosquitto_pub -l (QoS 1) into a local Mosquitto with persistence, bridged with
               QoS 1 to the backbone.

Every run is counted by the same subscriber on the backbone (bench_mqtt sub, on Paho C++).
Latency runs from the file's rename into the inbox (gateway) or the hand-over to the client
(limit, alternative) to receipt at the subscriber. Each path's result also holds the backbone
broker's CPU per 1 000 events (broker_cpu_s_per_1000); the gateway's, its threads' CPU.
Writes OUT/result.json, OUT/timeline-*.dat and OUT/delivered.png, and ends with the line
  bench: gateway/limit R1, gateway/alternative R2

For looking into it (environment):
  BENCH_PERF_ARGS="..."   perf record options for --profile (default: -g -F 4000), e.g.
                          "--call-graph dwarf,32768 -F 1999" or "-e sched:sched_switch"
  BENCH_PROFILE_ALL=1     with --profile, record the whole machine (broker and subscriber too);
                          the limit run is recorded too (perf-limit.data) when it runs, i.e.
                          with bench.py --profile --only limit (scripts/bench --profile runs
                          the gateway alone)
  BENCH_BROKER_EXTRA="a;b" lines added to the backbone broker's configuration
  BENCH_SUBSCRIBER=wire   count with bench_mqtt wiresub instead (the gateway's own MQTT client:
                          many messages per read, one write per 16 acknowledgements; about half
                          the subscriber's CPU). Not the default: in interleaved runs the
                          alternative measured up to 10 % slower with it (docs/performance.md)
"""
import argparse
import json
import os
import signal
import shutil
import socket
import statistics
import subprocess
import sys
import time

TOPIC = "mhhs/SIT/IF-021/SDS/UDMS"
SECURITY = """[security]
key = {keys}/participant.key
certificate = {keys}/participant.crt
policy = {source}/config/policy.ini
journal_key_file = {keys}/journal.key
sign_batches = {sign_batches}
"""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("process exited while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def proc_stats(pid):
    """Peak resident memory (kB) and CPU seconds of a live process."""
    hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return hwm, cpu


def thread_cpu(pid):
    """CPU seconds and context switches (voluntary + involuntary) of each thread of a live
    process, by thread name."""
    ticks = os.sysconf("SC_CLK_TCK")
    out, switches = {}, {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                text = f.read()
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                n = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            continue
        name = text.split("(", 1)[1].rsplit(")", 1)[0]
        fields = text.rsplit(")", 1)[1].split()
        out[name] = round(out.get(name, 0) + (int(fields[11]) + int(fields[12])) / ticks, 2)
        switches[name] = switches.get(name, 0) + n
    return out, switches


def machine_cpu():
    """(busy, total) jiffies of the whole machine, for how many cores a run kept busy."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def busy_cores(before):
    after = machine_cpu()
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(busy / max(total, 1) * os.cpu_count(), 2)


class Mosquitto:
    def __init__(self, workdir, port, extra=""):
        os.makedirs(workdir, exist_ok=True)
        self.port = port
        user = "user root\n" if os.geteuid() == 0 else ""
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(user + "listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                    "max_inflight_messages 0\nlog_dest file %s/mosquitto.log\n%s" % (port, workdir, extra))
            if not extra:  # the backbone
                f.write(os.environ.get("BENCH_BROKER_EXTRA", "").replace(";", "\n") + "\n")
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


class Subscriber:
    def __init__(self, tools, port, expect, out, name, idle=60):
        self.out = out
        kind = "wiresub" if os.environ.get("BENCH_SUBSCRIBER") == "wire" else "sub"
        self.proc = subprocess.Popen(
            [tools, kind, "--uri", "tcp://127.0.0.1:%d" % port, "--filter", "mhhs/#", "--expect", str(expect),
             "--out", out, "--idle-timeout", str(idle), "--client-id", name],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("subscriber did not start: %r" % line)

    def wait(self, timeout):
        out, _ = self.proc.communicate(timeout=timeout)
        return out.strip()


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[0]:
                rows.append(parts)
    return rows


def pct(sorted_values, p):
    if not sorted_values:
        return 0.0
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def analyse(name, recv_path, origins, expected, rss_kb, cpu_s, out_dir):
    """origins: id -> unix ns when the event entered this path."""
    first = {}
    received = 0
    for row in read_rows(recv_path):
        received += 1
        ident, ns, size = row[0], int(row[1]), int(row[2])
        if ident not in first:
            first[ident] = (ns, size)
    unique = len(first)
    missing = [i for i in origins if i not in first]
    start = min(origins.values())
    end = max(ns for ns, _ in first.values()) if first else start
    secs = max((end - start) / 1e9, 1e-9)
    nbytes = sum(size for _, size in first.values())
    lat = sorted((first[i][0] - origins[i]) / 1e6 for i in first if i in origins)
    # Events delivered over time, for the chart.
    times = sorted((ns - start) / 1e9 for ns, _ in first.values())
    with open(os.path.join(out_dir, "timeline-%s.dat" % name), "w") as f:
        f.write("0 0\n")
        step = max(1, len(times) // 400)
        for i in range(0, len(times), step):
            f.write("%.4f %d\n" % (times[i], i + 1))
        if times:
            f.write("%.4f %d\n" % (times[-1], len(times)))
    return {
        "events": unique,
        "expected": expected,
        "lost": len(missing),
        "duplicates": received - unique,
        "seconds": round(secs, 3),
        "events_per_s": round(unique / secs, 1),
        "mb_per_s": round(nbytes / secs / 1e6, 2),
        "latency_p50_ms": round(pct(lat, 50), 1),
        "latency_p99_ms": round(pct(lat, 99), 1),
        "peak_rss_mb": round(rss_kb / 1024.0, 1),
        "cpu_s_per_1000": round(cpu_s / max(unique, 1) * 1000, 3),
    }


def make_corpus(args, work):
    corpus = os.path.join(work, "corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    files = max(1, args.events // args.mpans_per_file)
    subprocess.run([sys.executable, os.path.join(args.source, "tests/tools/gen_d0036.py"), corpus, "--files", str(files),
                    "--mpans", str(args.mpans_per_file), "--days", "1", "--to-mpid", "MRCY"],
                   check=True, stdout=subprocess.DEVNULL)
    return sorted(os.path.join(corpus, f) for f in os.listdir(corpus) if f.endswith(".uff"))


def make_keys(work):
    keys = os.path.join(work, "keys")
    os.makedirs(keys, exist_ok=True)
    os.chmod(keys, 0o700)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "30", "-subj", "/CN=UDMS", "-addext", "keyUsage=critical,digitalSignature",
                    "-keyout", keys + "/participant.key", "-out", keys + "/participant.crt"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(keys + "/participant.key", 0o600)
    with open(keys + "/journal.key", "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(keys + "/journal.key", 0o600)
    return keys


def gateway_config(args, work, keys, broker_port, admin="off", journal_dir=None, extra=""):
    gw = os.path.join(work, "gateway")
    shutil.rmtree(gw, ignore_errors=True)
    for d in ("inbox", "archive", "rejected", "staging"):
        os.makedirs(os.path.join(gw, d))
    journal_dir = journal_dir or gw
    path = os.path.join(gw, "gateway.ini")
    with open(path, "w") as f:
        f.write("""[gateway]
participant_mpid = UDMS
participant_role = C
environment = SIT
dip_id = 1009012345
flow_dir = {flows}
admin_listen = {admin}
log_level = {log_level}
[dip]
role = SDS
distributor_dip_id = 2509012345
[journal]
path = {journal}/journal.db
{security}[source.inbox]
type = file
directory = {gw}/inbox
archive = {gw}/archive
rejected = {gw}/rejected
format = dtn
settle_ms = 0
poll_ms = 50
[sink.backbone]
type = mqtt
uri = tcp://127.0.0.1:{port}
client_id = UDMS-gw-bench
qos = 1
max_inflight = 256
{extra}[route.all]
from = inbox
to = backbone
""".format(flows=os.path.join(args.source, "config/flows"), gw=gw, keys=keys, source=args.source, port=broker_port,
           admin=admin, journal=journal_dir, extra=extra, log_level=os.environ.get("BENCH_LOG_LEVEL", "notice"),
           security="" if os.environ.get("BENCH_SECURITY") == "off" else SECURITY.format(
               keys=keys, source=args.source, sign_batches=os.environ.get("BENCH_SIGN_BATCHES", "true"))))
    return gw, path


def envelopes(args, files, config, work):
    """Signed envelopes for every file, as the gateway would publish them; id -> file."""
    out_path = os.path.join(work, "envelopes.jsonl")
    owner = {}
    with open(out_path, "w") as out:
        for path in files:
            sign = [] if os.environ.get("BENCH_SECURITY") == "off" else ["--sign"]
            text = subprocess.run([args.ctl, "--config", config, "convert"] + sign + [path], check=True,
                                  stdout=subprocess.PIPE, text=True).stdout
            for line in text.splitlines():
                if not line:
                    continue
                ident = line.split('"id":"', 1)[1].split('"', 1)[0]
                owner[ident] = os.path.basename(path)
                out.write(line + "\n")
    return out_path, owner


def perf_args():
    return os.environ["BENCH_PERF_ARGS"].split() if os.environ.get("BENCH_PERF_ARGS") else ["-g", "-F", "4000"]


def run_limit(args, work, env_path, ids, broker):
    log("limit: bench_mqtt pub straight to the broker, QoS 1, window 256")
    sub = Subscriber(args.tools, broker.port, len(ids), os.path.join(work, "limit.recv"), "sub-limit")
    cpu0 = machine_cpu()
    perf = None
    if args.profile and os.environ.get("BENCH_PROFILE_ALL"):
        perf = subprocess.Popen(["perf", "record"] + perf_args() + ["-a", "-o", os.path.join(work, "perf-limit.data")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    pub = subprocess.run([args.tools, "pub", "--uri", "tcp://127.0.0.1:%d" % broker.port, "--topic", TOPIC, "--input",
                          env_path, "--times", os.path.join(work, "limit.send"), "--window", "256"],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    log("limit: " + pub.strip() + "; subscriber: " + sub.wait(600))
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    busy = busy_cores(cpu0)
    # "sent N in S s, cpu C s, maxrss K kB"
    words = pub.split()
    cpu = float(words[words.index("cpu") + 1])
    rss = int(words[words.index("maxrss") + 1])
    origins = {r[0]: int(r[1]) for r in read_rows(os.path.join(work, "limit.send"))}
    result = analyse("limit", os.path.join(work, "limit.recv"), origins, len(ids), rss, cpu, args.out)
    result["machine_busy_cores"] = busy
    return result


def run_gateway(args, work, files, owner, keys, broker):
    log("gateway: %d files renamed into the inbox -> mhhs-gatewayd -> the broker" % len(files))
    gw, config = gateway_config(args, work, keys, broker.port, journal_dir=os.environ.get("BENCH_JOURNAL_DIR"))
    logf = open(os.path.join(work, "gateway.log"), "w")
    proc = subprocess.Popen([args.daemon, "--config", config], stdout=logf, stderr=subprocess.STDOUT)
    end = time.time() + 30
    while "started:" not in open(os.path.join(work, "gateway.log")).read():
        if proc.poll() is not None or time.time() > end:
            raise RuntimeError("gateway did not start; see %s/gateway.log" % work)
        time.sleep(0.05)
    for path in files:  # staged on the same file system, so that the drop is a rename
        shutil.copy(path, os.path.join(gw, "staging", os.path.basename(path)))
    sub = Subscriber(args.tools, broker.port, len(owner), os.path.join(work, "gateway.recv"), "sub-gateway")
    perf = None
    if args.profile:
        target = ["-a"] if os.environ.get("BENCH_PROFILE_ALL") else ["-p", str(proc.pid)]
        perf = subprocess.Popen(["perf", "record"] + perf_args() + ["-o", os.path.join(work, "perf.data")] + target,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    dropped = {}
    cpu0 = machine_cpu()
    for path in files:
        name = os.path.basename(path)
        dropped[name] = time.time_ns()
        os.rename(os.path.join(gw, "staging", name), os.path.join(gw, "inbox", name))
    log("gateway: subscriber: " + sub.wait(900))
    busy = busy_cores(cpu0)
    rss, cpu = proc_stats(proc.pid)
    threads, switches = thread_cpu(proc.pid)
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        log("gateway: profile in %s (perf report -i %s --sort comm,dso,sym)" % ((os.path.join(work, "perf.data"),) * 2))
    log("gateway: CPU seconds by thread: " + ", ".join("%s %.2f" % kv for kv in sorted(threads.items())))
    log("gateway: context switches by thread: " + ", ".join("%s %d" % kv for kv in sorted(switches.items())))
    proc.terminate()
    proc.wait(timeout=60)
    logf.close()
    origins = {ident: dropped[name] for ident, name in owner.items()}
    result = analyse("gateway", os.path.join(work, "gateway.recv"), origins, len(owner), rss, cpu, args.out)
    result["machine_busy_cores"] = busy
    result["thread_cpu_s"] = threads
    result["thread_context_switches"] = switches
    result["journal_mb"] = round(sum(os.path.getsize(os.path.join(gw, f)) for f in os.listdir(gw)
                                     if f.startswith("journal.db")) / 1e6, 1)
    return result


def run_alternative(args, work, env_path, ids, broker):
    log("alternative: mosquitto_pub -l -> local Mosquitto (persistence) -> bridge QoS 1 -> the broker")
    local_dir = os.path.join(work, "local-broker")
    shutil.rmtree(local_dir, ignore_errors=True)
    local = Mosquitto(local_dir, free_port(),
                      "persistence true\npersistence_location %s/\nautosave_interval 60\n"
                      "connection backbone\naddress 127.0.0.1:%d\ntopic mhhs/# out 1\ncleansession false\n"
                      "bridge_protocol_version mqttv311\n" % (local_dir, broker.port))
    try:
        # The bridge is up once a probe published locally reaches the backbone.
        probe = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "mhhs/probe", "-C",
                                  "1", "-W", "20"], stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        while probe.poll() is None and time.time() < deadline:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(local.port), "-t", "mhhs/probe", "-m", "p",
                            "-q", "1"], check=False)
            time.sleep(0.2)
        if probe.wait(timeout=25) != 0:
            raise RuntimeError("the bridge never connected")
        time.sleep(0.5)  # let stray probes pass before counting starts
        sub = Subscriber(args.tools, broker.port, len(ids), os.path.join(work, "alternative.recv"), "sub-alternative")
        sends = []
        cpu0 = machine_cpu()
        with open(env_path) as stdin:
            pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(local.port), "-q", "1", "-t", TOPIC,
                                    "-l", "-d", "-i", "bench-alt-pub"], stdin=stdin, stdout=subprocess.PIPE, text=True)
            for line in pub.stdout:
                if "sending PUBLISH" in line:
                    sends.append(time.time_ns())
            _, status, usage = os.wait4(pub.pid, 0)
            pub.returncode = os.waitstatus_to_exitcode(status)
        pub_cpu = usage.ru_utime + usage.ru_stime
        log("alternative: subscriber: " + sub.wait(900))
        busy = busy_cores(cpu0)
        rss, broker_cpu = proc_stats(local.proc.pid)
    finally:
        local.stop()
    origins = {ident: sends[i] for i, ident in enumerate(ids) if i < len(sends)}
    result = analyse("alternative", os.path.join(work, "alternative.recv"), origins, len(ids), rss,
                     broker_cpu + pub_cpu, args.out)
    result["machine_busy_cores"] = busy
    result["note"] = "peak RSS is the local broker's; CPU is the local broker's plus mosquitto_pub's"
    return result


def drain(args):
    """The daemon with a backlog of queued events draining to a real Mosquitto (pending_bench)."""
    log("backlog: pending_bench with %d queued events" % args.backlog)
    out = subprocess.run([args.pending_bench, str(args.backlog)], check=True, stdout=subprocess.PIPE, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("pending_bench:")][-1]
    # "pending_bench: ready 0.722 s, peak RSS 25412 kB, drain 8712 events/s"
    w = line.replace(",", "").split()
    return {"events": args.backlog, "ready_s": float(w[2]), "peak_rss_mb": round(int(w[6]) / 1024.0, 1),
            "drain_events_per_s": float(w[9])}


def median_run(runs):
    """One path's rounds as one: the median of each number, the most lost and duplicated."""
    out = {}
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        if key in ("lost", "duplicates"):
            out[key] = max(values)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and all(
                isinstance(v, (int, float)) for v in values):
            out[key] = round(statistics.median(values), 3)
        elif key not in ("thread_cpu_s", "thread_context_switches"):
            out[key] = value
    return out


def chart(out_dir):
    if shutil.which("gnuplot") is None:
        log("gnuplot not found: no chart")
        return None
    png = os.path.join(out_dir, "delivered.png")
    script = """set terminal png size 960,540 noenhanced
set output '{png}'
set title 'Events confirmed at the subscriber'
set xlabel 'seconds from the first event in'
set ylabel 'events'
set key right bottom
set grid
plot '{d}/timeline-limit.dat' using 1:2 with lines lw 2 title 'limit (Paho, QoS 1, straight to the broker)', \\
     '{d}/timeline-gateway.dat' using 1:2 with lines lw 2 title 'gateway (files -> journal FULL -> broker)', \\
     '{d}/timeline-alternative.dat' using 1:2 with lines lw 2 title 'alternative (mosquitto_pub -> persistent bridge)'
""".format(png=png, d=out_dir)
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return png


def prepare(args, workdir):
    """Absolute paths, the binaries of the build tree, and a fresh OUT/WORKDIR."""
    args.build, args.source, args.out = (os.path.abspath(p) for p in (args.build, args.source, args.out))
    args.daemon = os.path.join(args.build, "gateway/main/mhhs-gatewayd")
    args.ctl = os.path.join(args.build, "gateway/main/mhhs-gatewayctl")
    args.tools = os.path.join(args.build, "tests/bench_mqtt")
    args.pending_bench = os.path.join(args.build, "tests/pending_bench")
    os.makedirs(args.out, exist_ok=True)
    work = os.path.join(args.out, workdir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return work


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--mpans-per-file", type=int, default=200)
    ap.add_argument("--backlog", type=int, default=1000000, help="queued events for the drain measurement (0: skip)")
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", choices=["limit", "gateway", "alternative"], help="run one path (profiling)")
    ap.add_argument("--profile", action="store_true",
                    help="record the daemon with perf record -g during the gateway run (work/perf.data)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of limit, gateway, alternative, one after the other; the table shows each "
                         "column's median, the ratios are the medians of each round's own ratios")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    work = prepare(args, "work")

    files = make_corpus(args, work)
    keys = make_keys(work)
    _, config = gateway_config(args, work, keys, 1)
    env_path, owner = envelopes(args, files, config, work)
    ids = [l.split('"id":"', 1)[1].split('"', 1)[0] for l in open(env_path)]
    size_mb = os.path.getsize(env_path) / 1e6
    log("corpus: %d D0036 files, %d IF-021 events, %.1f MB of signed envelopes" % (len(files), len(ids), size_mb))

    broker = Mosquitto(os.path.join(work, "broker"), free_port())
    rounds = []
    try:
        order = [args.only] if args.only else ["limit", "gateway", "alternative"]
        for k in range(args.repeat):
            if args.repeat > 1:
                log("round %d of %d" % (k + 1, args.repeat))
            results = {}
            for name in order:
                broker_cpu0 = proc_stats(broker.proc.pid)[1]
                if name == "limit":
                    results["limit"] = run_limit(args, work, env_path, ids, broker)
                elif name == "gateway":
                    results["gateway"] = run_gateway(args, work, files, owner, keys, broker)
                else:
                    results["alternative"] = run_alternative(args, work, env_path, ids, broker)
                # The backbone broker serves every path alike; its CPU per event tells whether it did.
                results[name]["broker_cpu_s_per_1000"] = round(
                    (proc_stats(broker.proc.pid)[1] - broker_cpu0) / max(results[name]["events"], 1) * 1000, 3)
                log("%s: the backbone broker's CPU: %.3f s per 1000 events" % (name, results[name]["broker_cpu_s_per_1000"]))
            rounds.append(results)
    finally:
        broker.stop()
    if args.only:
        print(json.dumps(rounds[0] if len(rounds) == 1 else rounds, indent=2))
        return 0
    round_ratios = [(r["gateway"]["events_per_s"] / r["limit"]["events_per_s"],
                     r["gateway"]["events_per_s"] / r["alternative"]["events_per_s"]) for r in rounds]
    if len(rounds) > 1:
        for k, (a, b) in enumerate(round_ratios):
            log("round %d: limit %.0f, gateway %.0f, alternative %.0f events/s: gateway/limit %.2f, "
                "gateway/alternative %.2f" % (k + 1, rounds[k]["limit"]["events_per_s"], rounds[k]["gateway"]["events_per_s"],
                                              rounds[k]["alternative"]["events_per_s"], a, b))
    results = rounds[0] if len(rounds) == 1 else {n: median_run([r[n] for r in rounds]) for n in rounds[0]}
    backlog = drain(args) if args.backlog > 0 else None

    cols = ["events_per_s", "mb_per_s", "latency_p50_ms", "latency_p99_ms", "peak_rss_mb", "cpu_s_per_1000",
            "machine_busy_cores", "lost", "duplicates"]
    heads = ["events/s", "MB/s", "p50 ms", "p99 ms", "peak RSS MB", "CPU s/1000", "cores busy", "lost", "dup"]
    if len(rounds) > 1:
        print("\nmedians of %d rounds (each path's own column; lost and dup: the most in any round)" % len(rounds))
    print("\n%-12s" % "" + "".join("%13s" % h for h in heads))
    for name in ("limit", "gateway", "alternative"):
        r = results[name]
        print("%-12s" % name + "".join("%13s" % r[c] for c in cols))
    r1 = statistics.median(a for a, _ in round_ratios)
    r2 = statistics.median(b for _, b in round_ratios)
    if backlog:
        print("\nbacklog: %d queued events drained at %.0f events/s; ready %.3f s after start; peak RSS %.1f MB"
              % (backlog["events"], backlog["drain_events_per_s"], backlog["ready_s"], backlog["peak_rss_mb"]))
    png = chart(args.out)
    result = {
        "events": len(ids), "files": len(files), "corpus_mb": round(size_mb, 1),
        "gateway_settings": "journal synchronous=FULL, ECDSA P-256 signatures, AES-256-GCM payloads, QoS 1, max_inflight 256",
        "runs": results, "backlog": backlog,
        "rounds": len(rounds),
        "round_ratios": [{"gateway_over_limit": round(a, 3), "gateway_over_alternative": round(b, 3)}
                         for a, b in round_ratios],
        "ratios": {"gateway_over_limit": round(r1, 3), "gateway_over_alternative": round(r2, 3)},
        "targets": {"gateway_over_limit": 0.8, "gateway_over_alternative": 1.0, "gateway_peak_rss_mb": 64},
        "chart": png,
    }
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    print("\nresult: %s%s" % (os.path.join(args.out, "result.json"), ", chart: " + png if png else ""))
    lost = sum(r[n]["lost"] for r in rounds for n in r)
    if lost:
        log("warning: %d event(s) did not arrive in some run (see the table)" % lost)
    print("bench: gateway/limit %.2f, gateway/alternative %.2f" % (r1, r2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
