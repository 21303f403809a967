#!/usr/bin/env python3
"""Record what nginx does with every conformance vector.

Runs nginx (Debian's nginx-light) on a free loopback port with a minimal
config that answers 200 "Hello, world!" for every location, replays every
vector of vectors.json with the protocol of tests/integration/conformance.rs
(whole, then one byte per write), and writes the outcome into each vector's
`nginx` field, plus nginx's version at the top level. A recording tool, not
run by CI:

    python3 tests/conformance/record_nginx.py [path/to/vectors.json]

It prints the README's table of differences (markdown) and a summary line.

When the two split modes disagree, `nginx` holds the whole-write outcome and
`nginx_bytewise` the other one. Each mode runs three times; outcomes seen in
a minority of runs are listed in `nginx_also_seen`.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 3.0
PROBE = b"GET /probe HTTP/1.1\r\nHost: x\r\n\r\n"
RAW_REPLY = b"Hello, world!"
ROUNDS = 3
HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "Hello, world!";
        }}
    }}
}}
"""


class Inbox:
    """Bytes the server sent, collected by a reader thread."""

    def __init__(self, sock):
        self.bytes = bytearray()
        self.end = None  # "eof" or an error name
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._collect, args=(sock,), daemon=True)
        self.thread.start()

    def _collect(self, sock):
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError as e:
                with self.cond:
                    self.end = type(e).__name__
                    self.cond.notify_all()
                return
            with self.cond:
                if chunk:
                    self.bytes += chunk
                else:
                    self.end = "eof"
                self.cond.notify_all()
            if not chunk:
                return

    def wait(self, at, ready):
        """Waits until ready(bytes[at:], end) returns non-None, or TIMEOUT."""
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while True:
                answer = ready(bytes(self.bytes[at:]), self.end)
                if answer is not None:
                    return answer
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def short(b):
    text = b[:40].decode("latin-1").encode("unicode_escape").decode()
    return text + ("…" if len(b) > 40 else "")


def parse_response(buf, bodiless):
    """('response', status, used) / ('raw', 13) / ('garbage', what) / None."""
    if buf.startswith(RAW_REPLY):
        return ("raw", len(RAW_REPLY))
    if not buf.startswith(b"HTTP/"):
        if b"HTTP/".startswith(buf[:5]) or RAW_REPLY.startswith(buf[:13]):
            return None
        return ("garbage", "b'%s'" % short(buf))
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    end += 4
    head = buf[:end].decode("latin-1")
    try:
        status = int(head.split(" ")[1])
    except (IndexError, ValueError):
        return ("garbage", "bad status line b'%s'" % short(buf))
    length = 0
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        if name.lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return ("garbage", "bad Content-Length in %r" % head)
        elif name.lower() == "transfer-encoding":
            return ("garbage", "unexpected %r in a response" % line)
    if bodiless or status in (100, 204, 304):
        length = 0
    if len(buf) < end + length:
        return None
    return ("response", status, end + length)


def read_responses(inbox, at, want, bodiless):
    got = []
    while len(got) < want:
        head = len(got) in bodiless

        def ready(buf, end):
            parsed = parse_response(buf, head)
            if parsed is not None:
                return parsed
            if end is not None:
                return ("end", end, len(buf))
            return None

        step = inbox.wait(at, ready)
        if step is None:
            return got, at, "timeout"
        if step[0] == "end":
            _, end, left = step
            if end == "eof":
                return got, at, "close" if left == 0 else "close mid-response"
            return got, at, end
        if step[0] == "raw":
            at += step[1]
            got.append("raw")
        elif step[0] == "response":
            _, status, used = step
            at += used
            if status != 100:
                got.append(str(status))
        else:
            got.append(step[1])
            return got, at, "garbage"
    return got, at, None


def then_state(inbox, at):
    def ready(buf, end):
        if buf:
            return "extra bytes b'%s'" % short(buf)
        if end is not None:
            return "close"
        return None

    return inbox.wait(at, ready) or "open"


def probe(sock, inbox, at):
    try:
        sock.sendall(PROBE)
    except OSError:
        return "close (probe write failed)"
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    got, _, stop = read_responses(inbox, at, 2, [])
    if got == ["200"] and stop == "close":
        return "open"
    if not got and stop == "close":
        return "close"
    return "open, but the probe got [%s] then %s" % (", ".join(got), stop or "more")


def expected_responses(expect):
    r = expect["responses"]
    return [r] if isinstance(r, str) else [str(c) for c in r]


def run(port, vector, bytewise):
    request = vector["request"].encode("latin-1")
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    except OSError as e:
        return {"responses": [], "then": "connect failed: %s" % e}
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inbox = Inbox(sock)
    # Blocking throughout: a timeout would put the shared descriptor in
    # non-blocking mode under the reader. Requests fit in the socket buffer.
    try:
        if bytewise:
            for i in range(len(request)):
                sock.sendall(request[i : i + 1])
        else:
            sock.sendall(request)
    except OSError:
        pass
    if vector["half_close"]:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    want = expected_responses(vector["expect"])
    got, at, stop = read_responses(inbox, 0, len(want), vector.get("bodiless", []))
    if stop is not None:
        then = stop
    elif vector["expect"]["then"] == "open":
        then = probe(sock, inbox, at)
    else:
        then = then_state(inbox, at)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    inbox.thread.join(TIMEOUT)
    sock.close()
    return {"responses": [int(r) if r.isdigit() else r for r in got], "then": then}


def most_common(outcomes):
    return max(outcomes, key=lambda o: (outcomes.count(o), -outcomes.index(o)))


def outcome_text(o):
    return "%s %s" % (", ".join(str(r) for r in o["responses"]) or "nothing", o["then"])


def difference_table(vectors):
    """The README's table: every vector where nginx differs from the expectation."""
    rows = [
        "| vector | source case | expected | nginx (whole) | nginx (one byte per write) |",
        "|---|---|---|---|---|",
    ]
    for v in vectors:
        exp = {"responses": v["expect"]["responses"], "then": v["expect"]["then"]}
        if exp["responses"] == "raw":
            exp["responses"] = ["raw"]
        whole, bytewise = v["nginx"], v.get("nginx_bytewise", v["nginx"])
        if whole == exp and bytewise == exp:
            continue
        cell = lambda text: text.replace("|", "\\|")
        rows.append(
            "| `%s` | %s | %s | %s | %s |"
            % (
                v["name"],
                cell(v["case"]),
                outcome_text(exp),
                cell(outcome_text(whole)),
                ("same" if bytewise == whole else cell(outcome_text(bytewise)))
                + (" (timing-dependent)" if v.get("nginx_also_seen") else ""),
            )
        )
    return "\n".join(rows)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("nginx exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("nginx did not listen on 127.0.0.1:%d" % port)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "vectors.json")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    version = version.split("version:")[-1].strip()
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    vectors = doc["vectors"]
    workdir = tempfile.mkdtemp(prefix="conformance-nginx-")
    os.chmod(workdir, 0o755)  # workers run as nobody
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(CONFIG.format(dir=workdir, port=port))
    proc = subprocess.Popen([nginx, "-p", workdir, "-c", conf])
    try:
        wait_listening(port, proc)
        started = time.monotonic()
        # nginx answers a body-less location as soon as the head is in and
        # reads the body afterwards, so with one byte per write its verdict
        # can depend on timing: each mode runs ROUNDS times, the most common
        # outcome is recorded, and any other seen goes in `nginx_also_seen`.
        seen = {False: [[] for _ in vectors], True: [[] for _ in vectors]}
        with ThreadPoolExecutor(16) as pool:
            for _ in range(ROUNDS):
                for bytewise in (False, True):
                    outcomes = pool.map(lambda v, b=bytewise: run(port, v, b), vectors)
                    for i, outcome in enumerate(outcomes):
                        seen[bytewise][i].append(outcome)
        differ = 0
        for i, vector in enumerate(vectors):
            w, b = most_common(seen[False][i]), most_common(seen[True][i])
            vector["nginx"] = w
            for key in ("nginx_bytewise", "nginx_also_seen"):
                vector.pop(key, None)
            if b != w:
                vector["nginx_bytewise"] = b
            others = []
            for mode, runs, chosen in (("whole", seen[False][i], w), ("bytewise", seen[True][i], b)):
                for outcome in runs:
                    entry = {"split": mode, **outcome}
                    if outcome != chosen and entry not in others:
                        others.append(entry)
            if others:
                vector["nginx_also_seen"] = others
            exp = {"responses": vector["expect"]["responses"], "then": vector["expect"]["then"]}
            if exp["responses"] == "raw":
                exp["responses"] = ["raw"]
            if w != exp or b != exp:
                differ += 1
        doc["nginx_version"] = version
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=True)
            f.write("\n")
        print(difference_table(vectors))
        print(
            "nginx %s: %d of %d vectors differ from the expectation (%.1f s)"
            % (version, differ, len(vectors), time.monotonic() - started)
        )
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
