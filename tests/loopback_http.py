"""A throwaway HTTP server for the download tests: 127.0.0.1 only, exits by itself.

Run as `python loopback_http.py ROOT MAX_SECONDS`; prints its port on the first line.
  /files/NAME          serves ROOT/NAME
  /signed/NAME?token=s3cret   serves ROOT/NAME only with that query (403 without)
  /status/CODE         answers with that HTTP status
  /flaky/N/NAME        answers 503 to the first N requests, then serves ROOT/NAME
  /stall               accepts the request and sends nothing for a minute
  /endless             sends zeros without end (no Content-Length), until the client leaves
  /short/NAME          announces ROOT/NAME's length, sends half of it and closes
  /gzip/NAME           sends ROOT/NAME gzip-compressed with Content-Encoding: gzip
"""

import gzip
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(sys.argv[1])
MAX_SECONDS = float(sys.argv[2])
hits = Counter()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send_file(self, name):
        path = ROOT / name
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        hits[self.path] += 1
        if parts[0] == "files" and len(parts) == 2:
            self._send_file(parts[1])
        elif parts[0] == "signed" and len(parts) == 2:  # a signed URL: only ?token=s3cret gets the file
            self._send_file(parts[1]) if query == "token=s3cret" else self.send_error(403)
        elif parts[0] == "status" and len(parts) == 2:
            self.send_error(int(parts[1]))
        elif parts[0] == "flaky" and len(parts) == 3:
            if hits[self.path] <= int(parts[1]):
                self.send_error(503)
            else:
                self._send_file(parts[2])
        elif parts[0] == "stall":
            time.sleep(60)
        elif parts[0] == "endless":
            self.send_response(200)
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
        elif parts[0] == "short" and len(parts) == 2:
            body = (ROOT / parts[1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif parts[0] == "gzip" and len(parts) == 2:
            body = gzip.compress((ROOT / parts[1]).read_bytes())
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
threading.Timer(MAX_SECONDS, server.shutdown).start()
server.serve_forever()
