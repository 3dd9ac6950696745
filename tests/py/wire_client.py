"""An independent Python implementation of the frontend side of the wire
format (docs/wire.md), over pyzmq: the engine tests drive `cvllm engine-core`
with it. Written from the document, not from engine/wire.c, so the tests
also check that the two agree."""
import struct

import zmq

MAGIC, VERSION = 0x4356, 1
ADD, ABORT, OUTPUTS, UTILITY, UTILITY_RESULT, READY, ENGINE_DEAD = range(1, 8)
FINISH = {0: None, 1: 'stop', 2: 'length', 3: 'abort', 4: 'error'}


class Frame(bytes):
    rid = None


def frame(typ, payload):
    return Frame(struct.pack('<HBBI', MAGIC, VERSION, typ, len(payload)) + payload)


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack('<I', len(b)) + b


def u32s(xs):
    return struct.pack('<I', len(xs)) + b''.join(struct.pack('<I', x) for x in xs)


def add(rid, prompt, max_tokens=8, temperature=0.0, top_p=1.0, min_p=0.0, top_k=0, seed=None, ignore_eos=False,
        min_tokens=0, logprobs=-1, stop_token_ids=(), allowed=(), bias=(), arrival=0.0, client=0, priority=0,
        presence=0.0, frequency=0.0, repetition=1.0):
    sp = struct.pack('<fffifffQBBBIIii', temperature, top_p, min_p, top_k, presence, frequency, repetition,
                     seed or 0, seed is not None, ignore_eos, 0, max_tokens, min_tokens, logprobs, -1)
    sp += u32s(list(stop_token_ids)) + u32s(list(allowed)) + u32s([t for t, _ in bias])
    sp += b''.join(struct.pack('<f', v) for _, v in bias)
    f = frame(ADD, s(rid) + u32s(list(prompt)) + sp + struct.pack('<dHi', arrival, client, priority))
    f.rid = rid
    return f


def abort(ids):
    return frame(ABORT, struct.pack('<I', len(ids)) + b''.join(s(i) for i in ids))


def utility(method, call_id=1, arg=0):
    return frame(UTILITY, struct.pack('<I', call_id) + s(method) + struct.pack('<qiq', arg, 0, 0))


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, fmt):
        v = struct.unpack_from('<' + fmt, self.b, self.p)
        self.p += struct.calcsize('<' + fmt)
        return v if len(v) > 1 else v[0]

    def str(self):
        n = self.take('I')
        v = self.b[self.p:self.p + n]
        self.p += n
        return v.decode()

    def u32s(self):
        n = self.take('I')
        return [self.take('I') for _ in range(n)]


def decode(b):
    magic, ver, typ, n = struct.unpack_from('<HBBI', b, 0)
    assert magic == MAGIC and ver == VERSION and n == len(b) - 8
    r = Reader(b)
    r.p = 8
    if typ == OUTPUTS:
        eng, t, running, waiting, count = r.take('HdIII')
        outs = []
        for _ in range(count):
            o = {'id': r.str(), 'tokens': r.u32s()}
            n_lp = r.take('I')
            k = n_lp * len(o['tokens'])
            ids = [r.take('I') for _ in range(k)]
            vals = [r.take('f') for _ in range(k)]
            o['logprobs'] = list(zip(ids, vals))
            o['finish'] = FINISH[r.take('B')]
            o['stop_token'] = r.take('i')
            o['cached'] = r.take('I')
            o['nan'] = r.take('B')
            o['t_queued'], o['t_scheduled'], o['t_first'], o['t_last'] = r.take('dddd')
            o['preemptions'] = r.take('I')
            outs.append(o)
        assert r.p == len(b)
        return {'type': 'outputs', 'engine': eng, 'running': running, 'waiting': waiting, 'outputs': outs}
    if typ == UTILITY_RESULT:
        cid = r.take('I')
        m = r.str()
        arg, status, value = r.take('qiq')
        return {'type': 'utility_result', 'call_id': cid, 'method': m, 'status': status, 'value': value}
    if typ == READY:
        eng, mml, nb, bs = r.take('HIII')
        return {'type': 'ready', 'engine': eng, 'max_model_len': mml, 'num_blocks': nb, 'block_size': bs,
                'model': r.str()}
    return {'type': typ}


class Client:
    def __init__(self, endpoint, ident):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.ROUTING_ID, ident.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, f):
        self.sock.send(f)

    def recv(self, timeout_ms=10000):
        if not self.sock.poll(timeout_ms):
            raise TimeoutError('no message from the engine')
        return decode(self.sock.recv())

    def ready(self, timeout_s=60):
        import time
        end = time.time() + timeout_s
        while time.time() < end:
            self.send(utility('ready'))
            if self.sock.poll(500):
                m = decode(self.sock.recv())
                if m['type'] == 'ready':
                    return m
        raise TimeoutError('engine not ready')

    def run(self, reqs, timeout_ms=60000):
        """Sends add frames, collects outputs until every request finished."""
        for f in reqs:
            self.send(f)
        want = {f.rid for f in reqs}
        got, done = {}, set()
        while done != want:
            m = self.recv(timeout_ms)
            if m['type'] != 'outputs':
                continue
            for o in m['outputs']:
                if o['id'] not in want:
                    continue     # e.g. the final output of an earlier abort
                got.setdefault(o['id'], []).append(o)
                if o['finish']:
                    done.add(o['id'])
        return got

    def close(self):
        self.sock.close()
