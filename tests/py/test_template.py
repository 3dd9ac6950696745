"""Chat templates: `cvllm chat-template` must render byte-identically to
Python jinja2 configured as HF transformers configures it, and fail exactly
when jinja2 raises.

The oracle is jinja2 from the venv with transformers' environment:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[loopcontrols]), tojson = json.dumps(x, ensure_ascii=False,
indent=..., separators=..., sort_keys=...), raise_exception raising
TemplateError, strftime_now; render(messages=..., tools=..., documents=None,
add_generation_prompt=..., bos_token=..., eos_token=..., **extra)."""
import json
import pathlib
import subprocess
from datetime import datetime

import jinja2
import jinja2.ext
import pytest
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conftest import binary

FIXTURES = pathlib.Path('/work/shared/fixtures/templates')

# --- the oracle --------------------------------------------------------------


def _raise_exception(message):
    raise TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


def _env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters['tojson'] = _tojson
    env.globals['raise_exception'] = _raise_exception
    env.globals['strftime_now'] = _strftime_now
    return env


ENV = _env()


def py_render(template, messages, agp=False, bos='<s>', eos='</s>', extra=None):
    """Returns (True, bytes) or (False, exception)."""
    try:
        t = ENV.from_string(template)
        kw = dict(messages=messages, tools=None, documents=None, add_generation_prompt=agp)
        if bos is not None:
            kw['bos_token'] = bos
        if eos is not None:
            kw['eos_token'] = eos
        kw.update(extra or {})
        return True, t.render(**kw).encode()
    except Exception as e:  # noqa: BLE001 - any jinja2 failure is an expected error
        return False, e


def c_render(tmp_path, template, messages, agp=False, bos='<s>', eos='</s>', extra=None):
    tf = tmp_path / 'tpl.jinja'
    tf.write_bytes(template.encode())
    mf = tmp_path / 'messages.json'
    mf.write_text(json.dumps(messages, ensure_ascii=False))
    args = [binary('cli/cvllm'), 'chat-template', '-', '--template', str(tf),
            '--messages', str(mf)]
    if agp:
        args.append('--add-generation-prompt')
    if bos is not None:
        args += ['--bos', bos]
    if eos is not None:
        args += ['--eos', eos]
    if extra is not None:
        vf = tmp_path / 'vars.json'
        vf.write_text(json.dumps(extra, ensure_ascii=False))
        args += ['--vars', str(vf)]
    return subprocess.run(args, capture_output=True, timeout=60)


def check_same(tmp_path, template, messages, agp=False, bos='<s>', eos='</s>', extra=None):
    ok, want = py_render(template, messages, agp, bos, eos, extra)
    r = c_render(tmp_path, template, messages, agp, bos, eos, extra)
    if ok:
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout == want
    else:
        assert r.returncode == 1, (f'jinja2 raised {type(want).__name__}: {want}, '
                                   f'cvllm printed {r.stdout!r}')
        assert r.stdout == b''
        if type(want) is TemplateError:  # raise_exception: same message
            assert str(want).encode() in r.stderr, r.stderr.decode()
    return ok


# --- templates ---------------------------------------------------------------------

SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
           "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
           "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
           "{{ '<|im_start|>assistant\n' }}{% endif %}")

# TinyLlama-1.1B-Chat-v1.0 (Zephyr format): exercises trim_blocks on every tag.
ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
          "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
          "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + "
          "eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + "
          "message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
          "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")

# Llama 3.1 Instruct: like 3.2 plus builtin_tools (reject/join, items, `in`).
LLAMA31 = r'''{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
'''

# Mistral-7B-Instruct-v0.2 (raise_exception on bad role order).
MISTRAL_V02 = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
               "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
               "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
               "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
               "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only "
               "user and assistant roles are supported!') }}{% endif %}{% endfor %}")


def _fixture(name):
    return (FIXTURES / name).read_text()


TEMPLATES = {
    'qwen2.5': lambda: _fixture('Qwen-Qwen2.5-7B-Instruct.jinja'),
    'llama3.2': lambda: _fixture('meta-llama-Llama-3.2-3B-Instruct.jinja'),
    'phi3.5': lambda: _fixture('microsoft-Phi-3.5-mini-instruct.jinja'),
    'mistral-nemo': lambda: _fixture('mistralai-Mistral-Nemo-Instruct-2407.jinja'),
    'smollm2': lambda: SMOLLM2,
    'zephyr': lambda: ZEPHYR,
    'llama3.1': lambda: LLAMA31,
    'mistral-v0.2': lambda: MISTRAL_V02,
}

# --- conversations -------------------------------------------------------------------

TOOLS = [{
    'type': 'function',
    'function': {
        'name': 'get_weather',
        'description': 'Get the weather for a city. Uses "quotes" and ünïcødé.',
        'parameters': {
            'type': 'object',
            'properties': {
                'location': {'type': 'string', 'description': 'City name'},
                'unit': {'type': 'string', 'enum': ['celsius', 'fahrenheit']},
                'days': {'type': 'integer', 'default': 1, 'minimum': 1.0},
                'ratio': {'type': 'number', 'default': 1e-05},
            },
            'required': ['location'],
        },
    },
}]

TOOL_CALL = {
    'id': 'abc123def', 'type': 'function',
    'function': {'name': 'get_weather',
                 'arguments': {'location': 'Paris', 'unit': 'celsius', 'days': 3,
                               'ratio': 0.5, 'flags': [True, None]}},
}

CONVERSATIONS = {
    'single': [{'role': 'user', 'content': 'Hello!'}],
    'system': [{'role': 'system', 'content': 'You are terse.'},
               {'role': 'user', 'content': 'What is 2+2?'}],
    'multi': [{'role': 'system', 'content': 'Be helpful.'},
              {'role': 'user', 'content': 'Hi'},
              {'role': 'assistant', 'content': 'Hello! How can I help?'},
              {'role': 'user', 'content': 'Tell me a joke.'}],
    'no-system-multi': [{'role': 'user', 'content': 'a'}, {'role': 'assistant', 'content': 'b'},
                        {'role': 'user', 'content': 'c'}],
    'unicode-quotes': [{'role': 'user',
                        'content': 'Ünïcødé 中文 🙂 "double" \'single\' back\\slash\nnew line\t'
                                   'tab {{ not a tag }} {% neither %}'}],
    'whitespace': [{'role': 'system', 'content': '  padded system  \n'},
                   {'role': 'user', 'content': '\n\n  padded user \t '}],
    'bad-order': [{'role': 'user', 'content': 'one'}, {'role': 'user', 'content': 'two'}],
    'assistant-first': [{'role': 'assistant', 'content': 'I speak first'},
                        {'role': 'user', 'content': 'ok'}],
    'tool-calls': [{'role': 'user', 'content': 'Weather in Paris?'},
                   {'role': 'assistant', 'content': '', 'tool_calls': [TOOL_CALL]},
                   {'role': 'tool', 'tool_call_id': 'abc123def', 'name': 'get_weather',
                    'content': '{"temp": 20, "sky": "clear"}'},
                   {'role': 'assistant', 'content': 'It is 20 degrees and clear.'}],
    'content-parts': [{'role': 'user', 'content': [{'type': 'text', 'text': 'Hi in parts'}]}],
    'empty': [],
}

EXTRA = {'date_string': '26 Jul 2024'}


def _cases():
    for tname in TEMPLATES:
        for cname in CONVERSATIONS:
            for agp in (False, True):
                yield pytest.param(tname, cname, agp, None, id=f'{tname}-{cname}-agp{int(agp)}')
        for cname in ('single', 'system', 'tool-calls'):
            yield pytest.param(tname, cname, True, 'tools', id=f'{tname}-{cname}-tools')
    yield pytest.param('llama3.1', 'tool-calls', True, 'builtin', id='llama3.1-builtin-tools')
    yield pytest.param('llama3.2', 'system', True, 'no-user-tools', id='llama3.2-tools-in-system')


@pytest.mark.parametrize('tname,cname,agp,variant', list(_cases()))
def test_template_matches_jinja2(tmp_path, tname, cname, agp, variant):
    extra = dict(EXTRA)
    if variant == 'tools':
        extra['tools'] = TOOLS
    elif variant == 'builtin':
        extra['builtin_tools'] = ['brave_search', 'code_interpreter', 'get_weather']
    elif variant == 'no-user-tools':
        extra['tools'] = TOOLS
        extra['tools_in_user_message'] = False
    check_same(tmp_path, TEMPLATES[tname](), CONVERSATIONS[cname], agp, extra=extra)


def test_raise_exception_cases_do_raise(tmp_path):
    """The error path is exercised, not just tolerated: these must raise."""
    assert not check_same(tmp_path, MISTRAL_V02, CONVERSATIONS['bad-order'])
    assert not check_same(tmp_path, TEMPLATES['mistral-nemo'](), CONVERSATIONS['assistant-first'])
    r = c_render(tmp_path, MISTRAL_V02, CONVERSATIONS['bad-order'])
    assert b'Conversation roles must alternate' in r.stderr


def test_no_bos_eos_is_undefined(tmp_path):
    check_same(tmp_path, TEMPLATES['mistral-nemo'](), CONVERSATIONS['multi'][1:], bos=None,
               eos=None)
    check_same(tmp_path, '[{{ bos_token }}|{{ eos_token is defined }}]', [], bos=None, eos=None)


# --- feature templates: small programs compared against jinja2 ------------------------

CTX_MSGS = [{'role': 'system', 'content': ' sys '}, {'role': 'user', 'content': 'Hi "you"'},
            {'role': 'assistant', 'content': 'Hey', 'meta': {'b': 2, 'a': [1, 2.5, None, True]}}]

FEATURES = [
    # whitespace control, trim_blocks, lstrip_blocks
    'a\n  {% if true %}\n    x\n  {% endif %}\nb',
    'a  {% if true %}x{% endif %}  b',
    'a\n  {%- if true -%}\n  x  \n  {%- endif -%}  \nb',
    'a\n  {{- "x" -}}  \n b',
    '  {{ "v" }}  \n  {% if 1 %}y{% endif %}',
    'a\n    {%+ if true %}x{% endif %}\nb',
    'a {%- if true +%}\nx{% endif %}',
    'a\n  {# comment #}\nb\n  {#- c2 -#}  \nc',
    '{% for i in range(3) %}\n  {{ i }}\n{% endfor %}\n',
    '{% if true %}\r\nwin\r\n{% endif %}\r\nend\r\n',
    'x\n\n',
    '\t{% if true %}tabbed{% endif %}',
    '{{ "a" }}\n{% if true %}\nb\n{% endif %}',
    # literals and printing
    '{{ [1, "a", none, true, 1.5, (1, 2), {"k": "it\'s"}] }}',
    '{{ 1e-5 }} {{ 1e16 }} {{ 123456789.0 * 10 }} {{ 0.1 + 0.2 }} {{ 3 / 2 }} {{ 7 // 2 }} '
    '{{ -7 % 3 }} {{ 2 ** 10 }} {{ -7 // 2 }} {{ 7.5 // 2 }} {{ 1/3 }} {{ 100.0 }} {{ 1e100 }}',
    '{{ "a" ~ 1 ~ none ~ true ~ undefined_thing }}|{{ "x" * 3 }}|{{ [1] + [2] }}',
    '{{ ("tu",) }} {{ () }} {{ {"a": {"b": [1, {"c": "d"}]}} }} {{ "\\u00e9\\n" }}',
    '{{ "adjacent" "strings" }} {{ \'q"uote\' }} {{ ["it\'s", "say \\"hi\\""] }}',
    # access
    '{{ messages[0].role }} {{ messages[1]["content"] }} {{ messages[-1].meta.a[1] }} '
    '{{ messages[9] is defined }} {{ messages[0].nope is defined }} {{ messages.0.role }}',
    '{{ messages[1:] | length }} {{ "abcdef"[1:4] }} {{ "abcdef"[::-1] }} {{ [1,2,3,4][::2] }} '
    '{{ [1,2,3][:-1] }} {{ "héllo"[1] }} {{ "héllo"[-2:] }}',
    # operators and tests
    '{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ "a" in "cat" }} {{ 2 not in [1, 3] }} {{ "k" in {"k": 1} }}'
    ' {{ not 1 is defined }} {{ none is none }} {{ 1 if false }}|{{ 0 or "x" }} {{ 1 and 2 }}'
    ' {{ - 3 | abs }} {{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ "a" is string }}',
    '{{ x is undefined }} {{ {} is mapping }} {{ [] is iterable }} {{ "s" is sequence }} '
    '{{ 1 is number }} {{ true is true }} {{ false is false }} {{ 1 is integer }} {{ 1.0 is float }} '
    '{{ "user" is equalto "user" }} {{ 3 is ne 4 }} {{ 5 is gt 4 }}',
    # filters
    '{{ "  hi  " | trim }}|{{ "xxhixx" | trim("x") }}|{{ "hello world" | title }}|'
    '{{ "hELLO" | capitalize }}|{{ "a-b c(d" | title }}|{{ "Ab" | upper }}{{ "Ab" | lower }}',
    '{{ messages | length }} {{ "héllo" | length }} {{ messages | map(attribute="role") | join(", ") }}'
    ' {{ messages | selectattr("role", "equalto", "user") | list | length }}'
    ' {{ messages | rejectattr("role", "equalto", "user") | map(attribute="role") | list }}',
    '{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ [] | first is defined }} '
    '{{ [1, 2, 1] | unique | list }} {{ "abc" | list }} {{ {"a": 1, "b": 2} | items | list }}',
    '{{ undefined_v | default("dflt") }} {{ "" | default("e", true) }} {{ none | d("n") }} '
    '{{ 42 | string }} {{ "42" | int + 1 }} {{ "x" | int }} {{ "2.5" | float }} {{ 3 | float }} '
    '{{ 2.5 | round }} {{ 3.14159 | round(2) }} {{ 2.7 | round(0, "floor") }} {{ -4 | abs }}',
    '{{ "a,b,,c".split(",") }} {{ " x y  z ".split() }} {{ "a b c".split(" ", 1) }} '
    '{{ "  pad ".strip() }}|{{ "  pad ".lstrip() }}|{{ "  pad ".rstrip() }}|{{ "xxaxx".strip("x") }}',
    '{{ "Hello".startswith("He") }} {{ "Hello".endswith(("x", "lo")) }} {{ "abc".upper() }} '
    '{{ "ABC".lower() }} {{ "hello world".title() }} {{ "aaa".replace("a", "b", 2) }} '
    '{{ "a-b".replace("-", "+") }} {{ "x".join(["1", "2"]) }} {{ "abcabc".find("c") }}',
    '{% set d = {"b": 1, "a": 2} %}{{ d.keys() | list }} {{ d.values() | list }} '
    '{{ d.get("a") }} {{ d.get("z", "none") }} {{ d.get("z") }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}',
    '{{ messages[2] | tojson }}\n{{ messages[2] | tojson(indent=2) }}\n{{ "é\\"\\n\\u0001" | tojson }}'
    '\n{{ [] | tojson(indent=4) }} {{ {} | tojson }} {{ 1.0 | tojson }} {{ {"b": 1, "a": 2} | tojson(sort_keys=true) }}',
    '{{ [3, 1, 2] | sort | list }} {{ ["b", "A", "c"] | sort }} {{ {"b": 1, "a": 2} | dictsort }} '
    '{{ [1, 2, 3] | sum }} {{ [4, 2, 8] | min }} {{ [4, 2, 8] | max }} {{ [1, 2, 3] | reverse | list }}'
    ' {{ "one two  three" | wordcount }} {{ "a\\nb\\n\\nc" | indent(2) }}|{{ "a\\nb" | indent(2, true) }}',
    '{{ ["a", "b"] | map("upper") | list }} {{ [1, 0, 2] | select | list }} '
    '{{ [1, 0, 2] | reject | list }} {{ [1, 2, 3, 4] | select("odd") | list }} {{ "x" | safe }}',
    # statements
    '{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/'
    '{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }} {% endfor %}',
    '{% for m in messages if m.role != "system" %}{{ loop.index }}:{{ m.role }} {% endfor %}',
    '{% for x in [] %}never{% else %}empty{% endfor %} {% for x in undefined_list %}n{% else %}u{% endfor %}',
    '{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}'
    '{% endif %}{{ i }}{% endfor %}',
    '{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }},{% endfor %}{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}',
    '{% set x = 1 %}{% for i in range(3) %}{{ x }}{% set x = i %}{{ x }},{% endfor %}{{ x }}',
    '{% set ns = namespace(n=0, s="") %}{% for i in range(4) %}{% set ns.n = ns.n + i %}'
    '{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}',
    '{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = (3, 4) %}{{ c }}',
    '{% set block %}\n  inner {{ 1 + 1 }}\n{% endset %}[{{ block }}]{% set t | upper %}up{% endset %}{{ t }}',
    '{% macro greet(name, punct="!") %}Hi {{ name }}{{ punct }}{% endmacro %}'
    '{{ greet("Bob") }} {{ greet("Al", punct="?") }} {{ greet(name="Cy") }}',
    '{% if false %}a{% elif 0 %}b{% elif "x" %}c{% else %}d{% endif %}',
    '{{ "yes" if messages else "no" }} {{ "a" if false else "b" if true else "c" }}',
    '{% raw_like = 1 %}',
    # unicode whitespace and case mapping, Python rounding, repr corner cases
    '[{{ "\\u3000 hi\\u00a0\\n" | trim }}]|{{ "\\u3000a\\u2003b c".split() }}|[{{ " é x é ".strip(" é") }}]'
    '|{{ " a b  c ".split(None, 1) }}|{{ "  ".split() }}|{{ "ÉCOLE Ωμέγα Привет".lower() }}'
    '|{{ "élan straße" | upper }}|{{ "ÿ élan" | title }}|{{ "über".capitalize() }}',
    '{{ 2.675 | round(2) }} {{ 0.125 | round(2) }} {{ -2.5 | round }} {{ 1234.5 | round(-1) }} '
    '{{ (1, 2) | tojson }} {{ {1: "a", 2.5: "b", true: "c", none: "d"} | tojson }} '
    '{{ messages | map(attribute="nope") | list }} {{ 123456789012345678 }} {{ 1.5e15 }} {{ 2 ** 0.5 }}',
    '{% for m in messages %}{{ loop.cycle("odd", "even") }}{{ loop | length }}'
    '{{ loop.previtem is defined }}{{ loop.nextitem.role if loop.nextitem is defined }} {% endfor %}',
    '{% macro m() %}{{ outer }}{% endmacro %}{% set outer = "O" %}{{ m() }}'
    '{% set a = 1 %}{% macro n(a) %}{{ a }}{% endmacro %}{{ n() }}|{{ n(2) }}',
    '{{ messages[2].meta.content is defined }} {{ none.x }}|{{ "s".nope }}|{{ messages[0].role.upper() }}'
    '{{ dict(a=1, b="x") }} {{ range(5, 0, -2) | list }} {{ [[1, 2], [3]] | map("length") | list }}',
    '{{ "a" }}   {# c #}   {{ "b" }}\n  {#+ plus comment #}\nx\n{% if true -%}\n  {% if true %}\n'
    '    inner\n  {% endif %}\n{%- endif %}\n{{ \'a\' -}}\n     \n{{- \'b\' }}',
    '    {%- for m in messages %}\n    {{ m.role }}\n    {% endfor %}\ndone\n{% if true %}a{% endif +%}\nb',
    # runtime errors must be errors in both
    '{{ undefined_thing | int }}',
    '{{ undefined_thing < 1 }}',
    '{{ undefined_thing.attr }}',
    '{{ "a" + 1 }}',
    '{{ none | length }}',
    '{{ 1 / 0 }}',
    '{{ raise_exception("custom failure: " ~ 42) }}',
    '{{ messages | tojson(indent="x") }}',
    '{% for x in 5 %}{% endfor %}',
    '{{ [1, 2].append(3) }}',
]


@pytest.mark.parametrize('idx', range(len(FEATURES)))
def test_feature_matches_jinja2(tmp_path, idx):
    check_same(tmp_path, FEATURES[idx], CTX_MSGS, agp=True, extra={'flag': True})


# --- model directories ---------------------------------------------------------------


def test_hf_directory_and_named_templates(tmp_path):
    d = tmp_path / 'model'
    d.mkdir()
    cfg = {'bos_token': {'content': '<|begin|>', 'lstrip': False}, 'eos_token': '<|end|>',
           'chat_template': [{'name': 'tool_use', 'template': 'TOOLS'},
                             {'name': 'default', 'template': '{{ bos_token }}{% for m in messages %}'
                              '{{ m.content }}{% endfor %}{{ eos_token }}'}]}
    (d / 'tokenizer_config.json').write_text(json.dumps(cfg))
    mf = tmp_path / 'm.json'
    mf.write_text(json.dumps([{'role': 'user', 'content': 'x'}]))
    r = subprocess.run([binary('cli/cvllm'), 'chat-template', str(d), '--messages', str(mf)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b'<|begin|>x<|end|>'
    r = subprocess.run([binary('cli/cvllm'), 'chat-template', str(d), '--messages', str(mf),
                        '--eos', 'E'], capture_output=True, timeout=60)
    assert r.stdout == b'<|begin|>xE'
    # newer layout: the template in chat_template.jinja, tokens absent
    d2 = tmp_path / 'model2'
    d2.mkdir()
    (d2 / 'tokenizer_config.json').write_text(json.dumps({'eos_token': '</s>'}))
    (d2 / 'chat_template.jinja').write_text(ZEPHYR + '\n')
    r = subprocess.run([binary('cli/cvllm'), 'chat-template', str(d2), '--messages', str(mf)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ok, want = py_render(ZEPHYR + '\n', [{'role': 'user', 'content': 'x'}], bos=None, eos='</s>')
    assert ok and r.stdout == want


def test_cli_errors(tmp_path):
    mf = tmp_path / 'm.json'
    mf.write_text('[{"role": "user", ')
    tf = tmp_path / 't.jinja'
    tf.write_text('{{ messages }}')
    r = subprocess.run([binary('cli/cvllm'), 'chat-template', '-', '--template', str(tf),
                        '--messages', str(mf)], capture_output=True, timeout=60)
    assert r.returncode == 1 and b'JSON' in r.stderr
    tf.write_text('line1\n{% include "x" %}')
    mf.write_text('[]')
    r = subprocess.run([binary('cli/cvllm'), 'chat-template', '-', '--template', str(tf),
                        '--messages', str(mf)], capture_output=True, timeout=60)
    assert r.returncode == 1 and b'line 2' in r.stderr and b'include' in r.stderr
    r = subprocess.run([binary('cli/cvllm'), 'chat-template', '-', '--messages', str(mf)],
                       capture_output=True, timeout=60)
    assert r.returncode == 2


def test_gguf_chat_template(tmp_path):
    """tokenizer.chat_template and the bos/eos token strings come from a GGUF."""
    gguf = pytest.importorskip('gguf')
    path = tmp_path / 'tiny.gguf'
    w = gguf.GGUFWriter(str(path), 'llama')
    w.add_chat_template(ZEPHYR)
    w.add_tokenizer_model('llama')
    w.add_token_list(['<unk>', '<|bos|>', '<|eos|>', 'a'])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    msgs = CONVERSATIONS['multi']
    mf = tmp_path / 'm.json'
    mf.write_text(json.dumps(msgs))
    r = subprocess.run([binary('cli/cvllm'), 'chat-template', str(path), '--messages', str(mf),
                        '--add-generation-prompt'], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    ok, want = py_render(ZEPHYR, msgs, True, '<|bos|>', '<|eos|>')
    assert ok and r.stdout == want
