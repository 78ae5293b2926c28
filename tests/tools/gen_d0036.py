#!/usr/bin/env python3
"""Generates D0036001 files (half-hourly advances) for tests, samples and benchmarks.

usage: gen_d0036.py OUT_DIR [--files N] [--mpans M] [--days D] [--start YYYYMMDD]
                    [--from-mpid UDMS] [--to-mpid MRCY] [--file-id-base N] [--seed S]
Each file holds M MPANs x D settlement days (active import), with the right number of
periods on clock-change days. Prints the number of files, events and bytes written.
"""
import argparse
import datetime as dt
import os
import random


def last_sunday(year, month):
    d = dt.date(year, month, 31)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


def periods(day):
    if day == last_sunday(day.year, 3):
        return 46
    if day == last_sunday(day.year, 10):
        return 50
    return 48


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=1)
    ap.add_argument("--mpans", type=int, default=10)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--start", default="20260715")
    ap.add_argument("--from-mpid", default="UDMS")
    ap.add_argument("--to-mpid", default="MRCY")
    ap.add_argument("--file-id-base", type=int, default=3600000)
    ap.add_argument("--seed", type=int, default=36)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    start = dt.datetime.strptime(a.start, "%Y%m%d").date()
    dists = ["10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23"]
    events = total = 0
    for f in range(a.files):
        fid = "%010d" % (a.file_id_base + f)
        lines = ["ZHV|%s|D0036001|C|%s|X|%s|20260716060000||||OPER|" % (fid, a.from_mpid, a.to_mpid)]
        top = 0
        for m in range(a.mpans):
            mpan = dists[(f * a.mpans + m) % len(dists)] + "%011d" % (f * a.mpans + m)
            lines.append("101|%s|AI|%s|" % (mpan, a.to_mpid))
            top += 1
            for d in range(a.days):
                day = start + dt.timedelta(days=d)
                lines.append("102|%s|" % day.strftime("%Y%m%d"))
                events += 1
                for _ in range(periods(day)):
                    q = "A" if rnd.random() < 0.95 else "E"
                    lines.append("103|%s|%.3f|" % (q, rnd.random() * 2))
        lines.append("ZPT|%s|%d||%d|20260716060100|" % (fid, len(lines) - 1, top))
        text = "\n".join(lines) + "\n"
        name = os.path.join(a.out, "D0036_%s_%s_%s.uff" % (a.from_mpid, a.to_mpid, fid))
        with open(name, "w") as fh:
            fh.write(text)
        total += len(text)
    print("%d files, %d events, %d bytes" % (a.files, events, total))


if __name__ == "__main__":
    main()
