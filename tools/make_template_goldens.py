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
    ("undefined_values", CHAT[:1], False,
     "[{{ missing }}][{% if missing is defined %}d{% else %}u{% endif %}][{{ messages[0].missing }}]"
     "[{{ messages[0].get('missing', 'dflt') }}][{{ messages[0].missing | default('D') }}]"
     "[{% if messages[0].missing %}t{% else %}f{% endif %}][{{ missing | length if missing is defined else 0 }}]"),
]

STRFTIME_FORMATS = ["%Y-%m-%d", "%d %b %Y", "%B %d, %Y", "%A %H:%M:%S", "%a %y %j %p %I", "%e|%%|%m/%d"]
STRFTIME_TIMES = [0, 1721995509, 1764547200 - 1, 2000000000]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    cases = []
    for name, messages, add_gen, template in CASES:
        case = dict(name=name, template=template, messages=messages, add_generation_prompt=add_gen,
                    bos_token=BOS, eos_token=EOS)
        try:
            rendered = render_jinja_template(
                conversations=[messages], chat_template=template, add_generation_prompt=add_gen,
                bos_token=BOS, eos_token=EOS)
            # transformers 5 returns (rendered list, generation indices)
            if isinstance(rendered, tuple):
                rendered = rendered[0]
            case["rendered"] = rendered[0]
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        cases.append(case)
        print(f"{name:36s} {'error: ' + case['error'] if 'error' in case else repr(case['rendered'][:70])}")
    strf = [dict(format=f, timestamp=t, rendered=datetime.fromtimestamp(t, timezone.utc).strftime(f))
            for f in STRFTIME_FORMATS for t in STRFTIME_TIMES]
    doc = {
        "what": "transformers.utils.chat_template_utils.render_jinja_template(conversations=[messages], "
                "chat_template=template, add_generation_prompt=..., bos_token=..., eos_token=...)",
        "versions": {"transformers": transformers.__version__, "jinja2": jinja2.__version__},
        "cases": cases,
        "strftime": strf,
    }
    path = out / "golden" / "chat_templates.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"{path}: {len(cases)} cases, {len(strf)} strftime rows")


if __name__ == "__main__":
    main()
