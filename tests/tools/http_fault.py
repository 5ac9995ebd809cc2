#!/usr/bin/env python3
"""A fault in front of an HTTP server, for the alert delivery test: every request goes to the
upstream (the real Alertmanager) unless the mode file says otherwise. The mode is read per
request, so the test changes it by rewriting the file:

  pass      forward the request and its answer
  500       answer 500 without forwarding
  slow N    wait N seconds, then forward

usage: http_fault.py PORT_FILE MODE_FILE UPSTREAM_URL
Binds 127.0.0.1 on a free port, writes the port to PORT_FILE once it listens. Counts what it saw
in MODE_FILE.log, one line per request: the mode it applied and the status it answered."""
import http.server
import os
import socketserver
import sys
import time
import urllib.error
import urllib.request

port_file, mode_file, upstream = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/")


def mode():
    try:
        with open(mode_file) as f:
            return f.read().split() or ["pass"]
    except FileNotFoundError:
        return ["pass"]


class Fault(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with open(mode_file + ".log", "a") as log:
            log.write("%s %d\n" % (" ".join(self.mode), status))

    def forward(self, method):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.mode = mode()
        if self.mode[0] == "500":
            return self.answer(500, b'{"error": "injected by the test"}')
        if self.mode[0] == "slow":
            time.sleep(float(self.mode[1]))
        req = urllib.request.Request(upstream + self.path, data=body if method == "POST" else None,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return self.answer(r.status, r.read())
        except urllib.error.HTTPError as e:
            return self.answer(e.code, e.read())
        except urllib.error.URLError:  # the upstream is down: say so, as a gateway does
            return self.answer(502, b'{"error": "upstream unreachable"}')

    def do_POST(self):
        self.forward("POST")

    def do_GET(self):
        self.forward("GET")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Fault)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
