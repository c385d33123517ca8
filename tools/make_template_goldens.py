#!/usr/bin/env python3
"""Golden renderings of chat templates by the OFFICIAL renderer (transformers'
`render_jinja_template`, the function `apply_chat_template` ends in), for the Jinja features a
checkpoint's template may use beyond the fixtures' own: trim_blocks / lstrip_blocks (transformers
turns both on), loop controls, the `{% generation %}` tag, `raise_exception`, transformers' own
`tojson` (json.dumps, not Jinja's HTML-escaping one), `strftime_now`, namespaces, Python string
methods, dict iteration order, and how values print.

    HF_HUB_OFFLINE=1 tools/.venv/bin/python tools/make_template_goldens.py fixtures

Writes <out>/golden/chat_templates.json (deterministic):
  cases:     [{name, template, messages, add_generation_prompt, bos_token, eos_token,
               rendered | error}]
  strftime:  [{format, timestamp, rendered}]: datetime.fromtimestamp(ts, UTC).strftime(format),
             what strftime_now(format) gives at that instant with TZ=UTC
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import transformers
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

BOS, EOS = "<s>", "</s>"

CHAT = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "  Hello there, world  "},
    {"role": "assistant", "content": "Hi <b>&</b> 'you' \"too\" ü\tend"},
    {"role": "user", "content": "What is 2+2?"},
]
NOT_ALTERNATING = [
    {"role": "user", "content": "a"},
    {"role": "user", "content": "b"},
]

WITH_FIELDS = [
    {"role": "user", "content": "q", "name": "bob"},
    {"role": "assistant", "content": "a", "reasoning": "r1"},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "content": "b", "thinking": "t2", "reasoning_content": "rc2"},
    {"role": "assistant", "content": "c", "reasoning_content": None, "thinking": "t3"},
    {"role": "assistant", "content": None, "name": None},
]

# Jinja2 filters, tests, methods and operators templates use (one line each in one template);
# printing tuples (`items`, `dictsort`) is not matched
FILTER_EXPRS = [
    "'hello world'|truncate(8)",
    "'hello big wide world'|truncate(9)",
    "'hello big wide world'|truncate(9, true)",
    "'hello big wide world'|truncate(12, false, '~', 0)",
    "'hello big wide world'|truncate(length=10, end='…', leeway=1)",
    "messages|selectattr('role','equalto','system')|list|length",
    "messages|selectattr('role','eq','user')|map(attribute='content')|join('/')",
    "messages|rejectattr('role','equalto','system')|map(attribute='role')|list",
    "messages|first|attr('role') if false else (messages|first)['role']",
    "(messages|last).content",
    "messages|map(attribute='content')|map('trim')|list",
    "[3,1,2]|sort|list",
    "[3,1,2]|reverse|list",
    "[1,2,2,3]|unique|list",
    "[1,2,3]|sum",
    "messages|length",
    "'5'|int + 1",
    "'2.5'|float",
    "2.567|round(1)",
    "-3|abs",
    "none|default('d')",
    "''|default('d', true)",
    "''|d('x', true)",
    "'a b c'|wordcount",
    "'abc'|center(7)",
    "'x'|indent(2)",
    "'Hi\\nthere'|indent(2, true)",
    "[1,2,3,4,5]|batch(2)|list",
    "[1,2,3]|slice(2)|list",
    "{} is mapping",
    "[] is sequence",
    "'s' is iterable",
    "1 is number",
    "1.0 is integer",
    "true is boolean",
    "none is none",
    "true is true",
    "false is false",
    "2 is divisibleby 2",
    "3 is even",
    "3 is odd",
    "'a' is in 'abc'",
    "1 is sameas 1",
    "'x' is string",
    "'  x  '|trim",
    "'Hello'|lower",
    "'hello'|upper",
    "'hello world'|capitalize",
    "'hello world'|title",
    "'abcab'|replace('ab','X')",
    "'a,b'|split(',') if false else 'a,b'.split(',')",
    "'<b>x</b>'|striptags",
    "'%s-%s'|format(1,'a')",
    "'x'|string",
    "1|string",
    "[1,2]|string",
    "range(3)|list",
    "range(1,7,2)|list",
    "'abc'|list",
    "'abc'[1:]",
    "messages[0].content|length",
    "(messages|selectattr('role','equalto','user')|first).content",
    "loop is defined",
    "'x'.center(5)",
    "'a-b'.split('-')",
    "'ab'.find('b')",
    "'  a'.isspace()",
    "'12'.isdigit()",
    "'Ab'.islower()",
    "'ab'.count('a')",
    "'x' in ['x','y']",
    "'k' in {'k':1}",
    "[1]+[2]",
    "{'a':1}.keys()|list",
    "{'a':1}.values()|list",
    "{'a':{'b':2}}['a']['b']",
    "messages[1:3]|length",
    "messages[-1:]|map(attribute='role')|join",
    "1 ~ 2",
    "3 // 2",
    "3 % 2",
    "2 ** 3",
    "-1 if true",
    "'a' if false else 'b'",
    "not true",
    "true and false or true",
    "'x'|escape",
    "'<x>'|e",
    "'<x>'|safe",
    "0.1+0.2",
    "1e3",
    "10/4",
    "7/7",
]

CASES = [
    # transformers compiles with trim_blocks=True, lstrip_blocks=True: a block tag's own line
    # (its indentation and its newline) leaves nothing behind
    ("trim_and_lstrip_blocks", CHAT, True, """{% for message in messages %}
    {% if message['role'] == 'system' %}
<<SYS>>{{ message['content'] }}<</SYS>>
    {% else %}
[{{ message['role'] | upper }}] {{ message['content'] }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
    [ASSISTANT]
{% endif %}
"""),
    # ... but a `+` keeps them, and `-` still trims on the other side
    ("block_whitespace_modifiers", CHAT[:2], False,
     "{% for m in messages +%}\n  {%+ if m.role == 'user' %}U:{{ m.content }}{% endif +%}\n{%- endfor %}\n"),
    ("trailing_newline_dropped", CHAT[:1], False, "{{ messages[0].content }}\n"),
    ("loop_controls", CHAT, False,
     "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
     "{% if loop.index > 3 %}{% break %}{% endif %}<{{ m.role }}:{{ loop.index }}>{{ m.content }}{% endfor %}"),
    ("generation_tag", CHAT, True,
     "{%- for m in messages %}\n{%- if m.role == 'assistant' %}\n{% generation %}[A]{{ m.content }}{{ eos_token }}{% endgeneration %}\n"
     "{%- else %}[{{ m.role }}]{{ m.content }}\n{% endif %}\n{%- endfor %}\n"
     "{%- if add_generation_prompt %}{%- generation -%}  [A]  {%- endgeneration -%}{% endif %}"),
    ("raise_exception_on_bad_roles", NOT_ALTERNATING, True,
     "{{ bos_token }}{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
     "{{ m.content }}{% endfor %}"),
    ("raise_exception_not_reached", CHAT[1:3], True,
     "{{ bos_token }}{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
     "[INST]{{ m.content }}{% endfor %}"),
    ("tojson_python_style", CHAT[1:3], False,
     "{{ messages | tojson }}|{{ messages[0] | tojson(indent=2) }}|"
     "{{ {'b': 1, 'a': [1, 2.5, 1.0, -3, none, true, false, 'x<y>&\\'\"']} | tojson }}|"
     "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ 'ü\\n\\t\\\\/' | tojson }}|"
     "{{ 'ü€😀' | tojson(ensure_ascii=true) }}|{{ [1, {'k': 'v'}] | tojson(separators=(',', ':')) }}|"
     "{{ {} | tojson(indent=2) }}|{{ [] | tojson(indent=4) }}|{{ [[], {}, [1]] | tojson(indent=1) }}|"
     "{{ {'k': [1, 2]} | tojson(indent='\\t') }}"),
    ("namespace_dict_and_printed_values", CHAT, False,
     "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'system' %}"
     "{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}"
     "{{ ns.found }} {{ ns.n }} {{ true }} {{ false }} {{ none }} {{ 1.0 }} {{ 2.50 }} {{ 7 // 2 }} {{ 7 / 2 }} "
     "{{ [1, 'a', none, true] }} {{ dict(a=1, b='x') }} {{ messages[0] }}"),
    ("string_methods_and_items", CHAT[1:3], False,
     "{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}|"
     "{{ messages[0].content.strip() }}|{{ messages[0].content.lstrip() }}|{{ messages[0].content.rstrip() }}|"
     "{{ messages[0].content.strip().split(' ') | join('_') }}|{{ messages[0].content.split() }}|"
     "{{ messages[1].content.startswith('Hi') }}|{{ messages[1].content.endswith(('end', 'x')) }}|"
     "{{ messages[0].content.replace('l', 'L') }}|{{ messages[0].content.upper() }}|{{ messages[0].content.title() }}|"
     "{{ messages[0].content | trim | length }}|{{ messages[0].content[2:7] }}|{{ messages[0].content[::-1] }}|"
     "{{ messages[-1].role }}|{{ messages | map(attribute='role') | join(',') }}|"
     "{{ messages[0].content.strip().rstrip('d').lstrip('H') }}|{{ 'a,b,,c'.split(',') }}|"
     "{{ messages[0].content | trim | capitalize }}|{{ 'x' ~ 3 ~ none }}|{{ 'ab' * 3 }}"),
    # a backslash before a line break inside a string literal joins the lines (Python's rule;
    # Mistral-Small-3.1's default system prompt is written that way)
    ("line_continuation_in_a_string", CHAT[:1], False,
     '{%- set p = "First line.\\\nSecond part, \\\\ kept." -%}{{ p }}|{{ \'a\\\nb\' }}|text \\\nkept'),
    # transformers passes tools=None and documents=None when there are none
    ("tools_and_documents_are_none", CHAT[:1], False,
     "{% if tools is defined %}d{% endif %}{% if tools is none %}n{% endif %}{% if documents is not none %}x{% endif %}"
     "{% if tools is not none and tools|length > 0 %}T{% endif %}{% if tools %}t{% endif %}"),
    # a message's other fields reach the template, reasoning under all its names
    # (transformers' _alias_reasoning_fields)
    ("message_fields_and_reasoning_aliases", WITH_FIELDS, True,
     "{% for m in messages %}{{ m.role }}|{{ m.get('name', '-') }}|{{ m.reasoning_content }}|{{ m.thinking }}|"
     "{{ m.reasoning | default('') }}|{{ m.content }}|{% if m.content is defined %}c{% endif %};{% endfor %}"),
    ("jinja2_filters_tests_and_operators", CHAT, False,
     "".join("{{ %s }}\n" % e for e in FILTER_EXPRS)),
    ("undefined_values", CHAT[:1], False,
     "[{{ missing }}][{% if missing is defined %}d{% else %}u{% endif %}][{{ messages[0].missing }}]"
     "[{{ messages[0].get('missing', 'dflt') }}][{{ messages[0].missing | default('D') }}]"
     "[{% if messages[0].missing %}t{% else %}f{% endif %}][{{ missing | length if missing is defined else 0 }}]"),
]

STRFTIME_FORMATS = ["%Y-%m-%d", "%d %b %Y", "%B %d, %Y", "%A %H:%M:%S", "%a %y %j %p %I", "%e|%%|%m/%d"]
STRFTIME_TIMES = [0, 1721995509, 1764547200 - 1, 2000000000]


# Where the template comes from: files laid out on top of a copy of a fixture's tokenizer (and,
# for the processor, its processor_config.json), loaded with AutoTokenizer / AutoProcessor.
ABSENT = "__absent__"
L = [{"name": "default", "template": "LIST_DEFAULT"}, {"name": "tool_use", "template": "LIST_TOOLS"}]
L_NODEF = [{"name": "rag", "template": "LIST_RAG"}, {"name": "tool_use", "template": "LIST_TOOLS"}]
SOURCE_CASES = [
    # name, owner, tokenizer_config chat_template, chat_template.jinja, chat_template.json,
    # processor_config chat_template, additional_chat_templates/
    ("nothing", "tokenizer", ABSENT, None, None, ABSENT, {}),
    ("config_string", "tokenizer", "CONFIG", None, None, ABSENT, {}),
    ("config_null", "tokenizer", None, None, None, ABSENT, {}),
    ("config_list", "tokenizer", L, None, None, ABSENT, {}),
    ("config_list_without_default", "tokenizer", L_NODEF, None, None, ABSENT, {}),
    ("jinja", "tokenizer", ABSENT, "JINJA", None, ABSENT, {}),
    ("jinja_beats_config_string", "tokenizer", "CONFIG", "JINJA", None, ABSENT, {}),
    ("jinja_beats_config_null", "tokenizer", None, "JINJA", None, ABSENT, {}),
    ("jinja_beats_config_list", "tokenizer", L, "JINJA", None, ABSENT, {}),
    ("json_is_not_the_tokenizers", "tokenizer", ABSENT, None, "JSON", ABSENT, {}),
    ("config_beats_json", "tokenizer", "CONFIG", None, "JSON", ABSENT, {}),
    ("additional_default", "tokenizer", ABSENT, None, None, ABSENT, {"default": "ADD_DEFAULT"}),
    ("additional_default_beats_jinja", "tokenizer", ABSENT, "JINJA", None, ABSENT, {"default": "ADD_DEFAULT"}),
    ("jinja_with_additional_named", "tokenizer", ABSENT, "JINJA", None, ABSENT, {"tool_use": "ADD_TOOLS"}),
    ("additional_hides_config", "tokenizer", "CONFIG", None, None, ABSENT, {"tool_use": "ADD_TOOLS"}),
    ("processor_nothing_but_config", "processor", "CONFIG", None, None, ABSENT, {}),
    ("processor_jinja", "processor", "CONFIG", "JINJA", None, ABSENT, {}),
    ("processor_json_beats_jinja", "processor", ABSENT, "JINJA", "JSON", ABSENT, {}),
    ("processor_config_beats_json", "processor", ABSENT, "JINJA", "JSON", "PROCESSOR_CONFIG", {}),
    ("processor_config_null_falls_through", "processor", ABSENT, "JINJA", None, None, {}),
    ("processor_jinja_beats_additional_default", "processor", ABSENT, "JINJA", None, ABSENT, {"default": "ADD_DEFAULT"}),
    ("processor_additional_only", "processor", ABSENT, None, None, ABSENT, {"default": "ADD_DEFAULT", "x": "ADD_X"}),
    ("processor_additional_without_default", "processor", ABSENT, None, None, ABSENT, {"x": "ADD_X"}),
    ("processor_json_list", "processor", ABSENT, None, L, ABSENT, {}),
    ("processor_json_with_additional_refused", "processor", ABSENT, None, "JSON", ABSENT, {"x": "ADD_X"}),
]


def source_cases(fixtures: Path) -> list:
    import shutil
    import tempfile
    from transformers import AutoProcessor, AutoTokenizer
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, owner, tc_t, jinja, json_t, pc_t, extra in SOURCE_CASES:
            src = fixtures / ("tiny" if owner == "tokenizer" else "llava_qwen3")
            d = Path(tmp) / name
            d.mkdir()
            for f in ["tokenizer.json", "tokenizer_config.json", "processor_config.json", "config.json"]:
                if (src / f).exists():
                    shutil.copy(src / f, d / f)
            tc = json.loads((d / "tokenizer_config.json").read_text())
            tc.pop("chat_template", None)
            if tc_t != ABSENT:
                tc["chat_template"] = tc_t
            (d / "tokenizer_config.json").write_text(json.dumps(tc))
            if owner == "processor":
                pc = json.loads((d / "processor_config.json").read_text())
                pc.pop("chat_template", None)
                if pc_t != ABSENT:
                    pc["chat_template"] = pc_t
                (d / "processor_config.json").write_text(json.dumps(pc))
            if jinja is not None:
                (d / "chat_template.jinja").write_text(jinja)
            if json_t is not None:
                (d / "chat_template.json").write_text(json.dumps({"chat_template": json_t}))
            if extra:
                (d / "additional_chat_templates").mkdir()
                for k, v in extra.items():
                    (d / "additional_chat_templates" / f"{k}.jinja").write_text(v)
            rendered, load_error = None, None
            try:
                obj = AutoTokenizer.from_pretrained(d) if owner == "tokenizer" else AutoProcessor.from_pretrained(d)
            except ValueError as e:
                load_error = str(e)
            else:
                msgs = [{"role": "user", "content": [{"type": "text", "text": "x"}]}]
                try:
                    rendered = obj.apply_chat_template(msgs, tokenize=False)
                except Exception:
                    rendered = None
            row = dict(name=name, owner=owner, tokenizer_config=tc_t, chat_template_jinja=jinja,
                       chat_template_json=json_t, processor_config=pc_t, additional=extra,
                       rendered=rendered)
            if load_error is not None:
                row["load_error"] = load_error
            rows.append(row)
            print(f"{name:44s} {owner:9s} -> {rendered!r}")
    return rows


CONFIG_EDITS = [
    {"tokenizer_class": "Qwen2Tokenizer"},
    {"tokenizer_class": "Qwen2TokenizerFast", "unk_token": None},
    {"tokenizer_class": "GPT2TokenizerFast"},
    {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|im_start|>"},
    {"tokenizer_class": "LlamaTokenizerFast"},
    {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": {"__type": "AddedToken", "content": "<|im_start|>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}},
    {"tokenizer_class": "TokenizersBackend", "sep_token": "<|im_start|>", "cls_token": "<|endoftext|>"},
]


def special_tokens_by_config(out: Path) -> list:
    import shutil
    import tempfile
    rows = []
    for edit in CONFIG_EDITS:
        with tempfile.TemporaryDirectory() as d:
            for f in ["tokenizer.json", "tokenizer_config.json"]:
                shutil.copy(out / "llava_qwen3" / f, Path(d) / f)
            tc = json.loads((Path(d) / "tokenizer_config.json").read_text())
            tc.update(edit)
            (Path(d) / "tokenizer_config.json").write_text(json.dumps(tc))
            rows.append({"tokenizer_config": tc, "map": AutoTokenizer.from_pretrained(d).special_tokens_map})
    return rows


TOKENIZER = None


def main() -> None:
    global TOKENIZER
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    TOKENIZER = AutoTokenizer.from_pretrained(out / "tiny")
    cases = []
    for name, messages, add_gen, template in CASES:
        case = dict(name=name, template=template, messages=messages, add_generation_prompt=add_gen,
                    bos_token=BOS, eos_token=EOS)
        try:
            # the tokenizer's apply_chat_template: it drops None-valued keys, then renders
            case["rendered"] = TOKENIZER.apply_chat_template(
                messages, chat_template=template, add_generation_prompt=add_gen, tokenize=False,
                bos_token=BOS, eos_token=EOS)
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        cases.append(case)
        print(f"{name:36s} {'error: ' + case['error'] if 'error' in case else repr(case['rendered'][:70])}")
    strf = [dict(format=f, timestamp=t, rendered=datetime.fromtimestamp(t, timezone.utc).strftime(f))
            for f in STRFTIME_FORMATS for t in STRFTIME_TIMES]
    doc = {
        "what": "AutoTokenizer(fixtures/tiny).apply_chat_template(messages, chat_template=template, "
                "add_generation_prompt=..., tokenize=False, bos_token=..., eos_token=...)",
        "versions": {"transformers": transformers.__version__, "jinja2": jinja2.__version__},
        "cases": cases,
        "strftime": strf,
    }
    sources = {
        "what": "which template apply_chat_template renders (tokenizer: AutoTokenizer; processor: AutoProcessor) "
                "for each layout of template files; rendered null = transformers renders none. The tokenizer "
                "cases start from fixtures/tiny, the processor cases from fixtures/llava_qwen3; "
                "'__absent__' = no such key.",
        "versions": {"transformers": transformers.__version__},
        "cases": source_cases(out),
        # what apply_chat_template passes the template besides messages (tokenizer.special_tokens_map)
        "special_tokens_map": {f: AutoTokenizer.from_pretrained(out / f).special_tokens_map
                               for f in ["tiny", "small", "llava_qwen3", "llava_mistral"]},
        # the same for llava_qwen3's tokenizer with tokenizer_config.json edited (class defaults)
        "special_tokens_by_config": special_tokens_by_config(out),
    }
    (out / "golden" / "chat_template_sources.json").write_text(json.dumps(sources, indent=1) + "\n")
    path = out / "golden" / "chat_templates.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"{path}: {len(cases)} cases, {len(strf)} strftime rows")


if __name__ == "__main__":
    main()
