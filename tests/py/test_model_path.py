"""MODEL arguments that are HF hub ids resolve in the local Hugging Face cache
($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub) without network:
refs/main, @revision, a GGUF-only snapshot, and clear errors otherwise."""
import os
import shutil

from conftest import binary, run

VOCAB = '/work/shared/fixtures/vocab/ggml-vocab-starcoder.gguf'
if not os.path.exists(VOCAB):
    VOCAB = os.path.join(os.path.dirname(__file__), '../../../shared/fixtures/vocab/ggml-vocab-starcoder.gguf')


def cache(tmp_path, rev='abc123', files=()):
    snap = tmp_path / 'hub' / 'models--org--vocab' / 'snapshots' / rev
    snap.mkdir(parents=True)
    (tmp_path / 'hub' / 'models--org--vocab' / 'refs').mkdir()
    (tmp_path / 'hub' / 'models--org--vocab' / 'refs' / 'main').write_text(rev + '\n')
    for f in files:
        shutil.copy(f, snap)
    return snap


def test_hub_id_in_cache(tmp_path):
    cvllm = binary('cli/cvllm')
    cache(tmp_path, files=[VOCAB])
    env = dict(os.environ, HF_HOME=str(tmp_path))
    env.pop('HF_HUB_CACHE', None)
    a = run([cvllm, 'tokenize', 'org/vocab', '--text', 'Hello world'], env=env)
    b = run([cvllm, 'tokenize', VOCAB, '--text', 'Hello world'])
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.strip()
    r = run([cvllm, 'tokenize', 'org/vocab@abc123', '--text', 'x'], env=env)
    assert r.returncode == 0, r.stderr
    env2 = dict(env, HF_HUB_CACHE=str(tmp_path / 'hub'))
    env2.pop('HF_HOME')
    assert run([cvllm, 'tokenize', 'org/vocab', '--text', 'x'], env=env2).returncode == 0


def test_missing_and_ambiguous(tmp_path):
    cvllm = binary('cli/cvllm')
    env = dict(os.environ, HF_HOME=str(tmp_path))
    env.pop('HF_HUB_CACHE', None)
    r = run([cvllm, 'model-info', 'org/missing'], env=env)
    assert r.returncode == 1
    assert 'not a path nor a model in the local Hugging Face cache' in r.stderr.replace('neither a path', 'not a path')
    assert 'models--org--missing' in r.stderr
    snap = cache(tmp_path)                       # a snapshot without any model file
    r = run([cvllm, 'tokenize', 'org/vocab', '--text', 'x'], env=env)
    assert r.returncode == 1 and 'no config.json and no .gguf' in r.stderr
    r = run([cvllm, 'model-info', 'no/such/thing'], env=env)
    assert r.returncode == 1 and 'no such file or directory' in r.stderr
