"""The fe_oai module (frontend/openai) as a client sees its output: every
response body and SSE chunk it builds is validated with the OpenAI SDK's
pydantic types; request validation answers a table of bad bodies with
vLLM's status, type, param and message; the stop-string matcher agrees with
a Python transcription of vLLM's detokenizer logic on random splits.
Drives tests/tools/oai_tool (stdin in, results out)."""
import json
import random
import subprocess

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from conftest import BUILD

TOOL = BUILD / 'tests/tools/oai_tool'


def tool(args, data):
    if not TOOL.exists():
        pytest.fail(f'{TOOL} not built')
    if not isinstance(data, (bytes, str)):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    p = subprocess.run([str(TOOL), *args], input=data, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors='replace')
    return p.stdout


def parse(kind, body, *extra):
    return json.loads(tool(['parse', kind, *extra], body))


def respond(script):
    return tool(['respond'], script)


def sse(raw):
    """Splits an SSE stream into its JSON payloads; checks the framing and
    that it ends with exactly one [DONE]."""
    text = raw.decode('utf-8')  # strict: the stream must be valid UTF-8
    assert text.endswith('\n\n')
    frames = text[:-2].split('\n\n')
    for f in frames:
        assert f.startswith('data: '), f
        assert '\n' not in f, f
    assert frames[-1] == 'data: [DONE]'
    assert 'data: [DONE]' not in frames[:-1]
    return [json.loads(f[6:]) for f in frames[:-1]]


def validate_completion_chunk(c):
    # The SDK's CompletionChoice declares finish_reason non-null, but streams
    # (OpenAI's and vLLM's) send null until the last chunk; validate the rest
    # of the shape with a stand-in value, after checking it is null.
    c2 = json.loads(json.dumps(c))
    for ch in c2['choices']:
        if ch['finish_reason'] is None:
            ch['finish_reason'] = 'length'
    return Completion.model_validate(c2)


# --- (a) response shapes -------------------------------------------------------------


def lp(cands, null=False):
    return {'cand': [[i, t, v] for i, t, v in cands], 'null': null}


def test_completion_body_validates():
    script = {
        'kind': 'completion', 'id': 'cmpl-0123456789abcdef0123456789abcdef', 'model': 'llama', 'created': 1700000000,
        'usage': {'prompt_tokens': 7, 'completion_tokens': 3},
        'choices': [
            {'index': 0, 'text': 'Hello "world"\n', 'finish': 'stop', 'stop_str': '\n\n'},
            {'index': 1, 'text': 'Bye', 'finish': 'length'},
            {'index': 2, 'text': 'x', 'finish': 'stop', 'stop_token': 128009, 'top_n': 1, 'text_offset': 3,
             'logprobs': [lp([(5, 'x', -0.5), (6, 'y', -1.0), (5, 'x', -0.5)]), lp([(9, 'é', -2.0)])]},
        ],
    }
    body = json.loads(respond(script))
    c = Completion.model_validate(body)
    assert c.object == 'text_completion' and c.id == script['id'] and c.created == 1700000000
    assert [ch.text for ch in c.choices] == ['Hello "world"\n', 'Bye', 'x']
    assert [ch.finish_reason for ch in c.choices] == ['stop', 'length', 'stop']
    assert [ch['stop_reason'] for ch in body['choices']] == ['\n\n', None, 128009]
    assert c.usage.prompt_tokens == 7 and c.usage.completion_tokens == 3 and c.usage.total_tokens == 10
    l2 = c.choices[2].logprobs
    assert l2.tokens == ['x', 'é'] and l2.token_logprobs == [-0.5, -2.0]
    assert l2.text_offset == [3, 4]
    assert l2.top_logprobs == [{'x': -0.5, 'y': -1.0}, {'é': -2.0}]
    assert body['choices'][0]['logprobs'] is None


def test_completion_echo_logprobs_null_first():
    script = {'kind': 'completion', 'choices': [{'text': 'ab', 'finish': 'length', 'top_n': 0,
                                                'logprobs': [lp([(1, 'a', 0)], null=True), lp([(2, 'b', -1.5)])]}],
              'usage': {'prompt_tokens': 1, 'completion_tokens': 1}}
    body = json.loads(respond(script))
    lpv = body['choices'][0]['logprobs']
    # vLLM sends null for the first echoed prompt token (its CompletionLogProbs
    # allows Optional); the SDK's types do not, so validate the rest of the
    # shape with the nulls filled in.
    assert lpv['token_logprobs'] == [None, -1.5] and lpv['top_logprobs'] == [None, {'b': -1.5}]
    assert lpv['tokens'] == ['a', 'b'] and lpv['text_offset'] == [0, 1]
    lpv['token_logprobs'][0], lpv['top_logprobs'][0] = 0.0, {}
    Completion.model_validate(body)


def test_chat_body_validates():
    script = {
        'kind': 'chat', 'id': 'chatcmpl-ff', 'model': 'm', 'created': 5,
        'usage': {'prompt_tokens': 2, 'completion_tokens': 2},
        'choices': [{'index': 0, 'text': 'Hi 😀', 'finish': 'stop', 'top_n': 2,
                     'logprobs': [lp([(1, 'Hi', -0.1), (1, 'Hi', -0.1), (3, 'Yo', -2.5), (4, 'Hey', -3.0)]),
                                  lp([(2, ' 😀', -1e30), (7, '!', -0.25)])]}],
    }
    body = json.loads(respond(script))
    c = ChatCompletion.model_validate(body)
    assert c.object == 'chat.completion'
    m = c.choices[0].message
    assert m.role == 'assistant' and m.content == 'Hi 😀'
    assert c.choices[0].finish_reason == 'stop'
    content = c.choices[0].logprobs.content
    assert [t.token for t in content] == ['Hi', ' 😀']
    assert content[1].logprob == -9999.0  # clamped as vLLM does
    assert content[1].bytes == list(' 😀'.encode())
    # vLLM: the first top_logprobs entries of the id-keyed dict, sampled first
    assert [t.token for t in content[0].top_logprobs] == ['Hi', 'Yo']
    assert [t.token for t in content[1].top_logprobs] == [' 😀', '!']
    assert c.usage.total_tokens == 4


def test_invalid_utf8_never_reaches_the_client():
    rnd = random.Random(1)
    for _ in range(200):
        raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 24)))
        for kind in ('completion', 'chat'):
            out = respond({'kind': kind, 'choices': [{'text_hex': raw.hex(), 'finish': 'stop'}],
                           'usage': {'prompt_tokens': 1, 'completion_tokens': 1}})
            out.decode('utf-8')  # strict
            body = json.loads(out)
            text = body['choices'][0]['text' if kind == 'completion' else 'message']
            if kind == 'chat':
                text = text['content']
            # Python's own replacement is the reference (maximal subparts).
            assert text == raw.decode('utf-8', errors='replace'), raw


def stream_script(kind, **kw):
    s = {'kind': kind, 'stream': True, 'id': 'x-1', 'model': 'm', 'created': 9,
         'usage': {'prompt_tokens': 4, 'completion_tokens': 3},
         'choices': [{'index': 0, 'deltas': [{'text': 'He'}, {'text': 'llo'}, {'text': ''}],
                      'finish': 'stop', 'stop_str': 'END'},
                     {'index': 1, 'deltas': [{'text': 'A\u2028"\\'}], 'finish': 'length'}]}
    s.update(kw)
    return s


def test_completion_stream_chunks_validate():
    chunks = sse(respond(stream_script('completion', include_usage=True)))
    for c in chunks:
        validate_completion_chunk(c)
    *body, last = chunks
    assert last['choices'] == [] and last['usage'] == {'prompt_tokens': 4, 'total_tokens': 7,
                                                     'completion_tokens': 3}
    by = {}
    for c in body:
        assert len(c['choices']) == 1 and c['usage'] is None
        ch = c['choices'][0]
        by.setdefault(ch['index'], []).append(ch)
    assert ''.join(ch['text'] for ch in by[0]) == 'Hello'
    assert [ch['finish_reason'] for ch in by[0]] == [None, None, 'stop']
    assert by[0][-1]['stop_reason'] == 'END'
    assert by[1][0]['text'] == 'A\u2028"\\' and by[1][0]['finish_reason'] == 'length'


def test_chat_stream_chunks_validate():
    chunks = sse(respond(stream_script('chat', include_usage=True)))
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert all(p.object == 'chat.completion.chunk' for p in parsed)
    # the first chunk of each choice carries the role and empty content
    assert [(c.choices[0].index, c.choices[0].delta.role, c.choices[0].delta.content) for c in parsed[:2]] == \
        [(0, 'assistant', ''), (1, 'assistant', '')]
    body = parsed[2:-1]
    assert all(c.choices[0].delta.role is None for c in body)
    text0 = ''.join(c.choices[0].delta.content for c in body if c.choices[0].index == 0)
    assert text0 == 'Hello'
    fins = [(c.choices[0].index, c.choices[0].finish_reason) for c in body if c.choices[0].finish_reason]
    assert fins == [(0, 'stop'), (1, 'length')]
    # stop_reason only on the finishing chunk (vLLM dumps chunks exclude_unset)
    raw_body = chunks[2:-1]
    assert [('stop_reason' in c['choices'][0]) for c in raw_body] == [False, False, True, True]
    assert parsed[-1].choices == [] and parsed[-1].usage.total_tokens == 7


def test_stream_continuous_usage():
    chunks = sse(respond(stream_script('chat', include_usage=True, continuous_usage=True)))
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
        assert c['usage']['prompt_tokens'] == 4
    chunks = sse(respond(stream_script('completion', continuous_usage=True)))
    for c in chunks:
        validate_completion_chunk(c)
    assert [c['usage']['completion_tokens'] for c in chunks] == [1, 2, 3, 4]


def test_stream_without_usage_ends_with_done_only():
    chunks = sse(respond(stream_script('chat')))
    assert all(c['choices'] for c in chunks)


def test_stream_error_frame():
    s = stream_script('chat', include_usage=True,
                      error={'code': -5852, 'message': 'engine "died"', 'param': None})
    chunks = sse(respond(s))
    err = chunks[-1]
    assert err == {'error': {'message': 'engine "died"', 'type': 'BadRequestError', 'param': None, 'code': 400}}
    for c in chunks[:-1]:
        ChatCompletionChunk.model_validate(c)


def test_stream_logprobs_chunks():
    s = {'kind': 'chat', 'stream': True,
         'choices': [{'index': 0, 'top_n': 1, 'finish': 'length',
                      'deltas': [{'text': 'ab', 'logprobs': [lp([(1, 'a', -1.0)]), lp([(2, 'b', -2.0), (3, 'c', -1.0)])]}]}]}
    for c in sse(respond(s)):
        ChatCompletionChunk.model_validate(c)
    s['kind'] = 'completion'
    s['choices'][0]['text_offset'] = 10
    chunks = sse(respond(s))
    for c in chunks:
        validate_completion_chunk(c)
    lpv = chunks[0]['choices'][0]['logprobs']
    assert lpv['text_offset'] == [10, 11] and lpv['top_logprobs'] == [{'a': -1.0}, {'b': -2.0, 'c': -1.0}]


# --- (b) request validation -------------------------------------------------------------

C, CH = 'completion', 'chat'
MSG = [{'role': 'user', 'content': 'hi'}]
BRE, BR = 'BadRequestError', 'Bad Request'

BAD = [
    (C, {'prompt': 'x', 'top_p': 1.5}, BRE, 'top_p', 'top_p must be in (0, 1], got 1.5.'),
    (CH, {'messages': MSG, 'top_p': 2}, BRE, 'top_p', 'top_p must be in (0, 1], got 2.0.'),
    (C, {'prompt': 'x', 'n': 2, 'temperature': 0}, BRE, 'n', 'n must be 1 when using greedy sampling, got 2.'),
    (CH, {'messages': MSG, 'n': 0}, BRE, 'n', 'n must be at least 1, got 0.'),
    (C, {'prompt': 'x', 'stop': ['ok', '']}, BRE, 'stop', 'stop cannot contain an empty string.'),
    (C, {'prompt': 'x', 'logprobs': 25}, BRE, 'logprobs',
     'Requested sample logprobs of 25, which is greater than max allowed: 20'),
    (CH, {'messages': MSG, 'logprobs': True, 'top_logprobs': 25}, BRE, 'top_logprobs',
     'Requested sample logprobs of 25, which is greater than max allowed: 20'),
    (C, {'prompt': 'x', 'prompt_logprobs': 21}, BRE, 'prompt_logprobs',
     'Requested prompt logprobs of 21, which is greater than max allowed: 20'),
    (C, {'prompt': 'x', 'temperature': -0.5}, BRE, 'temperature', 'temperature must be non-negative, got -0.5.'),
    (C, {'prompt': 'x', 'temperature': 2.5}, BRE, 'temperature', 'temperature must be in [0, 2], got 2.5.'),
    (C, {'prompt': 'x', 'top_k': -3}, BRE, 'top_k', 'top_k must be 0 (disable), or at least 1, got -3.'),
    (C, {'prompt': 'x', 'min_p': -0.1}, BRE, 'min_p', 'min_p must be in [0, 1], got -0.1.'),
    (C, {'prompt': 'x', 'max_tokens': -1}, BRE, 'max_tokens', 'max_tokens must be at least 1, got -1.'),
    (C, {'prompt': 'x', 'max_tokens': 0}, BRE, 'max_tokens', 'max_tokens must be at least 1, got 0.'),
    (CH, {'messages': MSG, 'echo': True, 'max_tokens': 0}, BRE, 'max_tokens', 'max_tokens must be at least 1, got 0.'),
    (CH, {'messages': MSG, 'max_completion_tokens': 3, 'min_tokens': 4}, BRE, 'min_tokens',
     'min_tokens must be less than or equal to max_tokens=3, got 4.'),
    (C, {'prompt': 'x', 'min_tokens': -1}, BRE, 'min_tokens', 'min_tokens must be greater than or equal to 0, got -1.'),
    (C, {'prompt': 'x', 'frequency_penalty': -2.5}, BRE, 'frequency_penalty',
     'frequency_penalty must be in [-2, 2], got -2.5.'),
    (C, {'prompt': 'x', 'repetition_penalty': -1}, BRE, 'repetition_penalty',
     'repetition_penalty must be greater than zero, got -1.0.'),
    (C, {'prompt': 'x', 'logit_bias': {'x1': 2}}, BRE, 'logit_bias', "invalid literal for int() with base 10: 'x1'"),
    (C, {'prompt': 'x', 'allowed_token_ids': []}, BRE, 'allowed_token_ids', 'allowed_token_ids is not None and empty!'),
    (C, {'prompt': []}, BRE, 'prompt', 'please provide at least one prompt'),
    (C, {'prompt': [[]]}, BRE, 'prompt', 'please provide at least one prompt'),
    (C, {'prompt': 'x', 'suffix': 'y'}, BRE, 'suffix', 'suffix is not currently supported'),
    (C, {'prompt': ['a', 1]}, BR, 'prompt',
     'prompt must be a string, array of strings, array of tokens, or array of token arrays'),
    (C, {'prompt': [[1], 'a']}, BR, 'prompt',
     'prompt must be a string, array of strings, array of tokens, or array of token arrays'),
    (C, {'prompt': {'a': 1}}, BR, 'prompt',
     'prompt must be a string, array of strings, array of tokens, or array of token arrays'),
    (C, {'prompt': ''}, BR, 'prompt', 'Either prompt or prompt_embeds must be provided and non-empty.'),
    (C, {'model': 'm'}, BR, 'prompt', 'Either prompt or prompt_embeds must be provided and non-empty.'),
    (C, {'prompt': 'x', 'n': 'two'}, BR, 'n', 'n: Input should be a valid integer'),
    (C, {'prompt': 'x', 'temperature': 'hot'}, BR, 'temperature', 'temperature: Input should be a valid number'),
    (C, {'prompt': 'x', 'echo': 'yes'}, BR, 'echo', 'echo: Input should be a valid boolean'),
    (C, {'prompt': 'x', 'model': 5}, BR, 'model', 'model: Input should be a valid string'),
    (C, {'prompt': 'x', 'stop': 5}, BR, 'stop', 'stop: Input should be a valid string or list of strings'),
    (C, {'prompt': 'x', 'stop_token_ids': [1, 'a']}, BR, 'stop_token_ids',
     'stop_token_ids: Input should be a valid list of integers'),
    (C, {'prompt': 'x', 'logit_bias': [1]}, BR, 'logit_bias', 'logit_bias: Input should be a valid dictionary'),
    (C, {'prompt': 'x', 'logprobs': -2}, BR, 'logprobs', '`logprobs` must be a positive value or -1.'),
    (C, {'prompt': 'x', 'stream_options': {'include_usage': True}}, BR, 'stream_options',
     'Stream options can only be defined when `stream=True`.'),
    (C, {'prompt': 'x', 'stream': True, 'prompt_logprobs': 1}, BR, 'prompt_logprobs',
     '`prompt_logprobs` are not available when `stream=True`.'),
    (CH, {'messages': MSG, 'top_logprobs': 1}, BR, 'top_logprobs',
     'when using `top_logprobs`, `logprobs` must be set to true.'),
    (CH, {'messages': MSG, 'logprobs': True, 'top_logprobs': -5}, BR, 'top_logprobs',
     '`top_logprobs` must be a positive value or -1.'),
    (CH, {'model': 'm'}, BR, 'messages', 'messages: Field required'),
    (CH, {'messages': 'hi'}, BR, 'messages', 'messages: Input should be a valid list'),
    (CH, {'messages': ['hi']}, BR, 'messages', 'messages.0: Input should be a valid dictionary'),
    (CH, {'messages': [{'role': 'user', 'content': 'a'}, {'content': 'b'}]}, BR, 'messages',
     'messages.1.role: Field required'),
    (CH, {'messages': [{'role': 3}]}, BR, 'messages', 'messages.0.role: Input should be a valid string'),
    (CH, {'messages': [{'role': 'user', 'content': [{'text': 'no type'}]}]}, BR, 'messages', None),
    (CH, {'messages': MSG, 'continue_final_message': True}, BR, 'continue_final_message',
     'Cannot set both `continue_final_message` and `add_generation_prompt` to True.'),
    (CH, {'messages': MSG, 'chat_template_kwargs': 'x'}, BR, 'chat_template_kwargs',
     'chat_template_kwargs: Input should be a valid dictionary'),
]


@pytest.mark.parametrize('kind,body,etype,param,message', BAD, ids=[f'{i}-{b[0]}' for i, b in enumerate(BAD)])
def test_bad_bodies(kind, body, etype, param, message):
    out = parse(kind, json.dumps(body))
    assert out['ok'] is False and out['status'] == 400
    err = out['error']
    assert set(err) == {'error'} and set(err['error']) == {'message', 'type', 'param', 'code'}
    e = err['error']
    assert e['code'] == 400 and e['type'] == etype and e['param'] == param
    if message is not None:
        assert e['message'] == message
    else:
        assert e['message']


@pytest.mark.parametrize('raw', [b'', b'{', b'{"prompt": "x",}', b'{"prompt": "x"} {}', b'nul', b'\xff\xfe'])
def test_not_json(raw):
    out = parse('completion', raw)
    assert out['status'] == 400 and out['error']['error']['type'] == 'Bad Request'
    assert out['error']['error']['message'].startswith('JSON decode error')


@pytest.mark.parametrize('raw', [b'[]', b'"x"', b'3', b'null'])
def test_not_an_object(raw):
    e = parse('chat', raw)['error']['error']
    assert e['message'] == 'Input should be a valid dictionary or object to extract fields from'


def test_vocab_checks():
    args = ['--vocab', '100']
    e = parse('completion', '{"prompt": [1, 200]}', *args)['error']['error']
    assert e['message'] == 'Token id 200 is out of vocabulary'
    e = parse('completion', '{"prompt": "x", "logit_bias": {"100": 1}}', *args)['error']['error']
    assert e['message'] == 'token_id(s) [100] in logit_bias contain out-of-vocab token ids. Vocabulary size: 100'
    e = parse('completion', '{"prompt": "x", "allowed_token_ids": [5, 100]}', *args)['error']['error']
    assert e['message'] == 'allowed_token_ids contains out-of-vocab token id!'
    assert parse('completion', '{"prompt": [[1, 99]], "logit_bias": {"99": -1}}', *args)['ok']
    e = parse('completion', '{"prompt": "x", "logprobs": 30}', '--max-logprobs', '40')
    assert e['ok'] and e['req']['logprobs'] == 30


def test_accepted_and_normalised():
    r = parse(C, json.dumps({'prompt': 'x', 'unknown_field': {'a': [1]}, 'best_of': 3}))['req']
    assert r['max_tokens'] == 16 and r['add_special_tokens'] is True and r['n'] == 1
    assert r['skip_special_tokens'] is True and r['spaces_between_special_tokens'] is True
    r = parse(CH, json.dumps({'messages': MSG, 'max_tokens': 10, 'max_completion_tokens': 20}))['req']
    assert r['max_tokens'] == 20 and r['add_special_tokens'] is False and r['add_generation_prompt'] is True
    r = parse(CH, json.dumps({'messages': MSG + [{'role': 'assistant', 'content': [{'type': 'text', 'text': 'a'}]}],
                              'add_generation_prompt': False, 'continue_final_message': True,
                              'chat_template_kwargs': {'enable_thinking': False}, 'user': 'u1', 'seed': 42,
                              'stop': 'END', 'stop_token_ids': [7, 8], 'include_stop_str_in_output': True,
                              'ignore_eos': True, 'min_tokens': 2, 'top_k': -1, 'min_p': 0.05,
                              'logprobs': True, 'prompt_logprobs': 0, 'stream': True,
                              'stream_options': {'continuous_usage_stats': True}}))['req']
    assert r['n_messages'] == 2 and r['continue_final_message'] is True
    assert r['chat_template_kwargs'] == {'enable_thinking': False} and r['user'] == 'u1'
    assert r['seed'] == 42 and r['stop'] == ['END'] and r['stop_token_ids'] == [7, 8]
    assert r['include_stop_str_in_output'] and r['ignore_eos'] and r['min_tokens'] == 2 and r['top_k'] == -1
    assert r['logprobs'] == 0 and r['prompt_logprobs'] == 0
    assert r['include_usage'] is True and r['continuous_usage_stats'] is True
    r = parse(C, json.dumps({'prompt': [1, 2, 3], 'logit_bias': {'5': 1000, '3': -1000, '4': 0.5}}))['req']
    assert r['prompts'] == [[1, 2, 3]] and r['logit_bias'] == {'3': -100, '4': 0.5, '5': 100}
    r = parse(C, json.dumps({'prompt': ['a', 'b'], 'temperature': 0, 'top_p': 0.3}))['req']
    assert r['prompts'] == ['a', 'b'] and r['temperature'] == 0 and r['top_p'] == 1
    r = parse(CH, json.dumps({'messages': [], 'stream': False, 'stream_options': {}}))['req']
    assert r['include_usage'] is False
    # echo without prompt_logprobs takes the sample setting (vLLM)
    assert parse(C, json.dumps({'prompt': 'x', 'echo': True, 'logprobs': 2}))['req']['prompt_logprobs'] == 2
    assert parse(C, json.dumps({'prompt': 'x', 'echo': True}))['req']['prompt_logprobs'] == -1
    assert parse(CH, json.dumps({'messages': MSG, 'echo': True}))['req']['prompt_logprobs'] == 0
    r = parse(C, json.dumps({'prompt': 'x', 'echo': True, 'max_tokens': 0}))['req']
    assert r['max_tokens'] == 0


@pytest.mark.parametrize('kind,body,plen,mlen,expect', [
    (C, {'prompt': 'x'}, 10, 100, 16),
    (C, {'prompt': 'x', 'max_tokens': None}, 10, 100, 90),
    (CH, {'messages': MSG}, 10, 100, 90),
    (CH, {'messages': MSG, 'max_tokens': 90}, 10, 100, 90),
    (CH, {'messages': MSG, 'max_tokens': 91}, 10, 100,
     "'max_tokens' or 'max_completion_tokens' is too large: 91. This model's maximum context length is 100 tokens "
     "and your request has 10 input tokens (91 > 100 - 10)."),
    (CH, {'messages': MSG}, 100, 100,
     "This model's maximum context length is 100 tokens. However, your request has 100 input tokens. "
     "Please reduce the length of the input messages."),
    (C, {'prompt': 'x', 'echo': True, 'max_tokens': 0}, 10, 100, 1),
    (C, {'prompt': 'x'}, 90, 100,
     "'max_tokens' or 'max_completion_tokens' is too large: 16. This model's maximum context length is 100 tokens "
     "and your request has 90 input tokens (16 > 100 - 90)."),
])
def test_max_tokens_against_context(kind, body, plen, mlen, expect):
    out = parse(kind, json.dumps(body), '--prompt-len', str(plen), '--max-model-len', str(mlen))
    if isinstance(expect, int):
        assert out['ok'] and out['sampling']['max_tokens'] == expect
    else:
        assert out['status'] == 400
        assert out['error']['error']['message'] == expect
        assert out['error']['error']['type'] == 'BadRequestError'


# --- (c) stop strings -------------------------------------------------------------------


class RefDetok:
    """vLLM's check_stop_strings + get_next_output_text (v1 detokenizer),
    transcribed: Python str semantics, so lengths are code points."""

    def __init__(self, stops, include):
        self.stops, self.include = stops, include
        self.hold = max(len(s) for s in stops) - 1 if stops and not include else 0
        self.text, self.last, self.done, self.matched = '', 0, False, -1

    def check(self, new_chars):
        if not new_chars or not self.stops:
            return None
        for i, s in enumerate(self.stops):
            idx = self.text.find(s, 1 - new_chars - len(s))
            if idx == -1:
                continue
            if self.include:
                idx += len(s)
                if idx >= len(self.text):
                    return i, -1
            return i, idx
        return None

    def step(self, new, check, finished):
        if self.done:
            return '', False
        before = len(self.text)
        self.text += new
        hit = False
        if check:
            r = self.check(len(self.text) - before)
            if r:
                self.matched, cut = r
                if cut != -1:
                    self.text = self.text[:cut]
                finished = hit = True
        buf = 0 if finished else self.hold
        length = len(self.text) - buf
        out = ''
        if self.last < length:
            out = self.text[self.last:length]
            self.last = length
        self.done = finished
        return out, hit


ALPHABET = ['a', 'b', 'c', ' ', '\n', 'é', '中', '😀', 'ab']


def run_stop_case(stops, include, steps):
    out = json.loads(tool(['stop'], {'stops': stops, 'include': include, 'steps': steps}))
    ref = RefDetok(stops, include)
    exp = [ref.step(s['text'], s['check'], s['finished']) for s in steps]
    assert out['deltas'] == [d for d, _ in exp], (stops, include, steps)
    assert out['hits'] == [h for _, h in exp], (stops, include, steps)
    assert out['matched'] == ref.matched
    assert out['text'] == ref.text
    return out


def random_split(rnd, text):
    cuts = sorted(rnd.sample(range(len(text) + 1), rnd.randint(0, min(len(text), 8))))
    parts, prev = [], 0
    for c in cuts + [len(text)]:
        parts.append(text[prev:c])
        prev = c
    return parts


def test_stop_split_examples():
    steps = [{'text': t, 'check': True, 'finished': i == 2} for i, t in enumerate(['Hello wo', 'rl', 'd!!'])]
    out = run_stop_case(['world'], False, steps)
    assert ''.join(out['deltas']) == 'Hello ' and out['matched'] == 0
    out = run_stop_case(['world'], True, steps)
    assert ''.join(out['deltas']) == 'Hello world'


@pytest.mark.parametrize('seed', range(40))
def test_stop_random_splits(seed):
    rnd = random.Random(seed)
    for _ in range(25):
        text = ''.join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 30)))
        stops = []
        for _ in range(rnd.randint(1, 3)):
            if text and rnd.random() < 0.7:
                a = rnd.randrange(len(text))
                stops.append(text[a:a + rnd.randint(1, 5)])
            else:
                stops.append(''.join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 3))))
        parts = random_split(rnd, text)
        min_steps = rnd.choice([0, 0, 1, 2])
        steps = [{'text': p, 'check': i >= min_steps, 'finished': i == len(parts) - 1} for i, p in enumerate(parts)]
        run_stop_case(stops, rnd.random() < 0.3, steps)
