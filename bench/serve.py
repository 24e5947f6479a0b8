"""Serves a directory over HTTP on loopback, sending file bodies with
sendfile(2) so the server takes as little of the machine as it can.

usage: serve.py DIR PORT
"""
import functools
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def copyfile(self, source, outputfile):
        outputfile.flush()
        self.connection.sendfile(source)

    def log_message(self, *args):
        pass


directory, port = sys.argv[1], int(sys.argv[2])
handler = functools.partial(Handler, directory=directory)
http.server.ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()
