"""`cvllm serve` flags: vLLM's names and defaults, --x=v and --x v, '_' for
'-', booleans with --no-, short forms, the alias --api-workers, VLLM_API_KEY,
and clear errors (with a suggestion) for unknown or invalid flags."""
import json
import os

import pytest

from conftest import binary, run


def parse(*args, env=None):
    tool = binary('tests/tools/serve_args_tool')
    e = dict(os.environ)
    e.pop('VLLM_API_KEY', None)
    e.update(env or {})
    return run([tool, *args], env=e)


def cfg(*args, env=None):
    r = parse(*args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_defaults():
    c = cfg()
    assert c['model'] is None and c['port'] == 8000 and c['block-size'] == 16
    assert c['enable-prefix-caching'] is True and c['data-parallel-size'] == 1
    assert c['api-server-count'] == 1 and c['gpu-memory-utilization'] == 0.9
    assert c['generation-config'] == 'auto' and c['kv-cache-metrics-sample'] == 0.01


def test_forms():
    c = cfg('m.gguf', '--port=9001', '--max_model_len', '1024', '--no-enable-prefix-caching', '-dp', '2',
            '--served-model-name', 'tiny', '--disable-log-stats', '--show-hidden-metrics-for-version=0.10')
    assert c['model'] == 'm.gguf' and c['port'] == 9001 and c['max-model-len'] == 1024
    assert c['enable-prefix-caching'] is False and c['data-parallel-size'] == 2
    assert c['api-server-count'] == 2          # defaults to the data-parallel size, as vLLM
    assert c['served-model-name'] == 'tiny' and c['disable-log-stats'] is True
    assert c['show-hidden-metrics-for-version'] == '0.10'
    assert cfg('--api-workers', '4')['api-server-count'] == 4
    assert cfg('-asc', '3')['api-server-count'] == 3
    assert cfg('--model', 'x')['model'] == 'x'


def test_api_key_from_env_and_flags():
    assert cfg(env={'VLLM_API_KEY': 'k1'})['api-key'] == 1
    assert cfg('--api-key', 'a', '--api-key', 'b', env={'VLLM_API_KEY': 'k1'})['api-key'] == 2


@pytest.mark.parametrize('args,needle', [
    (['--max-mdel-len', '5'], 'did you mean --max-model-len?'),
    (['--prot', '5'], 'did you mean --port?'),
    (['--frobnicate'], 'unrecognized argument: --frobnicate'),
    (['--port', 'x'], "--port: invalid int value: 'x'"),
    (['--port'], '--port expects a value'),
    (['--block-size', '12'], 'power of two'),
    (['--tensor-parallel-size', '2'], 'tensor parallelism is not built yet'),
    (['--dtype', 'int3'], "--dtype: invalid choice 'int3'"),
    (['--kv-cache-metrics-sample', '0'], 'must be in (0, 1]'),
    (['a', 'b'], "unexpected argument 'b'"),
    (['--disable-log-stats=yes'], 'takes no value'),
])
def test_errors(args, needle):
    r = parse(*args)
    assert r.returncode == 2
    assert needle in r.stderr, r.stderr


def test_help_lists_every_flag():
    r = parse('--help')
    assert r.returncode == 0
    for flag in ('--port', '--[no-]enable-prefix-caching', '--api-server-count, -asc', '--dry-run'):
        assert flag in r.stdout
