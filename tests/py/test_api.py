"""The API worker end to end: one `cvllm engine-core` on the default model and
two `cvllm api-worker` processes sharing a port (SO_REUSEPORT), driven by the
OpenAI Python SDK and raw HTTP."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import BUILD, ROOT

openai = pytest.importorskip('openai')
MODEL = ROOT / 'models' / 'SmolLM2-135M-Instruct.Q4_1.gguf'
CVLLM = BUILD / 'cli' / 'cvllm'
KEY = 'sk-test-key'
pytestmark = pytest.mark.skipif(not MODEL.exists(), reason='default model not in models/')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={'Content-Type': 'application/json', **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture(scope='module')
def server():
    d = tempfile.mkdtemp(prefix='cvllm-api-')
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=d)
    ep = f'ipc://{d}/engine-0'
    port = free_port()
    procs = [subprocess.Popen([str(CVLLM), 'engine-core', str(MODEL), '--engine-endpoint', ep,
                               '--max-model-len', '1024', '--num-gpu-blocks-override', '256'],
                              env=env, stderr=subprocess.PIPE, text=True)]
    for i in range(2):
        procs.append(subprocess.Popen([str(CVLLM), 'api-worker', str(MODEL), '--engine-endpoint', ep,
                                       '--max-model-len', '1024', '--host', '127.0.0.1', '--port', str(port),
                                       '--served-model-name', 'smol', '--api-key', KEY, '--worker-index', str(i)],
                                      env=env, stderr=subprocess.PIPE, text=True))
    base = f'http://127.0.0.1:{port}'
    for _ in range(300):
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError('process exited: ' + p.stderr.read())
        try:
            if http('GET', base + '/health', timeout=2)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        raise TimeoutError('api worker not up')
    yield base, procs, d
    rcs = []
    for p in procs[1:] + procs[:1]:
        p.send_signal(signal.SIGTERM)
        try:
            rcs.append(p.wait(timeout=15))
        except subprocess.TimeoutExpired:
            p.kill()
            rcs.append('timeout')
    assert rcs[:2] == [0, 0], [p.stderr.read() for p in procs[1:]]


@pytest.fixture(scope='module')
def client(server):
    return openai.OpenAI(base_url=server[0] + '/v1', api_key=KEY, max_retries=0, timeout=120)


def test_chat_paris(client):
    r = client.chat.completions.create(model='smol', temperature=0, max_tokens=16,
                                       messages=[{'role': 'user', 'content': 'What is the capital of France?'}])
    assert 'Paris' in r.choices[0].message.content
    assert r.choices[0].message.role == 'assistant'
    assert r.usage.prompt_tokens > 5 and r.usage.completion_tokens >= 1


def test_completion_text_and_tokens(server, client):
    a = client.completions.create(model='smol', prompt='The capital of France is', max_tokens=4, temperature=0)
    assert a.choices[0].finish_reason == 'length' and a.usage.completion_tokens == 4
    st, body = http('POST', server[0] + '/tokenize', {'prompt': 'The capital of France is'})
    assert st == 200
    toks = json.loads(body)['tokens']
    st, body = http('POST', server[0] + '/detokenize', {'tokens': toks})
    assert st == 200 and json.loads(body)['prompt'] == 'The capital of France is'
    b = client.completions.create(model='smol', prompt=toks, max_tokens=4, temperature=0)
    assert b.choices[0].text == a.choices[0].text
    assert b.usage.prompt_tokens == len(toks)


def test_stream_matches_nonstream(client):
    kw = dict(model='smol', temperature=0, max_tokens=6,
              messages=[{'role': 'user', 'content': 'Name a color.'}])
    full = client.chat.completions.create(**kw).choices[0].message.content
    parts, usage, finish = [], None, None
    for ch in client.chat.completions.create(stream=True, stream_options={'include_usage': True}, **kw):
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            parts.append(c.delta.content or '')
            finish = c.finish_reason or finish
    assert ''.join(parts) == full
    assert usage is not None and usage.completion_tokens >= 1 and finish in ('stop', 'length')


def test_stream_completions(client):
    full = client.completions.create(model='smol', prompt='One, two,', max_tokens=5, temperature=0).choices[0].text
    text = ''.join(c.choices[0].text for c in client.completions.create(
        model='smol', prompt='One, two,', max_tokens=5, temperature=0, stream=True) if c.choices)
    assert text == full


def test_n2_seed(client):
    r = client.completions.create(model='smol', prompt='Once upon a time', max_tokens=4, n=2, temperature=1.0,
                                  seed=7)
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert r.usage.completion_tokens == 8


def test_stop_string(client):
    full = client.completions.create(model='smol', prompt='One, two, three, four,', max_tokens=8,
                                     temperature=0).choices[0].text
    assert ',' in full.strip()
    stop = ','
    r = client.completions.create(model='smol', prompt='One, two, three, four,', max_tokens=8, temperature=0,
                                  stop=[stop])
    assert r.choices[0].text == full[:full.index(stop)]
    assert r.choices[0].finish_reason == 'stop'


def test_errors(server, client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model='nope', prompt='x', max_tokens=1)
    assert 'The model `nope` does not exist.' in str(e.value)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model='smol', prompt='x', max_tokens=1, temperature=-1)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model='smol', prompt='hi ' * 1100, max_tokens=1)
    assert 'maximum context length' in str(e.value) or 'context' in str(e.value)
    st, body = http('POST', server[0] + '/v1/completions', {'model': 'smol', 'prompt': 'x'})
    assert st == 401 and json.loads(body) == {'error': 'Unauthorized'}
    st, _ = http('GET', server[0] + '/v1/models', headers={'Authorization': 'Bearer wrong'})
    assert st == 401


def test_models(client):
    m = client.models.list().data
    assert [x.id for x in m] == ['smol'] and m[0].owned_by == 'vllm'
    assert m[0].model_extra['max_model_len'] == 1024


def running(base):
    st, body = http('GET', base + '/metrics')
    assert st == 200
    return sum(float(l.rsplit(' ', 1)[1]) for l in body.splitlines() if l.startswith('vllm:num_requests_running'))


def test_disconnect_aborts(server):
    base = server[0]
    port = int(base.rsplit(':', 1)[1])
    body = json.dumps({'model': 'smol', 'prompt': 'Tell me a long story.', 'max_tokens': 800, 'stream': True,
                       'ignore_eos': True}).encode()
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
              b'Authorization: Bearer ' + KEY.encode() + b'\r\nContent-Length: ' + str(len(body)).encode() +
              b'\r\n\r\n' + body)
    got = b''
    while got.count(b'data:') < 2:
        got += s.recv(4096)
    assert b'200' in got.split(b'\r\n')[0]
    assert running(base) >= 1
    s.close()
    for _ in range(100):
        if running(base) == 0:
            break
        time.sleep(0.1)
    assert running(base) == 0


def test_two_workers_serve(server):
    _, procs, _ = server
    base = server[0]
    # many short connections spread over both workers; /proc says each one answered
    before = [int(open(f'/proc/{p.pid}/io').read().split('wchar: ')[1].split()[0]) for p in procs[1:]]
    for _ in range(40):
        assert http('GET', base + '/health')[0] == 200
    after = [int(open(f'/proc/{p.pid}/io').read().split('wchar: ')[1].split()[0]) for p in procs[1:]]
    assert all(a > b for a, b in zip(after, before))


def test_logprobs(client):
    r = client.completions.create(model='smol', prompt='The sky is', max_tokens=3, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 3 and len(lp.token_logprobs) == 3
    assert ''.join(lp.tokens) == r.choices[0].text
    assert all(v <= 0 for v in lp.token_logprobs) and all(len(t) >= 1 for t in lp.top_logprobs)
    c = client.chat.completions.create(model='smol', temperature=0, max_tokens=3, logprobs=True, top_logprobs=2,
                                       messages=[{'role': 'user', 'content': 'Hi'}])
    content = c.choices[0].logprobs.content
    assert len(content) == 3 and all(len(t.top_logprobs) == 2 for t in content)
    chunks = [ch for ch in client.completions.create(model='smol', prompt='The sky is', max_tokens=3,
                                                      temperature=0, logprobs=1, stream=True) if ch.choices]
    assert sum(len(ch.choices[0].logprobs.tokens) for ch in chunks if ch.choices[0].logprobs) == 3


def test_echo(client):
    r = client.completions.create(model='smol', prompt='Hello there', max_tokens=2, temperature=0, echo=True)
    plain = client.completions.create(model='smol', prompt='Hello there', max_tokens=2, temperature=0)
    assert r.choices[0].text == 'Hello there' + plain.choices[0].text
    z = client.completions.create(model='smol', prompt='Hello there', max_tokens=0, echo=True)
    assert z.choices[0].text == 'Hello there' and z.usage.completion_tokens == 0
    s = ''.join(c.choices[0].text for c in client.completions.create(
        model='smol', prompt='Hello there', max_tokens=2, temperature=0, echo=True, stream=True) if c.choices)
    assert s == r.choices[0].text


def test_logprobs_n2(client):
    r = client.completions.create(model='smol', prompt='The sky is', max_tokens=2, n=2, temperature=0.8, seed=3,
                                  logprobs=1)
    assert len(r.choices) == 2
    for c in r.choices:
        assert ''.join(c.logprobs.tokens) == c.text and len(c.logprobs.token_logprobs) == 2
