"""engine/sample checked against numpy through tests/tools/sample_tool.

Every expectation is computed here with numpy (softmax, the vLLM top-p rule
written on an ascending cumsum as vLLM writes it, the float32 penalty
formula); the tool only reports what the C module did. Draw-based checks use
fixed seeds, so they are deterministic.

Build dir: $CVLLM_BUILD_DIR (default: <repo>/build).
"""
import json
import math
import subprocess

import numpy as np
import pytest

from conftest import binary


def tool(req):
    p = subprocess.run([binary('tests/tools/sample_tool')], input=json.dumps(req), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def enc(x):
    """Logits for the tool: NaN/inf as strings (cJSON has no NaN literal)."""
    return [str(v) if not math.isfinite(v) else float(v) for v in np.asarray(x, dtype=np.float64)]


def rand_logits(seed, V, scale=3.0):
    return np.random.default_rng(seed).normal(0, scale, V).astype(np.float32)


def sample(x, steps=1, **kw):
    params = kw.pop('params', {})
    r = tool(dict(op='sample', logits=enc(x), params=params, steps=steps, **kw))
    assert r['rc'] == 0, r
    return r


def kept(x, **params):
    r = tool(dict(op='kept', logits=enc(x), params=params))
    assert r['rc'] == 0, r
    return r['ids'], np.array(r['probs'])


def np_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def np_log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max()
    return z - m - np.log(np.exp(z - m).sum())


def np_kept(x, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """vLLM's filter chain, written independently: temperature -> min_p ->
    top_k (ties with the k-th kept) -> top_p (ascending cumsum <= 1 - p
    masked, the largest always kept). Returns the kept id set."""
    z = x.astype(np.float32) / np.float32(temperature)
    z = z.astype(np.float64)
    if min_p > 0:
        p = np_softmax(z)
        z = np.where(p < min_p * p.max(), -np.inf, z)
    if 0 < top_k < np.isfinite(z).sum():
        kth = np.sort(z)[::-1][top_k - 1]
        z = np.where(z < kth, -np.inf, z)
    if top_p < 1:
        order = np.lexsort((-np.arange(len(z)), z))  # ascending value, ties: higher id first
        p = np_softmax(z)[order]
        mask = np.cumsum(p) <= 1 - top_p
        mask[-1] = False
        z[order[mask]] = -np.inf
    return set(np.nonzero(np.isfinite(z))[0].tolist())


# --- greedy ---------------------------------------------------------------------

@pytest.mark.parametrize('seed', range(5))
def test_greedy_is_argmax(seed):
    x = rand_logits(seed, 3000)
    r = sample(x, params=dict(temperature=0.0))
    assert r['steps'][0]['token'] == int(np.argmax(x))


def test_greedy_tie_lowest_id():
    x = np.zeros(50, np.float32)
    x[[31, 7, 40]] = 2.0
    assert sample(x, params=dict(temperature=0))['steps'][0]['token'] == 7


@pytest.mark.parametrize('seed', range(5))
def test_top_k_1_is_greedy(seed):
    x = rand_logits(seed, 2000)
    r = sample(x, steps=20, params=dict(temperature=1.3, top_k=1, seed=seed))
    assert {s['token'] for s in r['steps']} == {int(np.argmax(x))}


# --- distributions --------------------------------------------------------------

@pytest.mark.parametrize('T', [0.5, 1.0, 1.7])
def test_temperature_matches_softmax(T):
    V, N = 16, 30000
    x = rand_logits(7, V, 1.0)
    r = tool(dict(op='sample', logits=enc(x), params=dict(temperature=T, seed=99), steps=N, hist=True))
    assert r['rc'] == 0
    counts = np.array(r['counts'], dtype=np.float64)
    expect = N * np_softmax(x.astype(np.float32) / np.float32(T))
    chi2 = ((counts - expect) ** 2 / expect).sum()
    assert chi2 < 37.7, (chi2, counts, expect)  # df 15, P(chi2 > 37.7) = 0.001


def test_top_k_top_p_distribution():
    V, N = 12, 20000
    x = rand_logits(3, V, 1.5)
    params = dict(temperature=0.9, top_k=6, top_p=0.8, seed=5)
    ids = np_kept(x, temperature=0.9, top_k=6, top_p=0.8)
    r = tool(dict(op='sample', logits=enc(x), params=params, steps=N, hist=True))
    counts = np.array(r['counts'], dtype=np.float64)
    assert set(np.nonzero(counts)[0].tolist()) == ids
    z = x.astype(np.float32) / np.float32(0.9)
    w = np.array([math.exp(z[i] - z.max()) if i in ids else 0 for i in range(V)])
    expect = N * w / w.sum()
    sel = expect > 0
    chi2 = ((counts[sel] - expect[sel]) ** 2 / expect[sel]).sum()
    assert chi2 < 30.0, (chi2, counts, expect)


@pytest.mark.parametrize('seed,top_p', [(0, 0.9), (1, 0.5), (2, 0.1), (3, 0.99), (4, 0.3)])
def test_top_p_set(seed, top_p):
    x = rand_logits(seed, 5000, 1.0)  # flat: the nucleus spans thousands of tokens
    ids, probs = kept(x, temperature=1.0, top_p=top_p)
    assert set(ids) == np_kept(x, top_p=top_p)
    ref = np_softmax(x)[ids]
    np.testing.assert_allclose(probs, ref / ref.sum(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize('min_p', [0.05, 0.3, 0.9, 1.0])
def test_min_p_set(min_p):
    x = rand_logits(11, 400, 2.0)
    ids, probs = kept(x, temperature=0.8, min_p=min_p)
    assert set(ids) == np_kept(x, temperature=0.8, min_p=min_p)
    assert abs(probs.sum() - 1) < 1e-5


@pytest.mark.parametrize('k', [1, 5, 50, 399, 400, 1000])
def test_top_k_set(k):
    x = rand_logits(12, 400, 2.0)
    ids, _ = kept(x, temperature=1.0, top_k=k)
    assert set(ids) == np_kept(x, top_k=k)


def test_combined_filters():
    x = rand_logits(13, 1000, 2.0)
    for T, k, p, mp in [(0.7, 40, 0.9, 0.05), (1.5, 100, 0.5, 0.0), (1.0, 0, 0.95, 0.1), (2.0, 10, 1.0, 0.2)]:
        ids, _ = kept(x, temperature=T, top_k=k, top_p=p, min_p=mp)
        assert set(ids) == np_kept(x, temperature=T, top_k=k, top_p=p, min_p=mp), (T, k, p, mp)


# --- penalties, bias, allowed ids, min_tokens -------------------------------------

def np_penalized(x, prompt, out, rep, freq, pres):
    z = x.astype(np.float32).copy()
    V = len(z)
    counts = np.bincount(np.array(out, dtype=np.int64), minlength=V)[:V].astype(np.float32)
    seen = np.zeros(V, bool)
    seen[prompt] = True
    seen[out] = True
    r = np.float32(rep)
    if rep != 1.0:
        z = np.where(seen, np.where(z > 0, z / r, z * r), z).astype(np.float32)
    z = (z - np.float32(freq) * counts).astype(np.float32)
    z = (z - np.float32(pres) * (counts > 0).astype(np.float32)).astype(np.float32)
    return z


@pytest.mark.parametrize('rep,freq,pres', [(1.2, 0.0, 0.0), (1.0, 0.7, 0.0), (1.0, 0.0, -1.5),
                                           (0.8, -0.3, 1.1), (2.0, 2.0, 2.0)])
def test_penalties_exact(rep, freq, pres):
    V = 300
    x = rand_logits(21, V)
    rng = np.random.default_rng(5)
    prompt = rng.integers(0, V, 60).tolist()
    hist = rng.integers(0, V, 40).tolist() + [3, 3, 3]
    r = tool(dict(op='process', logits=enc(x), prompt=prompt, history=hist,
                  params=dict(repetition_penalty=rep, frequency_penalty=freq, presence_penalty=pres)))
    got = np.array(r['logits'], dtype=np.float32)
    want = np_penalized(x, prompt, hist, rep, freq, pres)
    np.testing.assert_array_equal(got, want)


def test_penalties_change_greedy_choice():
    x = np.array([5.0, 4.9, 1.0, 0.0], np.float32)
    r = sample(x, steps=4, params=dict(temperature=0, frequency_penalty=0.2))
    # 0 (5.0), then 0 is at 4.8 < 4.9 -> 1, then 1 at 4.7 < 4.8 -> 0, then 0 at 4.6 < 4.7 -> 1
    assert [s['token'] for s in r['steps']] == [0, 1, 0, 1]


def test_logit_bias_and_allowed():
    V = 100
    x = rand_logits(30, V)
    bias = {'5': 3.5, '17': -200.0, '99': 1e9}
    r = tool(dict(op='process', logits=enc(x), params=dict(logit_bias=bias)))
    want = x.copy()
    want[5] += np.float32(3.5)
    want[17] += np.float32(-100)  # clamped to [-100, 100] as vLLM's OpenAI layer does
    want[99] += np.float32(100)
    np.testing.assert_array_equal(np.array(r['logits'], np.float32), want)
    allowed = [3, 50, 77]
    r = tool(dict(op='process', logits=enc(x), params=dict(allowed_token_ids=allowed, logit_bias={'50': 1.0})))
    got = np.array(r['logits'], dtype=np.float64)
    for i in range(V):
        if i in allowed:
            assert got[i] == pytest.approx(float(x[i]) + (1.0 if i == 50 else 0.0), abs=1e-6)
        else:
            assert got[i] == -np.inf
    r = sample(x, steps=200, params=dict(temperature=3.0, seed=1, allowed_token_ids=allowed))
    assert {s['token'] for s in r['steps']} <= set(allowed)


def test_min_tokens_suppresses_eos_and_stop_ids():
    x = np.array([0.0, 1.0, 9.0, 8.0, 2.0], np.float32)  # 2 = EOS, 3 = stop id, 4 next best
    r = sample(x, steps=5, eos=[2], params=dict(temperature=0, min_tokens=3, stop_token_ids=[3]))
    assert [s['token'] for s in r['steps']] == [4, 4, 4, 2, 2]
    # random sampling too: EOS / stop ids never appear before min_tokens
    r = sample(x, steps=6, eos=[2], params=dict(temperature=1.0, seed=3, min_tokens=6, stop_token_ids=[3]))
    assert all(s['token'] not in (2, 3) for s in r['steps'])
    r = sample(x, steps=1, eos=[2], params=dict(temperature=0, min_tokens=3, ignore_eos=True))
    assert r['steps'][0]['token'] == 2


# --- seeds, NaN ---------------------------------------------------------------------

def test_seed_reproducible():
    x = rand_logits(40, 1000, 1.5)
    a = [s['token'] for s in sample(x, steps=50, params=dict(temperature=1.0, seed=123))['steps']]
    b = [s['token'] for s in sample(x, steps=50, params=dict(temperature=1.0, seed=123))['steps']]
    c = [s['token'] for s in sample(x, steps=50, params=dict(temperature=1.0, seed=124))['steps']]
    d = [s['token'] for s in sample(x, steps=50, params=dict(temperature=1.0, seed=-5))['steps']]
    assert a == b
    assert a != c and a != d
    # unseeded: the engine generator decides
    e = [s['token'] for s in sample(x, steps=50, engine_seed=1, params=dict(temperature=1.0))['steps']]
    f = [s['token'] for s in sample(x, steps=50, engine_seed=2, params=dict(temperature=1.0))['steps']]
    assert e != f


def test_nan_detection():
    x = rand_logits(41, 64).astype(np.float64)
    x[[3, 9, 10]] = np.nan
    r = sample(x, steps=300, params=dict(temperature=2.0, seed=8))
    assert r['n_nan'] == 3
    assert all(s['token'] not in (3, 9, 10) for s in r['steps'])
    r = tool(dict(op='sample', logits=enc(np.full(8, np.nan)), params=dict(temperature=1.0, seed=1)))
    assert r['rc'] == -33 and r['n_nan'] == 8  # -EDOM: nothing to sample
    r = sample(rand_logits(41, 64), params=dict(temperature=0))
    assert r['n_nan'] == 0


# --- logprobs -----------------------------------------------------------------------

@pytest.mark.parametrize('params', [dict(temperature=0, logprobs=5), dict(temperature=0.7, logprobs=20, seed=4),
                                    dict(temperature=1.0, logprobs=0, seed=4, repetition_penalty=1.5, top_k=3)])
def test_logprobs_raw(params):
    x = rand_logits(50, 2000)
    r = sample(x, steps=3, prompt=[1, 2, 3], params=params)
    lp = np_log_softmax(x)
    order = np.lexsort((np.arange(len(x)), -x))  # value desc, ties lower id
    for s in r['steps']:
        t = s['token']
        assert s['logprob'] == pytest.approx(lp[t], abs=1e-5)
        assert s['rank'] == int((x >= x[t]).sum())
        n = params['logprobs']
        assert [i for i, _ in s['top']] == order[:n].tolist()
        np.testing.assert_allclose([v for _, v in s['top']], lp[order[:n]], atol=1e-5)


def test_logprobs_processed():
    x = rand_logits(51, 500)
    T, k, p = 0.8, 30, 0.9
    r = tool(dict(op='sample', mode='processed', logits=enc(x), steps=5,
                  params=dict(temperature=T, top_k=k, top_p=p, seed=2, logprobs=10)))
    ids = np_kept(x, temperature=T, top_k=k, top_p=p)
    z = (x.astype(np.float32) / np.float32(T)).astype(np.float64)
    z = np.where([i in ids for i in range(len(x))], z, -np.inf)
    lp = np_log_softmax(z)
    for s in r['steps']:
        assert s['token'] in ids
        assert s['logprob'] == pytest.approx(lp[s['token']], abs=1e-5)
        for i, v in s['top']:
            if i in ids:
                assert v == pytest.approx(lp[i], abs=1e-5)
            else:
                assert v == -np.inf
    # greedy in processed mode: log_softmax of the penalized logits
    r = tool(dict(op='sample', mode='processed', logits=enc(x), history=[int(np.argmax(x))],
                  params=dict(temperature=0, frequency_penalty=1.0, logprobs=2)))
    z = x.astype(np.float32).copy()
    z[np.argmax(x)] -= 1
    s = r['steps'][0]
    assert s['token'] == int(np.argmax(z))
    assert s['logprob'] == pytest.approx(np_log_softmax(z)[s['token']], abs=1e-5)


def test_prompt_logprobs_helper():
    rows = [rand_logits(60 + i, 300) for i in range(4)]
    toks = [5, 0, 299, 17]
    r = tool(dict(op='logprobs', rows=[enc(x) for x in rows], tokens=toks, n_top=3))
    for x, t, res in zip(rows, toks, r['results']):
        lp = np_log_softmax(x)
        assert res['rc'] == 0
        assert res['logprob'] == pytest.approx(lp[t], abs=1e-5)
        assert [i for i, _ in res['top']] == np.argsort(-lp, kind='stable')[:3].tolist()


# --- validation -----------------------------------------------------------------

@pytest.mark.parametrize('params,param,msg', [
    (dict(temperature=-1), 'temperature', 'temperature must be non-negative, got -1.0.'),
    (dict(top_p=0), 'top_p', 'top_p must be in (0, 1], got 0.0.'),
    (dict(top_p=1.0001), 'top_p', 'top_p must be in (0, 1], got 1.0001.'),
    (dict(top_k=-3), 'top_k', 'top_k must be 0 (disable), or at least 1, got -3.'),
    (dict(min_p=-0.1), 'min_p', 'min_p must be in [0, 1], got -0.1.'),
    (dict(repetition_penalty=0), 'repetition_penalty', 'repetition_penalty must be greater than zero, got 0.0.'),
    (dict(presence_penalty=3), 'presence_penalty', 'presence_penalty must be in [-2, 2], got 3.0.'),
    (dict(frequency_penalty=-2.5), 'frequency_penalty', 'frequency_penalty must be in [-2, 2], got -2.5.'),
    (dict(logprobs=21), 'logprobs', 'Requested sample logprobs of 21, which is greater than max allowed: 20'),
    (dict(logprobs=-1), 'logprobs', 'Requested sample logprobs of 100, which is greater than max allowed: 20'),
    (dict(prompt_logprobs=25), 'prompt_logprobs',
     'Requested prompt logprobs of 25, which is greater than max allowed: 20'),
    (dict(max_tokens=0), 'max_tokens', 'max_tokens must be at least 1, got 0.'),
    (dict(min_tokens=-1), 'min_tokens', 'min_tokens must be greater than or equal to 0, got -1.'),
    (dict(logprobs=-3), 'logprobs', 'logprobs must be non-negative or -1, got -3.'),
    (dict(max_tokens=4, min_tokens=5), 'min_tokens',
     'min_tokens must be less than or equal to max_tokens=4, got 5.'),
    (dict(logit_bias={'100': 1, '3': 2}), 'logit_bias',
     'token_id(s) [100] in logit_bias contain out-of-vocab token ids. Vocabulary size: 100'),
    (dict(allowed_token_ids=[]), 'allowed_token_ids', 'allowed_token_ids is not None and empty!'),
    (dict(allowed_token_ids=[1, -1]), 'allowed_token_ids', 'allowed_token_ids contains out-of-vocab token id!'),
])
def test_validation_errors(params, param, msg):
    r = tool(dict(op='validate', vocab=100, params=params))
    assert r == dict(rc=-22, message=msg, param=param)


def test_validation_accepts_edges():
    for params in [dict(), dict(temperature=0), dict(top_p=1.0), dict(top_k=-1), dict(top_k=0), dict(min_p=1.0),
                   dict(presence_penalty=-2, frequency_penalty=2), dict(logprobs=20, prompt_logprobs=0),
                   dict(max_tokens=4, min_tokens=4), dict(repetition_penalty=1e-3), dict(temperature=5.0)]:
        r = tool(dict(op='validate', vocab=100, params=params))
        assert r['rc'] == 0, (params, r)


@pytest.mark.parametrize('k', [1, 3, 10, 37])
def test_top_k_keeps_ties(k):
    x = np.random.default_rng(k).integers(-6, 6, 200).astype(np.float32)  # many equal logits
    ids, _ = kept(x, temperature=1.0, top_k=k)
    want = np_kept(x, top_k=k)
    assert set(ids) == want and len(ids) >= k


def test_positive_infinity():
    x = np.zeros(10)
    x[[4, 8]] = np.inf
    assert sample(x, params=dict(temperature=0))['steps'][0]['token'] == 4
    r = tool(dict(op='sample', logits=enc(x), params=dict(temperature=1.0, seed=3), steps=2000, hist=True))
    c = r['counts']
    assert c[4] + c[8] == 2000 and 850 < c[4] < 1150


@pytest.mark.parametrize('top_p', [0.2, 0.5, 0.77, 0.95])
def test_top_p_ties(top_p):
    # integer logits: thousands of exact ties, so the boundary falls inside a tie group
    x = np.random.default_rng(int(top_p * 100)).integers(-3, 3, 3000).astype(np.float32)
    ids, _ = kept(x, temperature=1.0, top_p=top_p)
    assert set(ids) == np_kept(x, top_p=top_p)
