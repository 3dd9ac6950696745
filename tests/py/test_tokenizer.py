"""Differential tests of frontend/tokenizer (through `cvllm tokenize` and
`cvllm detokenize`) against the reference implementations:

(1) llama.cpp's tokenizer vectors in /work/shared/fixtures/vocab (.inp texts
    separated by __ggml_vocab_test__, .out one line of ids per text), via the
    GGUF loader and, for the byte-level vocabulary, via a tokenizer.json
    converted from the same GGUF (checked against HF `tokenizers` first);
(2) tokenizer.json files trained here with HF `tokenizers` (byte-level BPE
    with the gpt2 / llama3 / starcoder / qwen2 pre-tokenizers, both merge
    formats; SentencePiece-style BPE with byte fallback in three layouts):
    ids with and without special tokens, and decoding with and without
    skip_special_tokens, must equal `tokenizers` exactly;
(3) CLI behaviour: HF directories, --json, errors.
"""
import json
import os
import pathlib
import subprocess

import pytest

from conftest import binary

tokenizers = pytest.importorskip('tokenizers')
from tokenizers import (Regex, Tokenizer, decoders, models, normalizers,  # noqa: E402
                        pre_tokenizers, processors, trainers)

FIXTURES = pathlib.Path(os.environ.get('CVLLM_VOCAB_FIXTURES', '/work/shared/fixtures/vocab'))
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def cvllm():
    return binary('cli/cvllm')


def tokenize(cvllm, model, text, add_special=False):
    args = [cvllm, 'tokenize', str(model), '--add-special-tokens' if add_special else '--no-add-special-tokens']
    r = subprocess.run(args, input=text.encode('utf-8'), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return [int(x) for x in r.stdout.split()]


def detokenize(cvllm, model, ids, skip=False):
    args = [cvllm, 'detokenize', str(model), '--ids', ' '.join(map(str, ids))]
    if skip:
        args.append('--skip-special-tokens')
    r = subprocess.run(args, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode('utf-8')


def load_vectors(name):
    inp = (FIXTURES / (name + '.inp')).read_text(encoding='utf-8').split('\n__ggml_vocab_test__\n')
    out = (FIXTURES / (name + '.out')).read_text().split('\n')
    assert len(out) >= len(inp)
    return [(t, [int(x) for x in o.split()]) for t, o in zip(inp, out)]


def gguf_supported(cvllm):
    p = FIXTURES / 'ggml-vocab-starcoder.gguf'
    r = subprocess.run([cvllm, 'tokenize', str(p), '--text', 'x'], capture_output=True, timeout=60)
    return r.returncode == 0


# --- (1) llama.cpp vectors --------------------------------------------------------------

VOCABS = ['ggml-vocab-starcoder.gguf', 'ggml-vocab-llama-spm.gguf']


@pytest.mark.parametrize('name', VOCABS)
def test_gguf_vectors(cvllm, name):
    if not (FIXTURES / name).exists():
        pytest.skip(f'{FIXTURES / name} absent')
    if not gguf_supported(cvllm):
        pytest.skip('GGUF loading not built (engine/gguf.h unavailable): GGUF vectors skipped')
    vectors = load_vectors(name)
    assert len(vectors) >= 40
    bad = []
    for text, want in vectors:
        got = tokenize(cvllm, FIXTURES / name, text)
        if got != want:
            bad.append((text, got, want))
    assert not bad, f'{len(bad)}/{len(vectors)} mismatches, first: {bad[0]!r}'


@pytest.mark.parametrize('name', VOCABS)
def test_gguf_roundtrip(cvllm, name):
    if not (FIXTURES / name).exists() or not gguf_supported(cvllm):
        pytest.skip('GGUF loading not built or fixture absent')
    for text, want in load_vectors(name):
        assert detokenize(cvllm, FIXTURES / name, want) == text


def test_gguf_special_tokens(cvllm):
    """BOS rules and specials of the SPM vocabulary (llama: add_bos true)."""
    p = FIXTURES / 'ggml-vocab-llama-spm.gguf'
    if not p.exists() or not gguf_supported(cvllm):
        pytest.skip('GGUF loading not built or fixture absent')
    assert tokenize(cvllm, p, 'Hello world', add_special=True) == [1, 15043, 3186]
    # a special token in the text is recognised; the fragment after it gets
    # the SentencePiece space prefix again
    ids = tokenize(cvllm, p, 'Hello</s>world')
    assert ids[1] == 2 and ids[0] == 15043
    assert detokenize(cvllm, p, [1] + ids, skip=True) == 'Hello world'
    assert detokenize(cvllm, p, [1] + ids) == '<s> Hello</s> world'


def gguf_to_bytelevel_json(path, out):
    """Builds the HF tokenizer.json that a 'starcoder' GGUF vocabulary stands
    for: Digits(individual) + ByteLevel regex, specials as added tokens."""
    gguf = pytest.importorskip('gguf')
    r = gguf.GGUFReader(str(path))

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode('utf-8') for i in f.data]

    tokens = strings('tokenizer.ggml.tokens')
    merges = strings('tokenizer.ggml.merges')
    types = [int(r.fields['tokenizer.ggml.token_type'].parts[i][0]) for i in r.fields['tokenizer.ggml.token_type'].data]
    assert r.fields['tokenizer.ggml.pre'].contents() in ('starcoder', 'smollm')
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    added = [{'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
              'normalized': False, 'special': True} for i, t in enumerate(tokens) if types[i] == 3]
    doc = {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
        'normalizer': None,
        'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
            {'type': 'Digits', 'individual_digits': True},
            {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}]},
        'post_processor': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False,
                           'use_regex': True},
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False,
                  'ignore_merges': False, 'vocab': vocab, 'merges': [m.split(' ', 1) for m in merges]},
    }
    out.write_text(json.dumps(doc, ensure_ascii=False), encoding='utf-8')


def test_starcoder_vectors_via_tokenizer_json(cvllm, tmp_path):
    """The same llama.cpp vectors through the tokenizer.json path, on the real
    49k vocabulary; the converted file is first checked against HF."""
    src = FIXTURES / 'ggml-vocab-starcoder.gguf'
    if not src.exists():
        pytest.skip('fixture absent')
    path = tmp_path / 'tokenizer.json'
    gguf_to_bytelevel_json(src, path)
    hf = Tokenizer.from_file(str(path))
    vectors = load_vectors('ggml-vocab-starcoder.gguf')
    for text, want in vectors:
        assert hf.encode(text, add_special_tokens=False).ids == want, text
    bad = [(t, w) for t, w in vectors if tokenize(cvllm, path, t) != w]
    assert not bad, f'{len(bad)}/{len(vectors)} mismatches, first: {bad[0]!r}'
    for text, want in vectors:
        assert detokenize(cvllm, path, want) == hf.decode(want) == text


# --- (2) trained tokenizer.json files -----------------------------------------------------------

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2024; we'll see what they've done.",
    "def main(argc, argv):\n    return 0  # comment\n\n\tindented\twith\ttabs\r\n",
    "Numbers: 1 12 123 1234 12345 3.14159 -42 1e10 0x1F 1,000,000",
    "Café déjà vu, naïve façade, Ünïcödé, Straße, ÆØÅ æøå",
    "Привет, как дела? Ελληνικά κείμενα. مرحبا بالعالم",
    "I'm you're he's she'd they'll we've DON'T WON'T I'M",
    "    multiple    spaces   and\n\n\nnewlines   \n  ",
    "emoji 😀 😁 🦙 and 🚀 rockets; 你好世界 こんにちは 안녕하세요",
] * 20
if (ROOT / 'README.md').exists():
    CORPUS.append((ROOT / 'README.md').read_text(encoding='utf-8'))

SAMPLES = [
    '', ' ', '  ', '\n', '\t', ' \n ', 'Hello world', ' Hello world', 'Hello  world', 'hello\n\nworld  ',
    "it's I'M we'll THEY'VE she'd don't", "'s 'S 're 'Ve", 'abc123def 4567 8.90 1,000,000 ١٢٣',
    '3', '33', '333', '3333', '33333', '   Hello\n    Hello', 'a\r\nb\r\n\r\nc', 'x\u00a0y\u2003z',
    'Café naïve Straße ÆØÅ', 'Привет мир', '你好，世界！', 'こんにちは', '안녕하세요', 'مرحبا',
    '🦙🚀 😶‍🌫️ 👨‍👩‍👧‍👦 🇫🇷', '∑(x²) ≤ ∞ → ✅ ★', '<s>hello</s> <|eot|>x<|eot|><|eot|>',
    'tabs\tand\t\ttabs', '!!!!!!', '...', '$$$ @@@ ### %%%', '(parens) [brackets] {braces}',
    'emoji at end 😀', 'camelCaseWord snake_case_word kebab-case-word', 'URL https://example.com/a?b=c&d=e',
    'A' * 300, 'ab' * 200 + ' ' * 50 + 'z', '\u0000nul\u0001ctl\u007f', 'ǅ ǈ ǋ ǲ',
]

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

SPECIALS = ['<s>', '</s>', '<|eot|>']


def bytelevel_pretok(style):
    if style == 'gpt2':
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if style == 'gpt2-prefix':
        return pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    if style == 'starcoder':
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    pattern = {'llama3': LLAMA3, 'qwen2': QWEN2}[style]
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), 'isolated'),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def train_bytelevel(style, path, legacy_merges=False, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = bytelevel_pretok(style)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=1200, special_tokens=SPECIALS, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, tr)
    tok.post_processor = processors.TemplateProcessing(
        single='<s> $A', special_tokens=[('<s>', tok.token_to_id('<s>'))])
    tok.save(str(path))
    if legacy_merges:
        doc = json.loads(path.read_text(encoding='utf-8'))
        doc['model']['merges'] = [' '.join(m) for m in doc['model']['merges']]
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding='utf-8')
    return Tokenizer.from_file(str(path))


def spm_layout(layout):
    """(normalizer, pre_tokenizer) of the three SentencePiece-style layouts."""
    if layout == 'legacy':  # Llama 2 / TinyLlama tokenizer.json
        return (normalizers.Sequence([normalizers.Prepend('▁'), normalizers.Replace(' ', '▁')]), None)
    if layout == 'metaspace-first':  # legacy=false files
        return None, pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='first', split=False)
    return None, pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='always', split=True)


def train_spm(layout, path):
    norm, pre = spm_layout(layout)
    tok = Tokenizer(models.BPE(unk_token='<unk>', byte_fallback=True, fuse_unk=True))
    if norm:
        tok.normalizer = norm
    if pre:
        tok.pre_tokenizer = pre
    # the trainer sees pre-split words; leave CJK and emoji out of its
    # alphabet so that they need byte fallback
    corpus = [c for c in CORPUS if '😀' not in c and '你' not in c]
    tr = trainers.BpeTrainer(vocab_size=700, special_tokens=['<unk>', '<s>', '</s>'], show_progress=False)
    tok.train_from_iterator(corpus, tr)
    doc = json.loads(tok.to_str())
    # insert the 256 <0xNN> byte tokens after the specials, as Llama 2 has them
    old = doc['model']['vocab']
    vocab = {'<unk>': 0, '<s>': 1, '</s>': 2}
    for b in range(256):
        vocab[f'<0x{b:02X}>'] = 3 + b
    for t, _ in sorted(old.items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    doc['model']['vocab'] = vocab
    for a in doc['added_tokens']:
        a['id'] = vocab[a['content']]
    doc['post_processor'] = {'type': 'TemplateProcessing',
                             'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}},
                                        {'Sequence': {'id': 'A', 'type_id': 0}}],
                             'pair': [{'Sequence': {'id': 'A', 'type_id': 0}}],
                             'special_tokens': {'<s>': {'id': '<s>', 'ids': [1], 'tokens': ['<s>']}}}
    doc['decoder'] = {'type': 'Sequence', 'decoders': [
        {'type': 'Replace', 'pattern': {'String': '▁'}, 'content': ' '},
        {'type': 'ByteFallback'}, {'type': 'Fuse'},
        {'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0}]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding='utf-8')
    return Tokenizer.from_file(str(path))


def compare(cvllm, hf, path):
    mismatches = []
    for text in SAMPLES:
        for add in (False, True):
            want = hf.encode(text, add_special_tokens=add).ids
            got = tokenize(cvllm, path, text, add_special=add)
            if got != want:
                mismatches.append(('encode', add, text, got, want))
                continue
            for skip in (False, True):
                wd = hf.decode(want, skip_special_tokens=skip)
                gd = detokenize(cvllm, path, want, skip=skip)
                if gd != wd:
                    mismatches.append(('decode', skip, text, gd, wd))
    assert not mismatches, f'{len(mismatches)} mismatches, first: {mismatches[0]!r}'


@pytest.mark.parametrize('style', ['gpt2', 'gpt2-prefix', 'starcoder', 'llama3', 'qwen2'])
def test_trained_bytelevel(cvllm, tmp_path, style):
    path = tmp_path / 'tokenizer.json'
    hf = train_bytelevel(style, path)
    assert len(hf.get_vocab()) > 600  # merges were learned
    compare(cvllm, hf, path)


def test_trained_bytelevel_legacy_merges_and_ignore_merges(cvllm, tmp_path):
    path = tmp_path / 'tokenizer.json'
    hf = train_bytelevel('llama3', path, legacy_merges=True, ignore_merges=True)
    assert isinstance(json.loads(path.read_text(encoding='utf-8'))['model']['merges'][0], str)
    compare(cvllm, hf, path)


@pytest.mark.parametrize('layout', ['legacy', 'metaspace-first', 'metaspace-always-split'])
def test_trained_sentencepiece(cvllm, tmp_path, layout):
    path = tmp_path / 'tokenizer.json'
    hf = train_spm(layout, path)
    ids = hf.encode('你好 🦙').ids
    assert any(3 <= i < 259 for i in ids)  # byte fallback is exercised
    compare(cvllm, hf, path)


def bytelevel_to_gguf(hf, path, pre, add_bos):
    """Writes the tokenizer.ggml.* metadata llama.cpp's converter would write
    for a byte-level tokenizer, with the named pre-tokenizer."""
    gguf = pytest.importorskip('gguf')
    doc = json.loads(hf.to_str())
    vocab = doc['model']['vocab']
    for a in doc['added_tokens']:
        vocab[a['content']] = a['id']
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    special = {a['id'] for a in doc['added_tokens'] if a['special']}
    w = gguf.GGUFWriter(str(path), arch='llama')
    w.add_tokenizer_model('gpt2')
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
    w.add_token_merges([' '.join(m) for m in doc['model']['merges']])
    w.add_bos_token_id(hf.token_to_id('<s>'))
    w.add_eos_token_id(hf.token_to_id('</s>'))
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize('style,pre', [('llama3', 'llama-bpe'), ('qwen2', 'qwen2'), ('starcoder', 'smollm'),
                                       ('gpt2', 'gpt-2')])
def test_named_pretokenizers_via_gguf(cvllm, tmp_path, style, pre):
    """GGUF tokenizers select their regexes by name (tokenizer.ggml.pre); the
    same vocabulary as a tokenizer.json must encode identically with HF."""
    if not gguf_supported(cvllm):
        pytest.skip('GGUF loading not built')
    # llama.cpp applies ignore_merges for llama-bpe (as Llama 3's file does)
    hf = train_bytelevel(style, tmp_path / 'tokenizer.json', ignore_merges=style == 'llama3')
    path = tmp_path / 'vocab.gguf'
    # llama-bpe adds BOS by default; the others are told to
    bytelevel_to_gguf(hf, path, pre, None if style == 'llama3' else True)
    bad = []
    for text in SAMPLES:
        for add in (False, True):
            want = hf.encode(text, add_special_tokens=add).ids
            got = tokenize(cvllm, path, text, add_special=add)
            if got != want:
                bad.append((add, text, got, want))
        if detokenize(cvllm, path, want) != hf.decode(want, skip_special_tokens=False):
            bad.append(('decode', text))
    assert not bad, f'{len(bad)} mismatches, first: {bad[0]!r}'


def with_whole_pieces(hf, path):
    """Adds every pre-token HF produces on SAMPLES to the vocabulary and sets
    ignore_merges, so each piece encodes to exactly one id: the ids then spell
    out the pre-tokenization itself, and any difference in splitting shows."""
    doc = json.loads(hf.to_str())
    vocab = doc['model']['vocab']
    doc['model']['ignore_merges'] = True
    n = max(max(vocab.values()), max(a['id'] for a in doc['added_tokens'])) + 1
    added = 0
    for text in SAMPLES:
        for piece, _ in hf.pre_tokenizer.pre_tokenize_str(text):
            if piece not in vocab:
                vocab[piece] = n
                n += 1
                added += 1
    assert added > 50
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding='utf-8')
    return Tokenizer.from_file(str(path))


@pytest.mark.parametrize('style', ['gpt2', 'gpt2-prefix', 'starcoder', 'llama3', 'qwen2'])
def test_pretokenizer_exact(cvllm, tmp_path, style):
    hf = with_whole_pieces(train_bytelevel(style, tmp_path / 'base.json'), tmp_path / 'tokenizer.json')
    compare(cvllm, hf, tmp_path / 'tokenizer.json')
    if style == 'llama3' and gguf_supported(cvllm):
        # the built-in llama-bpe regex (GGUF path) must split the same way
        bytelevel_to_gguf(hf, tmp_path / 'vocab.gguf', 'llama-bpe', None)
        for text in SAMPLES:
            want = hf.encode(text, add_special_tokens=True).ids
            assert tokenize(cvllm, tmp_path / 'vocab.gguf', text, add_special=True) == want, text


# --- (3) CLI ------------------------------------------------------------------------------------

def test_cli_directory_and_json(cvllm, tmp_path):
    hf = train_bytelevel('gpt2', tmp_path / 'tokenizer.json')
    hf.post_processor = processors.ByteLevel()
    hf.save(str(tmp_path / 'tokenizer.json'))
    (tmp_path / 'tokenizer_config.json').write_text(json.dumps(
        {'bos_token': {'content': '<s>'}, 'eos_token': '</s>', 'add_bos_token': True}))
    r = subprocess.run([cvllm, 'tokenize', str(tmp_path), '--text', 'Hello world', '--json'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ids = json.loads(r.stdout)
    assert ids == [hf.token_to_id('<s>')] + hf.encode('Hello world').ids
    r = subprocess.run([cvllm, 'detokenize', str(tmp_path)], input=json.dumps(ids), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == '<s>Hello world'


def test_cli_errors(cvllm, tmp_path):
    r = subprocess.run([cvllm, 'tokenize', str(tmp_path / 'nope.json'), '--text', 'x'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and 'nope.json' in r.stderr
    bad = tmp_path / 'tokenizer.json'
    bad.write_text('{"model": {"type": "Unigram", "vocab": []}}')
    r = subprocess.run([cvllm, 'tokenize', str(bad), '--text', 'x'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and str(bad) in r.stderr and 'Unigram' in r.stderr
    train_bytelevel('gpt2', bad)
    r = subprocess.run([cvllm, 'detokenize', str(bad), '--ids', '1 999999'], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and 'out of range' in r.stderr
    r = subprocess.run([cvllm, 'detokenize', str(bad), '--ids', '1 x'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    r = subprocess.run([cvllm, 'tokenize', str(bad)], input=b'\xff\xfe', capture_output=True, timeout=60)
    assert r.returncode == 1 and b'UTF-8' in r.stderr
    r = subprocess.run([cvllm, 'tokenize'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
