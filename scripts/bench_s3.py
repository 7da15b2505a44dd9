#!/usr/bin/env python3
"""Helper of scripts/bench-s3.sh: the S3 source end to end against moto_server.

  bench_s3.py parquet TEXT OUT.parquet
      converts default-format lines (examples/gen_flows) to a Parquet file as
      AWS writes them (the AWS Parquet types, GZIP compression).
  bench_s3.py run --endpoint URL --binary PATH --name NAME --object FILE
                  --count N --cpus 0[,1] [--concurrency C] [--port P]
                  [--pids FILE] [--result FILE]
      makes a bucket and a queue of their own (the bucket's notification sends
      to the queue), puts FILE N times, waits until the N notifications are on
      the queue, then starts one replica per listed core (taskset -c CORE) and
      times from their start until the sum of
      vpc_flow_exporter_s3_objects_total{result="ok"} reaches N. Prints
      records/s (vpc_flow_exporter_s3_records_total over that time) and each
      replica's peak RSS (VmHWM) and CPU time over the run, and writes them as JSON to --result.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

FIELDS = [
    ("version", "int32"), ("account_id", "string"), ("interface_id", "string"),
    ("srcaddr", "string"), ("dstaddr", "string"), ("srcport", "int32"),
    ("dstport", "int32"), ("protocol", "int32"), ("packets", "int64"),
    ("bytes", "int64"), ("start", "int64"), ("end", "int64"),
    ("action", "string"), ("log_status", "string"),
]


def to_parquet(text, out):
    import pyarrow as pa
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    names = [n for n, _ in FIELDS]
    types = {n: getattr(pa, t)() for n, t in FIELDS}
    table = csv.read_csv(
        text,
        read_options=csv.ReadOptions(column_names=names, block_size=64 << 20),
        parse_options=csv.ParseOptions(delimiter=" "),
        convert_options=csv.ConvertOptions(column_types=types, null_values=["-"]),
    )
    # AWS: "Parquet format with Gzip compression"; writers' usual row groups.
    pq.write_table(table, out, compression="gzip", row_group_size=128 * 1024)
    print(f"bench-s3: {out}: {table.num_rows:,} rows, {os.path.getsize(out) / 1e6:.1f} MB")


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        m = re.match(r'^(vpc_flow_exporter_s3_(?:objects_total\{result="(\w+)"\}|records_total|concurrency)) (\S+)$', line)
        if m:
            values[m.group(2) or m.group(1)] = float(m.group(3))
    return values


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setup(kw, name, path, count):
    s3 = boto3.client("s3", **kw)
    sqs = boto3.client("sqs", **kw)
    bucket = f"bench-{name}-{os.getpid()}"
    queue = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    ext = ".parquet" if path.endswith(".parquet") else ".log.gz"
    with open(path, "rb") as f:
        body = f.read()
    t0 = time.time()
    for i in range(count):
        key = f"AWSLogs/123456789010/vpcflowlogs/us-east-1/2026/12/01/123456789010_vpcflowlogs_us-east-1_fl-bench_20261201T0000Z_{i:04d}{ext}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    deadline = time.time() + 60
    while True:
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
        if int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= count:
            break
        if time.time() > deadline:
            sys.exit(f"bench-s3: {name}: the notifications did not all reach the queue")
        time.sleep(0.2)
    print(f"bench-s3: {name}: {count} x {len(body) / 1e6:.1f} MB put in {time.time() - t0:.1f} s, {count} notifications queued")
    return queue, len(body)


def start(args, queue, cpu, port, workdir):
    cfg = os.path.join(workdir, f"replica-{cpu}.yml")
    with open(cfg, "w") as f:
        f.write(f"s3:\n  queue_url: {queue}\n  region: us-east-1\n  endpoint_url: {args.endpoint}\n")
        if args.concurrency:
            f.write(f"  concurrency: {args.concurrency}\n")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_EC2_METADATA_DISABLED="true")
    log = open(os.path.join(workdir, f"replica-{cpu}.log"), "wb")
    return subprocess.Popen(
        ["taskset", "-c", cpu, args.binary, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}"],
        env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


def run(args):
    kw = dict(endpoint_url=args.endpoint, region_name="us-east-1",
              aws_access_key_id="bench", aws_secret_access_key="bench")
    queue, size = setup(kw, args.name, args.object, args.count)
    cpus = args.cpus.split(",")
    workdir = tempfile.mkdtemp(prefix=f"bench-s3-{args.name}-")
    procs = []
    try:
        t0 = time.time()
        for i, cpu in enumerate(cpus):
            procs.append(start(args, queue, cpu, args.port + i, workdir))
        if args.pids:
            with open(args.pids, "a") as f:
                f.write("".join(f"{p.pid}\n" for p in procs))
        deadline = t0 + args.timeout
        while True:
            time.sleep(0.05)
            for p in procs:
                if p.poll() is not None:
                    sys.exit(f"bench-s3: {args.name}: a replica exited ({p.returncode}); see {workdir}")
            scrapes = [scrape(args.port + i) for i in range(len(procs))]
            if all(scrapes) and sum(s.get("ok", 0) for s in scrapes) >= args.count:
                secs = time.time() - t0
                break
            if time.time() > deadline:
                sys.exit(f"bench-s3: {args.name}: not every object counted in {args.timeout} s: {scrapes}")
        rss = [hwm_kib(p.pid) / 1024 for p in procs]
        busy = [cpu_secs(p.pid) / secs for p in procs]
        records = sum(s.get("vpc_flow_exporter_s3_records_total", 0) for s in scrapes)
        errors = sum(s.get("error", 0) for s in scrapes)
        per = [int(s.get("ok", 0)) for s in scrapes]
        conc = int(scrapes[0].get("vpc_flow_exporter_s3_concurrency", 0))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    if errors:
        sys.exit(f"bench-s3: {args.name}: {errors:.0f} objects in error; see {workdir}")
    shutil.rmtree(workdir, ignore_errors=True)
    rate = records / secs
    print(f"bench-s3: {args.name:<14} {len(procs)} replica(s) on core(s) {args.cpus}, concurrency {conc}: "
          f"{args.count} objects ({args.count * size / 1e6:.0f} MB, per replica {per}), {records:,.0f} records "
          f"in {secs:.2f} s = {rate / 1e6:.2f} M records/s, {args.count * size / secs / 1e6:.0f} MB/s; "
          f"peak RSS {', '.join(f'{r:.0f}' for r in rss)} MiB; "
          f"CPU busy {', '.join(f'{b:.0%}' for b in busy)}")
    if args.result:
        with open(args.result, "w") as f:
            json.dump({"rate": rate, "secs": secs, "records": records, "rss_mib": rss, "busy": busy}, f)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if len(sys.argv) == 4 and sys.argv[1] == "parquet":
        return to_parquet(sys.argv[2], sys.argv[3])
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["run"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--object", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--cpus", default="0")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--port", type=int, default=19560)
    p.add_argument("--pids")
    p.add_argument("--result")
    p.add_argument("--timeout", type=float, default=600)
    run(p.parse_args())


if __name__ == "__main__":
    main()
