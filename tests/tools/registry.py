#!/usr/bin/env python3
"""A stand-in for the Confluent Schema Registry, for vigil's tests (no registry server can be
installed here). Serves GET /schemas/ids/<id> from <dir>/<id>.avsc and answers the way the real
one does: content type application/vnd.schemaregistry.v1+json, {"schema": "..."} on success,
404 {"error_code": 40403, ...} for an unknown id, 401 {"error_code": 40101, ...} without the
right basic auth, and, with --fail-first N, 500 {"error_code": 50001, ...} for the first N
requests (to test retries). Every request is logged to stdout as "GET <path> <status>".
"""
import argparse
import base64
import http.server
import json
import os
import ssl
import sys
import threading

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0, help="0 picks a free one")
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    lock = threading.Lock()
    state = {"failures_left": args.fail_first}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            print("GET %s %d" % (self.path, status), flush=True)

        def do_GET(self):
            if args.user is not None:
                want = "Basic " + base64.b64encode(
                    ("%s:%s" % (args.user, args.password or "")).encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self.answer(401, {"error_code": 40101, "message": "Unauthorized"})
            with lock:
                fail = state["failures_left"] > 0
                if fail:
                    state["failures_left"] -= 1
            if fail:
                return self.answer(500, {"error_code": 50001,
                                         "message": "Error in the backend data store"})
            parts = self.path.split("/")
            if len(parts) != 4 or parts[1] != "schemas" or parts[2] != "ids" or not parts[3].isdigit():
                return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
            path = os.path.join(args.dir, "%d.avsc" % int(parts[3]))
            if not os.path.exists(path):
                return self.answer(404, {"error_code": 40403,
                                         "message": "Schema %s not found" % parts[3]})
            with open(path) as f:
                return self.answer(200, {"schema": f.read()})

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
