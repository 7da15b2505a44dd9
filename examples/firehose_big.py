"""Memory bound of the Firehose receiver (docs/firehose.md, "Throughput and memory"):
`python3 examples/firehose_big.py PORT` sends 50 requests of 60 MiB (70 records of
7,000 flow-log lines, no gzip) at once, each retried after a 503 until it is
answered 200, with the access key `load-test-key`. Read the receiver's peak RSS
afterwards: `grep VmHWM /proc/<pid>/status`.
"""
import base64, json, socket, threading, time, sys
LINE = "2 123456789012 eni-0a1b2c3d 10.0.0.1 10.0.0.2 443 49152 6 10 840 1600000000 1600000060 ACCEPT OK"
data = base64.b64encode(("\n".join([LINE]*7000)).encode()).decode()
body = json.dumps({"records": [{"data": data}]*70}).encode()
print("body MiB", len(body)/2**20, flush=True)
port = int(sys.argv[1]); results = []
def send(i):
    while True:
        s = socket.create_connection(("127.0.0.1", port))
        head = (f"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Firehose-Request-Id: big-{i}\r\nX-Amz-Firehose-Access-Key: load-test-key\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            s.sendall(head); s.sendall(body)
        except OSError:
            pass
        out = b""
        while True:
            b = s.recv(65536)
            if not b: break
            out += b
        s.close()
        status = out.split(b" ")[1] if out else b"none"
        if status == b"200":
            results.append(i); return
        time.sleep(0.2)
t0 = time.time()
ts = [threading.Thread(target=send, args=(i,)) for i in range(50)]
[t.start() for t in ts]; [t.join() for t in ts]
print("50 requests of 64 MiB applied in", round(time.time()-t0,1), "s")
