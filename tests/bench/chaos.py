#!/usr/bin/env python3
"""The harness behind scripts/chaos: the bench corpus through the real gateway while things
break, each scenario counted by a persistent subscriber on the backbone:

  kill       SIGKILL of the gateway at random moments, ROUNDS times, restarting it each time;
  broker     the backbone broker stopped for OUTAGE seconds in the middle of the run;
  disk-full  the journal's file system (a tmpfs, as root) filled up by another file mid-run,
             then freed again;
  slow       a subscriber that takes 2 ms over every message.

Each prints "NAME: sent N, received N unique, lost L, duplicates D"; the exit status is
non-zero when any scenario lost an event (or could not run).
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

TOPIC = bench.TOPIC


class Gateway:
    def __init__(self, args, config, log_path):
        self.args, self.config, self.log_path = args, config, log_path
        self.proc = None

    def start(self):
        before = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.args.daemon, "--config", self.config], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 30
        while True:
            with open(self.log_path) as f:
                f.seek(before)
                if "started:" in f.read():
                    return
            if self.proc.poll() is not None or time.time() > end:
                raise RuntimeError("gateway did not start; see " + self.log_path)
            time.sleep(0.05)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.log.close()


def drop(gw_dir, names):
    for name in names:
        os.rename(os.path.join(gw_dir, "staging", name), os.path.join(gw_dir, "inbox", name))


def scenario(args, name, files, owner, keys, run):
    """Sets up a broker, a gateway and a persistent subscriber; `run` breaks things."""
    work = os.path.join(args.out, "chaos-" + name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    broker_dir = os.path.join(work, "broker")
    port = bench.free_port()
    broker_conf = "persistence true\npersistence_location %s/\nautosave_interval 1\n" % broker_dir
    broker = bench.Mosquitto(broker_dir, port, broker_conf)
    journal_dir = run.get("journal_dir")
    gw_dir, config = bench.gateway_config(args, work, keys, port, journal_dir=journal_dir,
                                          extra="reconnect_max_ms = 1000\nretry_max_ms = 1000\n")
    for path in files:
        shutil.copy(path, os.path.join(gw_dir, "staging", os.path.basename(path)))
    gateway = Gateway(args, config, os.path.join(work, "gateway.log"))
    recv = os.path.join(work, "received.tsv")
    sub_args = ["--persistent", "1"] + (["--delay-us", str(run["delay_us"])] if run.get("delay_us") else [])
    # A persistent session: it rides out the broker's restart, and the broker keeps what
    # arrives for it meanwhile.
    sub = subprocess.Popen([args.tools, "sub", "--uri", "tcp://127.0.0.1:%d" % port, "--filter", "mhhs/#", "--expect",
                            str(len(owner)), "--out", recv, "--idle-timeout", str(args.outage + 60), "--client-id",
                            "chaos-sub-" + name] + sub_args, stdout=subprocess.PIPE, text=True)
    if sub.stdout.readline().strip() != "ready":
        raise RuntimeError("subscriber did not start")
    state = {"broker": broker, "port": port, "broker_dir": broker_dir, "broker_conf": broker_conf}
    gateway.start()
    try:
        run["fn"](gw_dir, [os.path.basename(p) for p in files], gateway, state)
        summary = sub.communicate(timeout=args.outage + 900)[0].strip()
    finally:
        gateway.stop()
        state["broker"].stop()
    unique, received = set(), 0
    for row in bench.read_rows(recv):
        received += 1
        unique.add(row[0])
    lost = len([i for i in owner if i not in unique])
    line = "%s: sent %d, received %d unique, lost %d, duplicates %d" % (name, len(owner), len(unique), lost,
                                                                        received - len(unique))
    print(line, flush=True)
    bench.log(name + ": subscriber said: " + summary)
    return lost


def kill_rounds(args):
    def fn(gw_dir, names, gateway, state):
        rng = random.Random(args.seed)
        # Files keep arriving across the rounds, so that every kill lands in the middle of
        # work: a claim, a commit, a publish or an acknowledgement.
        chunks = [names[i::args.rounds] for i in range(args.rounds)]
        for i in range(args.rounds):
            drop(gw_dir, chunks[i])
            time.sleep(rng.uniform(0.02, 0.3))
            gateway.kill()
            bench.log("kill: round %d: SIGKILL after %d more file(s), restarting" % (i + 1, len(chunks[i])))
            gateway.start()
    return {"fn": fn}


def broker_outage(args):
    def fn(gw_dir, names, gateway, state):
        half = len(names) // 2
        drop(gw_dir, names[:half])
        time.sleep(0.5)
        bench.log("broker: stopping the backbone broker for %d s" % args.outage)
        state["broker"].stop()
        drop(gw_dir, names[half:])  # arrives while the backbone is away
        time.sleep(args.outage)
        state["broker"] = bench.Mosquitto(state["broker_dir"], state["port"], state["broker_conf"])
        bench.log("broker: back")
    return {"fn": fn}


def disk_full(args, mount):
    def fn(gw_dir, names, gateway, state):
        third = len(names) // 3
        drop(gw_dir, names[:third])
        time.sleep(0.5)
        filler = os.path.join(mount, "filler")
        bench.log("disk-full: filling the journal's file system")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        drop(gw_dir, names[third:])  # arrives while the disk is full
        time.sleep(5)
        os.unlink(filler)
        bench.log("disk-full: space freed")
    return {"fn": fn, "journal_dir": mount}


def slow_subscriber(args):
    def fn(gw_dir, names, gateway, state):
        drop(gw_dir, names)
    return {"fn": fn, "delay_us": 2000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--mpans-per-file", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--outage", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", help="comma-separated scenarios: kill, broker, disk-full, slow")
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    work = bench.prepare(args, "chaos-corpus")
    files = bench.make_corpus(args, work)
    keys = bench.make_keys(work)
    _, config = bench.gateway_config(args, work, keys, 1)
    _, owner = bench.envelopes(args, files, config, work)
    bench.log("chaos corpus: %d files, %d events" % (len(files), len(owner)))

    wanted = args.only.split(",") if args.only else ["kill", "broker", "disk-full", "slow"]
    failed = 0
    for name in wanted:
        mount = None
        try:
            if name == "kill":
                run = kill_rounds(args)
            elif name == "broker":
                run = broker_outage(args)
            elif name == "disk-full":
                if os.geteuid() != 0:
                    print("disk-full: skipped (mounting a tmpfs needs root)", flush=True)
                    continue
                mount = os.path.join(args.out, "chaos-tmpfs")
                os.makedirs(mount, exist_ok=True)
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mount], check=True)
                run = disk_full(args, mount)
            elif name == "slow":
                run = slow_subscriber(args)
            else:
                raise RuntimeError("unknown scenario " + name)
            if scenario(args, name, files, owner, keys, run) != 0:
                failed += 1
        except Exception as e:  # a scenario that cannot run is a failure too
            print("%s: could not run: %s" % (name, e), flush=True)
            failed += 1
        finally:
            if mount:
                subprocess.run(["umount", mount], check=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
