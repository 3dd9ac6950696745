"""The engine process end to end over real ZeroMQ (`cvllm engine-core`, driven
by tests/py/wire_client.py, an independent implementation of docs/wire.md)
with a tiny generated model: batching invariance, max_tokens and stop ids,
aborts, prefix-cache accounting, preemption under KV pressure, malformed
frames, an engine killed and restarted, two data-parallel engines, and the
metrics the engine writes."""
import os
import signal
import subprocess
import tempfile
import time

import numpy as np
import pytest

from conftest import BUILD
import wire_client as w

gguf = pytest.importorskip('gguf')
from test_forward import SMALL, hf_weights, write_gguf  # noqa: E402

CVLLM = BUILD / 'cli' / 'cvllm'


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp('eng') / 'tiny.gguf'
    write_gguf(p, SMALL, hf_weights(SMALL, seed=5))
    return str(p)


class Engine:
    clients = 0

    def __init__(self, model, d, index=0, blocks=64, max_model_len=256, extra=()):
        self.d, self.index = d, index
        self.endpoint = f'ipc://{d}/engine-{index}'
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=d)
        self.p = subprocess.Popen([str(CVLLM), 'engine-core', model, '--engine-endpoint', self.endpoint,
                                   '--engine-index', str(index), '--num-gpu-blocks-override', str(blocks),
                                   '--max-model-len', str(max_model_len), '--served-model-name', 'tiny', '--threads', '1',
                                   '--data-parallel-size', '2', *extra],
                                  env=env, stderr=subprocess.PIPE, text=True)
        Engine.clients += 1
        self.c = w.Client(self.endpoint, f'fe-{index}-{Engine.clients}')
        for _ in range(120):
            try:
                self.ready = self.c.ready(timeout_s=0.5)
                break
            except TimeoutError:
                if self.p.poll() is not None:
                    raise RuntimeError('engine exited: ' + self.p.stderr.read())
        else:
            raise TimeoutError('engine not ready')

    def metrics(self):
        r = subprocess.run([str(CVLLM), 'metrics', self.d], capture_output=True, text=True, check=True)
        out = {}
        for line in r.stdout.splitlines():
            if line and not line.startswith('#'):
                k, v = line.rsplit(' ', 1)
                out[k] = float(v)
        return out

    def stop(self):
        self.c.close()
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout=30)
        err = self.p.stderr.read()
        assert rc == 0, err
        return err


@pytest.fixture
def engine(model):
    with tempfile.TemporaryDirectory() as d:
        e = Engine(model, d)
        yield e
        e.stop()


PROMPTS = [[int(t) for t in np.random.default_rng(s).integers(0, 300, n)] for s, n in ((1, 5), (2, 17), (3, 40))]


def tokens(outs):
    return [t for o in outs for t in o['tokens']]


def test_ready_handshake(engine):
    r = engine.ready
    assert (r['max_model_len'], r['num_blocks'], r['block_size'], r['model']) == (256, 64, 16, 'tiny')


def test_cache_config_info(engine):
    m = engine.metrics()
    k = [k for k in m if k.startswith('vllm:cache_config_info{')]
    assert len(k) == 1 and m[k[0]] == 1.0
    assert 'block_size="16"' in k[0] and 'engine="0"' in k[0] and 'num_gpu_blocks="64"' in k[0]
    assert 'enable_prefix_caching="True"' in k[0] and 'model_name' not in k[0]


def test_batching_does_not_change_greedy_outputs(engine):
    alone = [tokens(engine.c.run([w.add(f'a{i}', p, max_tokens=10)])[f'a{i}']) for i, p in enumerate(PROMPTS)]
    together = engine.c.run([w.add(f'b{i}', p, max_tokens=10) for i, p in enumerate(PROMPTS)])
    assert [tokens(together[f'b{i}']) for i in range(3)] == alone
    assert all(len(t) == 10 for t in alone)
    last = together['b0'][-1]
    assert last['finish'] == 'length' and last['t_queued'] <= last['t_scheduled'] <= last['t_first'] <= last['t_last']


def test_stop_token_ids_and_min_tokens(engine):
    ref = tokens(engine.c.run([w.add('r', PROMPTS[1], max_tokens=12)])['r'])
    stop = ref[3]
    first = ref.index(stop)
    got = engine.c.run([w.add('s', PROMPTS[1], max_tokens=12, stop_token_ids=[stop])])['s']
    assert tokens(got) == ref[:first + 1]
    assert got[-1]['finish'] == 'stop' and got[-1]['stop_token'] == stop
    # min_tokens suppresses the stop id until reached: the stream runs past it
    got = engine.c.run([w.add('m', PROMPTS[1], max_tokens=12, stop_token_ids=[stop], min_tokens=first + 2)])['m']
    assert len(tokens(got)) > first + 1


def test_abort_stops_outputs_and_resets_gauges(engine):
    engine.c.send(w.add('long', PROMPTS[2], max_tokens=200, ignore_eos=True))
    first = engine.c.recv()
    assert first['outputs'][0]['id'] == 'long'
    engine.c.send(w.abort(['long']))
    while True:   # outputs already sent, then the final abort output
        o = [o for o in engine.c.recv()['outputs'] if o['id'] == 'long']
        if o and o[-1]['finish']:
            assert o[-1]['finish'] == 'abort'
            break
    deadline = time.time() + 10
    while time.time() < deadline:
        m = engine.metrics()
        if m.get('vllm:num_requests_running{engine="0",model_name="tiny"}') == 0.0:
            break
        time.sleep(0.05)
    m = engine.metrics()
    assert m['vllm:num_requests_running{engine="0",model_name="tiny"}'] == 0.0
    assert m['vllm:num_requests_waiting{engine="0",model_name="tiny"}'] == 0.0
    assert m['vllm:kv_cache_usage_perc{engine="0",model_name="tiny"}'] == 0.0
    # the engine serves on
    assert len(tokens(engine.c.run([w.add('after', PROMPTS[0], max_tokens=3)])['after'])) == 3


def test_prefix_cache_accounting(engine):
    prompt = [int(t) for t in np.random.default_rng(9).integers(0, 300, 48)]
    before = engine.metrics()
    a = engine.c.run([w.add('p1', prompt, max_tokens=2)])['p1']
    b = engine.c.run([w.add('p2', prompt, max_tokens=2)])['p2']
    assert a[0]['cached'] == 0
    assert b[0]['cached'] == 32        # 48 tokens, block 16: the last token is always recomputed
    assert tokens(a) == tokens(b)
    m = engine.metrics()
    q = 'vllm:prefix_cache_queries_total{engine="0",model_name="tiny"}'
    h = 'vllm:prefix_cache_hits_total{engine="0",model_name="tiny"}'
    assert m[q] - before.get(q, 0) == 96 and m[h] - before.get(h, 0) == 32


def test_malformed_frames_are_dropped(engine):
    for junk in (b'', b'xx', b'\x56\x43\x01\x01\xff\xff\xff\xff', w.frame(w.ADD, b'\x01\x00'),
                 b'\x56\x43\x09\x01' + bytes(4)):
        engine.c.send(junk)
    assert len(tokens(engine.c.run([w.add('ok', PROMPTS[0], max_tokens=2)])['ok'])) == 2
    assert engine.p.poll() is None


def test_preemption_under_kv_pressure(model):
    # 8 blocks hold 128 tokens: the longest request alone ends at 120 tokens,
    # so while any other runs beside it someone must be preempted (the three
    # run ~80 steps each, overlapping however the frames arrive)
    with tempfile.TemporaryDirectory() as d:
        roomy = Engine(model, d, blocks=64, max_model_len=128)
        want = roomy.c.run([w.add(f'r{i}', p, max_tokens=80) for i, p in enumerate(PROMPTS)])
        roomy.stop()
    with tempfile.TemporaryDirectory() as d:
        tight = Engine(model, d, blocks=8, max_model_len=128)
        got = tight.c.run([w.add(f'r{i}', p, max_tokens=80) for i, p in enumerate(PROMPTS)])
        m = tight.metrics()
        tight.stop()
    for i in range(3):
        assert tokens(got[f'r{i}']) == tokens(want[f'r{i}'])    # recompute gives the same greedy tokens
    assert m['vllm:num_preemptions_total{engine="0",model_name="tiny"}'] >= 1
    assert sum(got[f'r{i}'][-1]['preemptions'] for i in range(3)) >= 1


def test_engine_killed_and_restarted(model):
    with tempfile.TemporaryDirectory() as d:
        e = Engine(model, d)
        want = tokens(e.c.run([w.add('x', PROMPTS[0], max_tokens=5)])['x'])
        e.p.kill()
        e.p.wait()
        client = e.c
        e2 = Engine(model, d)
        # the old client reconnects by itself to the new engine on the same endpoint
        got = client.run([w.add('y', PROMPTS[0], max_tokens=5)])
        assert tokens(got['y']) == want
        # counters of the dead engine persist (its pid's files remain)
        m = e2.metrics()
        assert m['vllm:iteration_tokens_total_count{engine="0",model_name="tiny"}'] >= 10
        client.close()
        e2.stop()


def test_two_data_parallel_engines_label_their_metrics(model):
    with tempfile.TemporaryDirectory() as d:
        e0, e1 = Engine(model, d, 0), Engine(model, d, 1)
        a = e0.c.run([w.add('a', PROMPTS[0], max_tokens=4)])
        b = e1.c.run([w.add('b', PROMPTS[0], max_tokens=4), w.add('c', PROMPTS[1], max_tokens=4)])
        assert tokens(a['a']) == tokens(b['b'])
        m = e0.metrics()
        assert m['vllm:iteration_tokens_total_sum{engine="0",model_name="tiny"}'] == 5 + 4
        assert m['vllm:iteration_tokens_total_sum{engine="1",model_name="tiny"}'] == 5 + 17 + 8
        e0.stop()
        e1.stop()


def test_kv_cache_smaller_than_max_model_len_is_a_startup_error(model):
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([str(CVLLM), 'engine-core', model, '--engine-endpoint', f'ipc://{d}/e',
                            '--num-gpu-blocks-override', '4', '--max-model-len', '256'],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert 'fewer than max_model_len 256' in r.stderr


def test_frontend_link_routes_to_the_least_loaded_engine_and_aborts(model):
    """fe_engine (the frontend's libuv-side link) against two real engines."""
    tool = BUILD / 'tests' / 'tools' / 'fe_engine_tool'
    if not tool.exists():
        pytest.skip('fe_engine_tool not built')
    with tempfile.TemporaryDirectory() as d:
        e0, e1 = Engine(model, d, 0), Engine(model, d, 1)
        r = subprocess.run([str(tool), e0.endpoint, e1.endpoint, '--', '8', '60', '3'], capture_output=True,
                           text=True, timeout=120)
        e0.stop()
        e1.stop()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == 'outstanding 0'
    rows = {l.split()[0]: l.split()[1:] for l in lines[:-1]}
    assert len(rows) == 8
    engines = [int(v[0]) for v in rows.values()]
    assert engines.count(0) == 4 and engines.count(1) == 4      # fewest outstanding: alternates
    assert rows['req-3'][1] == 'abort'
    for k, v in rows.items():
        if k != 'req-3':
            assert v[1] == 'length' and len(v) - 2 == 60
    assert len(rows['req-3']) - 2 < 60
