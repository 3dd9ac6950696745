"""`cvllm serve` as an operator runs it: the supervisor starts the engine and
the API workers, names every process, restarts a killed worker (its counters
stay, no counter ever decreases across scrapes), exits non-zero when the
engine dies, exits 0 on SIGTERM and removes its private metrics directory.
Uses the default model (skipped when models/ lacks it)."""
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD, ROOT

MODEL = ROOT / 'models' / 'SmolLM2-135M-Instruct.Q4_1.gguf'
pytestmark = pytest.mark.skipif(not MODEL.exists(), reason='default model not fetched (scripts/fetch-model)')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ''


def children(pid):
    out = subprocess.run(['ps', '-o', 'pid=,comm=', '--ppid', str(pid)], capture_output=True, text=True).stdout
    return {int(l.split()[0]): l.split()[1] for l in out.splitlines() if l.strip()}


class Serve:
    def __init__(self, *args, env=None):
        self.port = free_port()
        e = dict(os.environ)
        e.pop('PROMETHEUS_MULTIPROC_DIR', None)
        e.update(env or {})
        self.p = subprocess.Popen([str(BUILD / 'cli' / 'cvllm'), 'serve', str(MODEL), '--host', '127.0.0.1',
                                   '--port', str(self.port), '--max-model-len', '512',
                                   '--num-gpu-blocks-override', '64', *args],
                                  env=e, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError('serve exited: ' + self.p.stderr.read())
            if get(self.port, '/health')[0] == 200:
                return
            time.sleep(0.2)
        raise TimeoutError('serve did not become healthy')

    def metric(self, name):
        _, text = get(self.port, '/metrics')
        for line in text.splitlines():
            if line.startswith(name):
                return float(line.rsplit(' ', 1)[1])
        return None

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout=60)
        return rc, self.p.stderr.read()


def test_process_names_and_clean_shutdown():
    s = Serve('--api-workers', '2')
    kids = children(s.p.pid)
    names = sorted(kids.values())
    assert names == ['cvllm-api-0', 'cvllm-api-1', 'cvllm-engine-0'], names
    with open(f'/proc/{s.p.pid}/comm') as f:
        assert f.read().strip() == 'cvllm-serve'
    status, text = get(s.port, '/metrics')
    assert status == 200 and 'vllm:num_requests_running{engine="0"' in text
    rc, err = s.stop()
    assert rc == 0, err
    assert 'metrics in ' in err
    d = err.split('metrics in ', 1)[1].split()[0]
    assert not os.path.exists(d)


def test_killed_worker_is_restarted_and_counters_never_decrease():
    s = Serve('--api-workers', '2')
    for _ in range(6):
        get(s.port, '/v1/no-such-route')
    before = s.metric('http_requests_total{handler="none",method="GET",status="4xx"}')
    assert before == 6
    victim = [p for p, n in children(s.p.pid).items() if n == 'cvllm-api-0'][0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 60
    while time.time() < deadline:
        kids = children(s.p.pid)
        if sorted(kids.values()) == ['cvllm-api-0', 'cvllm-api-1', 'cvllm-engine-0'] and victim not in kids:
            break
        time.sleep(0.2)
    assert victim not in children(s.p.pid)
    seen = []
    for _ in range(20):
        v = s.metric('http_requests_total{handler="none",method="GET",status="4xx"}')
        if v is not None:
            seen.append(v)
    assert seen and min(seen) >= before and seen == sorted(seen)
    rc, err = s.stop()
    assert rc == 0
    assert 'API worker 0' in err and 'restarting' in err


def test_engine_death_ends_the_server_with_an_error():
    s = Serve('--api-workers', '1')
    engine = [p for p, n in children(s.p.pid).items() if n == 'cvllm-engine-0'][0]
    os.kill(engine, signal.SIGKILL)
    seen = set()
    while s.p.poll() is None:
        seen.add(get(s.port, '/health', timeout=1)[0])
        time.sleep(0.05)
    assert 503 in seen                          # /health reported the dead engine before the end
    rc = s.p.wait(timeout=60)
    assert rc == 1
    assert 'engine 0' in s.p.stderr.read()


def test_vllm_metric_counts_after_sequential_completions():
    """vllm-metrics.md §8.1: N sequential /v1/completions with a token-id prompt
    and max_tokens=T give exactly these counts and sums, for every family."""
    import json
    s = Serve('--api-workers', '2')
    P, N, T = 9, 10, 10
    prompt = [504, 3575, 282, 4649, 314, 504, 3575, 282, 4649][:P]
    for _ in range(N):
        req = urllib.request.Request(f'http://127.0.0.1:{s.port}/v1/completions', method='POST',
                                     headers={'Content-Type': 'application/json'},
                                     data=json.dumps({'model': str(MODEL), 'prompt': prompt, 'max_tokens': T,
                                                      'ignore_eos': True, 'temperature': 0}).encode())
        with urllib.request.urlopen(req, timeout=60) as r:
            body = json.loads(r.read())
        assert body['choices'][0]['finish_reason'] == 'length'
    lab = f'{{engine="0",model_name="{MODEL}"}}'
    want = {
        'vllm:time_to_first_token_seconds_count': N,
        'vllm:inter_token_latency_seconds_count': N * (T - 1),
        'vllm:e2e_request_latency_seconds_count': N,
        'vllm:request_queue_time_seconds_count': N,
        'vllm:request_inference_time_seconds_count': N,
        'vllm:request_prefill_time_seconds_count': N,
        'vllm:request_decode_time_seconds_count': N,
        'vllm:request_prompt_tokens_sum': N * P,
        'vllm:request_prompt_tokens_count': N,
        'vllm:request_generation_tokens_sum': N * T,
        'vllm:request_params_n_count': N,
        'vllm:request_params_max_tokens_sum': N * T,
        'vllm:request_params_max_tokens_count': N,
        'vllm:iteration_tokens_total_sum': N * (P + T),
        'vllm:iteration_tokens_total_count': N * T,
        'vllm:prompt_tokens_total': N * P,
        'vllm:generation_tokens_total': N * T,
        'vllm:num_requests_running': 0,
    }
    got = {k: s.metric(k + lab) for k in want}
    got['success'] = s.metric(f'vllm:request_success_total{{engine="0",finished_reason="length",model_name="{MODEL}"}}')
    rc, err = s.stop()
    assert rc == 0, err
    assert got['success'] == N
    for k, v in want.items():
        assert got[k] == v, (k, got[k], v)
