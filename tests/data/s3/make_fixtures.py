#!/usr/bin/env python3
"""Writes the S3 source's test objects next to this script, from the text
fixtures default.log and v5.log (records of the AWS "Flow log record
examples" page) and from records made here (all-fields.log, many.*).

Parquet columns are typed as the AWS "Flow log records" table gives them
(INT_32, INT_64, STRING), with nulls where the text has `-`, and written
with GZIP, the codec AWS uses. The outputs are committed, so `cargo test`
needs no Python; rerun after changing the text fixtures:

    .venv/bin/python tests/data/s3/make_fixtures.py
"""

import gzip
import os

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))

INT32 = {"version", "srcport", "dstport", "protocol", "tcp-flags", "traffic-path"}
INT64 = {"packets", "bytes", "start", "end"}

ALL_FIELDS = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end "
    "action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id "
    "sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path "
    "ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id ecs-container-id "
    "ecs-second-container-id ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id reject-reason"
).split()

ECS = {
    "ecs-cluster-arn": "arn:aws:ecs:us-east-1:123456789010:cluster/web",
    "ecs-cluster-name": "web",
    "ecs-container-instance-arn": "arn:aws:ecs:us-east-1:123456789010:container-instance/web/0a1b2c3d",
    "ecs-container-instance-id": "0a1b2c3d",
    "ecs-container-id": "1a2b3c4d5e6f",
    "ecs-second-container-id": "7a8b9c0d1e2f",
    "ecs-service-name": "web-svc",
    "ecs-task-definition-arn": "arn:aws:ecs:us-east-1:123456789010:task-definition/web:3",
    "ecs-task-arn": "arn:aws:ecs:us-east-1:123456789010:task/web/0f1e2d3c",
    "ecs-task-id": "0f1e2d3c",
}

BASE = {
    "version": "8", "account-id": "123456789010", "interface-id": "eni-1235b8ca123456789",
    "vpc-id": "vpc-abcdefab012345678", "subnet-id": "subnet-aaaaaaaa012345678",
    "instance-id": "i-01234567890123456", "region": "us-east-1", "az-id": "use1-az1",
}


def all_fields_rows():
    """Version 8 records: ECS traffic, a rejection with its reason, IPv6
    with an AWS service and an Outpost, NODATA, and times in milliseconds."""
    rows = [
        dict(BASE, srcaddr="10.0.1.5", dstaddr="10.0.0.220", srcport="49761", dstport="443", protocol="6",
             packets="20", bytes="4249", start="1700000000", end="1700000060", action="ACCEPT",
             **{"log-status": "OK", "tcp-flags": "18", "type": "IPv4", "pkt-srcaddr": "10.0.1.5",
                "pkt-dstaddr": "10.0.0.220", "flow-direction": "egress", "traffic-path": "1"}, **ECS),
        dict(BASE, srcaddr="198.51.100.7", dstaddr="10.0.0.220", srcport="40001", dstport="22", protocol="6",
             packets="1", bytes="40", start="1700000010", end="1700000070", action="REJECT",
             **{"log-status": "OK", "tcp-flags": "2", "type": "IPv4", "pkt-srcaddr": "198.51.100.7",
                "pkt-dstaddr": "10.0.0.220", "flow-direction": "ingress", "reject-reason": "BPA"}),
        dict(BASE, srcaddr="2001:db8::1", dstaddr="2001:db8::2", srcport="443", dstport="50000", protocol="6",
             packets="5", bytes="500", start="1700000020", end="1700000080", action="ACCEPT",
             **{"log-status": "OK", "tcp-flags": "19", "type": "IPv6", "pkt-srcaddr": "2001:db8::1",
                "pkt-dstaddr": "2001:db8::2", "sublocation-type": "outpost", "sublocation-id": "op-0123456789abcdef0",
                "pkt-src-aws-service": "AMAZON", "pkt-dst-aws-service": "S3", "flow-direction": "ingress",
                "traffic-path": "8"}),
        dict(BASE, start="1700000000", end="1700000060", **{"log-status": "NODATA"}),
        dict(BASE, srcaddr="10.0.1.6", dstaddr="10.0.0.221", srcport="123", dstport="123", protocol="17",
             packets="2", bytes="152", start="1700000100000", end="1700000160000", action="ACCEPT",
             **{"log-status": "OK", "type": "IPv4", "flow-direction": "egress"}),
    ]
    return ALL_FIELDS, [[r.get(f, "-") for f in ALL_FIELDS] for r in rows]


def many_rows(n=5_000):
    """Default-format records in a fixed pattern; every 1000th is NODATA."""
    header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status".split()
    ports = [22, 80, 443, 3389, 8080]
    rows = []
    for i in range(n):
        start = 1700000000 + i % 300
        if i % 1000 == 999:
            rows.append(["2", "123456789010", f"eni-{i % 3:017x}", "-", "-", "-", "-", "-", "-", "-",
                         str(start), str(start + 60), "-", "NODATA"])
            continue
        rows.append(["2", "123456789010", f"eni-{i % 3:017x}", f"10.0.{i // 256 % 256}.{i % 256}", "10.1.0.10",
                     str(40000 + i % 20000), str(ports[i % 5]), "6" if i % 4 else "17", str(i % 100 + 1),
                     str((i % 100 + 1) * 60), str(start), str(start + 60), "REJECT" if i % 7 == 0 else "ACCEPT", "OK"])
    return header, rows


def read_log(name):
    with open(os.path.join(HERE, name)) as f:
        lines = [line.split() for line in f.read().splitlines() if line.strip()]
    return lines[0], lines[1:]


def text(header, rows):
    return ("\n".join([" ".join(header)] + [" ".join(r) for r in rows]) + "\n").encode()


def typed_table(header, rows, sep, strings=False):
    """A table of one column per field, named with `sep` for `-`."""
    columns = {}
    for i, name in enumerate(header):
        values = [None if r[i] == "-" else r[i] for r in rows]
        if strings:
            kind = pa.string()
        elif name in INT32:
            kind, values = pa.int32(), [None if v is None else int(v) for v in values]
        elif name in INT64:
            kind, values = pa.int64(), [None if v is None else int(v) for v in values]
        else:
            kind = pa.string()
        columns[name.replace("-", sep)] = pa.array(values, type=kind)
    return pa.table(columns)


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def parquet(name, table, compression="gzip", row_group_size=None):
    pq.write_table(table, os.path.join(HERE, name), compression=compression, row_group_size=row_group_size)


def main():
    header, rows = read_log("default.log")
    write("default.log.gz", gzip.compress(text(header, rows), mtime=0))
    # Two gzip members, the header only in the first, as a concatenation of
    # two gzip files is one valid gzip file.
    write("multi-member.log.gz", gzip.compress(text(header, rows[:3]), mtime=0)
          + gzip.compress(text([], rows[3:]).lstrip(b"\n"), mtime=0))
    parquet("default.parquet", typed_table(header, rows, "_"), row_group_size=3)
    parquet("default-uncompressed.parquet", typed_table(header, rows, "_"), compression="none")
    parquet("default-snappy.parquet", typed_table(header, rows, "_"), compression="snappy")

    header, rows = read_log("v5.log")
    parquet("v5-hyphen.parquet", typed_table(header, rows, "-"))

    header, rows = all_fields_rows()
    write("all-fields.log", text(header, rows))
    parquet("all-fields.parquet", typed_table(header, rows, "_"))

    header, rows = many_rows()
    write("many.log.gz", gzip.compress(text(header, rows), mtime=0))
    parquet("many.parquet", typed_table(header, rows, "_"), row_group_size=4500)

    # Every value as a string: integers given as digits are read; the bad
    # rows are invalid lines by reason.
    header = "version srcaddr dstaddr srcport dstport protocol action log_status".split()
    bad = [
        ["2", "10.0.0.1", "10.0.0.2", "443", "50000", "6", "ACCEPT", "OK"],
        ["2", "not-an-ip", "10.0.0.2", "443", "50000", "6", "ACCEPT", "OK"],
        ["2", "10.0.0.1", "10.0.0.2", "443", "50000", "6", "MAYBE", "OK"],
        ["2", "10.0.0.1", "10.0.0.2", "443", "70000", "6", "ACCEPT", "OK"],
        ["2", "10.0.0.1", "10.0.0.2", "12a", "50000", "6", "ACCEPT", "OK"],
        ["2", "10.0.0.1", "10.0.0.2", "443", "50000", "6", "REJECT", "BUSY"],
        ["-", "-", "-", "-", "-", "-", "-", "-"],
    ]
    parquet("bad-values.parquet", typed_table(header, bad, "_", strings=True))
    parquet("negative.parquet", pa.table({
        "packets": pa.array([5, -5], type=pa.int64()),
        "srcport": pa.array([443, 443], type=pa.int32()),
        "action": pa.array(["ACCEPT", "ACCEPT"]),
    }))
    parquet("unknown-columns.parquet", pa.table({"foo": pa.array([1, 2]), "bar": pa.array(["a", "b"])}))
    parquet("wrong-type.parquet", pa.table({"srcaddr": pa.array([167772161], type=pa.int64())}))


if __name__ == "__main__":
    main()
