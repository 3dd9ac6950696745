"""The frontend HTTP layer (fe_http + fe_api) as a client sees it: routes,
/metrics negotiation and gzip, keep-alive and pipelining, limits and bad
input (each answered, and the server keeps serving), timeouts, SO_REUSEPORT
workers. Runs the real server (tests/tools/http_tool) on loopback."""
import gzip
import http.client
import json
import os
import socket
import subprocess
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from conftest import BUILD, run

TOOL = BUILD / 'tests/tools/http_tool'


class Server:
    def __init__(self, d, *args):
        if not TOOL.exists():
            pytest.skip('http_tool not built')
        self.p = subprocess.Popen([str(TOOL), '--metrics-dir', d, '--host', '127.0.0.1', *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.startswith('listening '), self.p.stderr.read()
        self.port = int(line.split()[1])

    def conn(self):
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)

    def get(self, path, headers=None, method='GET', body=None):
        c = self.conn()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def raw(self, data, wait=2.0):
        s = socket.create_connection(('127.0.0.1', self.port), timeout=wait)
        s.sendall(data)
        out = b''
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        s.close()
        return out

    def stop(self):
        self.p.terminate()
        rc = self.p.wait(timeout=10)
        err = self.p.stderr.read()
        assert rc == 0, err     # clean shutdown: every handle closed, loop empty
        return err


@pytest.fixture
def server(tmp_path):
    s = Server(str(tmp_path), '--request-timeout-ms', '800', '--idle-timeout-ms', '600',
               '--max-header-bytes', '8192', '--max-body-bytes', '100000')
    yield s
    s.stop()


def test_routes(server):
    r, body = server.get('/health')
    assert (r.status, body) == (200, b'')
    r, body = server.get('/ping', method='POST')
    assert r.status == 200
    r, body = server.get('/version')
    assert r.status == 200 and json.loads(body) == {'version': 'test'}
    r, body = server.get('/v1/nothing')
    assert r.status == 404 and json.loads(body) == {'detail': 'Not Found'}
    r, body = server.get('/health', method='DELETE')
    assert r.status == 405 and json.loads(body) == {'detail': 'Method Not Allowed'}


def py_expo(d):
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg, path=d)
    return generate_latest(reg).decode()


def test_metrics_negotiation_and_gzip(server, tmp_path):
    d = str(tmp_path)
    r, text = server.get('/metrics')
    assert r.status == 200
    assert r.getheader('content-type') == 'text/plain; version=0.0.4; charset=utf-8'
    # the worker's own self-metrics are in the directory, merged like any process's
    assert b'cvllm_metrics_files_skipped_total 0.0' in text
    r, om = server.get('/metrics', {'Accept': 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5'})
    assert r.getheader('content-type').startswith('application/openmetrics-text; version=1.0.0')
    assert om.endswith(b'# EOF\n')
    r, z = server.get('/metrics', {'Accept-Encoding': 'gzip'})
    assert r.getheader('content-encoding') == 'gzip'
    plain = gzip.decompress(z).decode()
    # what the server renders equals prometheus_client over the same directory
    # (up to the scrape-duration histogram, which the scrape itself just moved)
    strip = lambda s: '\n'.join(l for l in s.splitlines() if 'scrape_duration' not in l and 'db_files' not in l)
    assert strip(plain) == strip(py_expo(d))
    r, only = server.get('/metrics?name%5B%5D=cvllm_metrics_files_skipped_total')
    assert only.decode().count('# TYPE') == 1 and b'files_skipped_total' in only


def test_keep_alive_and_pipelining(server):
    c = server.conn()
    for _ in range(5):
        c.request('GET', '/health')
        r = c.getresponse()
        assert r.status == 200
        r.read()
    c.close()
    reqs = b''.join(b'GET /version HTTP/1.1\r\nHost: x\r\n\r\n' for _ in range(50))
    out = server.raw(reqs + b'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert out.count(b'HTTP/1.1 200 OK') == 51
    assert out.count(b'{"version":"test"}') == 50
    assert out.endswith(b'content-length: 0\r\nconnection: close\r\n\r\n')


def test_bad_requests_are_answered_and_server_survives(server):
    out = server.raw(b'GARBAGE\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 400 Bad Request') and b'"code":400' in out
    out = server.raw(b'GET / HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * 20000 + b'\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 431')
    out = server.raw(b'GET / HTTP/1.1\r\n' + b''.join(b'X-H%d: v\r\n' % i for i in range(100)) + b'\r\n')
    assert out.startswith(b'HTTP/1.1 431')
    out = server.raw(b'POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 413')
    chunked = b'POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' + \
        b''.join(b'4000\r\n' + b'x' * 0x4000 + b'\r\n' for _ in range(8)) + b'0\r\n\r\n'
    out = server.raw(chunked)
    assert out.startswith(b'HTTP/1.1 413')
    out = server.raw(b'GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 400')
    out = server.raw(b'\x00\xff\x16\x03\x01binary junk\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 400')
    r, _ = server.get('/health')
    assert r.status == 200


def test_slow_client_and_idle_timeouts(server):
    t0 = time.time()
    out = server.raw(b'GET /health HTTP/1.1\r\nHost: x\r\n', wait=5)   # never finishes its head
    assert out.startswith(b'HTTP/1.1 408') and time.time() - t0 < 4
    s = socket.create_connection(('127.0.0.1', server.port), timeout=5)
    t0 = time.time()
    assert s.recv(10) == b''                                            # idle: closed quietly
    assert 0.4 < time.time() - t0 < 4
    s.close()
    r, _ = server.get('/health')
    assert r.status == 200


def test_client_disconnect_mid_request(server):
    for _ in range(20):
        s = socket.create_connection(('127.0.0.1', server.port))
        s.sendall(b'POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf')
        s.close()
    r, _ = server.get('/health')
    assert r.status == 200


def test_reuseport_workers_share_the_port(tmp_path):
    a = Server(str(tmp_path), '--reuseport')
    b = Server(str(tmp_path), '--reuseport', '--port', str(a.port))
    try:
        for _ in range(20):
            r, _ = a.get('/health')
            assert r.status == 200
        # both workers' self-metrics files are merged whoever answers
        r, text = b.get('/metrics')
        assert r.status == 200
    finally:
        a.stop()
        b.stop()
    files = [f for f in os.listdir(tmp_path) if f.endswith('.db')]
    assert len({f.rsplit('_', 1)[1] for f in files}) == 2


def test_http_metrics_like_the_instrumentator(server):
    for _ in range(3):
        server.get('/v1/unknown', method='POST', body=b'12345', headers={'Content-Type': 'application/json'})
    server.get('/health')
    server.get('/version')
    r, text = server.get('/metrics')
    text = text.decode()
    assert 'http_requests_total{handler="none",method="POST",status="4xx"} 3.0' in text
    assert 'handler="/health"' not in text and 'handler="/version"' not in text
    assert 'http_request_size_bytes_count{handler="none"} 3.0' in text
    assert 'http_request_size_bytes_sum{handler="none"} 15.0' in text
    assert 'http_response_size_bytes_sum{handler="none"} 66.0' in text      # 3 x {"detail":"Not Found"}
    assert 'http_request_duration_highr_seconds_count 3.0' in text
    assert 'http_request_duration_seconds_bucket{handler="none",le="+Inf",method="POST"} 3.0' in text
