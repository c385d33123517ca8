//! A checkpoint's chat template renders what transformers renders, for the Jinja features real
//! templates use beyond the fixtures' own: trim_blocks / lstrip_blocks, loop controls, the
//! `{% generation %}` tag, `raise_exception`, transformers' `tojson`, namespaces, Python string
//! methods, dict order and printed values. Goldens: `fixtures/golden/chat_templates.json`, written
//! by `tools/make_template_goldens.py` with transformers' own `render_jinja_template`.

use artemis_gguf::chat::{ChatTemplate, Message};
use artemis_gguf::jinja;

#[derive(serde::Deserialize)]
struct Doc {
    cases: Vec<Case>,
    strftime: Vec<Strftime>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    template: String,
    messages: Vec<Msg>,
    add_generation_prompt: bool,
    bos_token: String,
    eos_token: String,
    rendered: Option<String>,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct Msg {
    role: String,
    content: Option<String>,
    /// Any other fields (`name`, `reasoning_content`, …).
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Strftime {
    format: String,
    timestamp: i64,
    rendered: String,
}

fn golden() -> Doc {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/golden/chat_templates.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_golden_template_renders_byte_for_byte_as_transformers() {
    let doc = golden();
    assert!(doc.cases.len() >= 15, "{} cases", doc.cases.len());
    let mut failures = Vec::new();
    for c in &doc.cases {
        let t = ChatTemplate::new(&c.template, &c.bos_token, &c.eos_token, &c.name)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        // the golden messages have string content, as an OpenAI client sends it
        let messages: Vec<Message> = c
            .messages
            .iter()
            .map(|m| {
                let mut msg = Message::text(&m.role, m.content.as_deref().unwrap_or(""));
                if m.content.is_none() {
                    msg.parts.clear(); // `"content": null`
                }
                msg.fields = m.fields.clone().into_iter().collect();
                msg
            })
            .collect();
        let got = t.render(&messages, c.add_generation_prompt, None);
        match (&c.rendered, &c.error, got) {
            (Some(want), _, Ok(got)) if &got == want => {}
            (Some(want), _, Ok(got)) => {
                failures.push(format!("{}:\n  want {want:?}\n  got  {got:?}", c.name))
            }
            (Some(_), _, Err(e)) => failures.push(format!("{}: error {e}", c.name)),
            (None, Some(want), Err(e)) if e.to_string().contains(want.as_str()) => {}
            (None, Some(want), other) => failures.push(format!(
                "{}: want the template's error {want:?}, got {other:?}",
                c.name
            )),
            (None, None, _) => panic!("{}: golden without rendered or error", c.name),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn strftime_now_formats_as_python_datetime() {
    let doc = golden();
    assert!(doc.strftime.len() >= 20);
    for r in &doc.strftime {
        let got = jinja::strftime(&r.format, r.timestamp, 0, true).unwrap();
        assert_eq!(got, r.rendered, "{} at {}", r.format, r.timestamp);
    }
    // and the template function uses today's date (local time)
    let t = ChatTemplate::new("{{ strftime_now('%Y') }}", "", "", "t").unwrap();
    let year: i32 = t.render(&[], false, None).unwrap().parse().unwrap();
    assert!((2024..3000).contains(&year), "{year}");
}

#[test]
fn string_and_part_content_reach_the_template_as_given() {
    let t = ChatTemplate::new(
        "{% for m in messages %}{% if m.content is string %}S:{{ m.content }}{% else %}L:{{ m.content | length }}{% endif %};{% endfor %}",
        "",
        "",
        "t",
    )
    .unwrap();
    let got = t
        .render(
            &[
                Message::text("user", "hi"),
                Message {
                    plain: false,
                    ..Message::text("user", "hi")
                },
                Message::user(2, "x"),
                Message::user(0, "y"),
            ],
            false,
            None,
        )
        .unwrap();
    assert_eq!(got, "S:hi;L:1;L:3;S:y;");
}

/// artemis-chat's text-only turns are plain strings, as `apply_chat_template` callers write them:
/// a plain decoder's template that only reads strings (Mistral's `'[INST] ' + content`) renders
/// them instead of failing on, or printing, a list of parts.
#[test]
fn a_text_only_turn_reaches_a_strings_only_template_as_a_string() {
    let t = ChatTemplate::new(
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}",
        "<s>",
        "</s>",
        "t",
    )
    .unwrap();
    let got = t
        .render(
            &[
                Message::user(0, "hi"),
                Message::text("assistant", "hello"),
                Message::user(0, "again"),
            ],
            true,
            None,
        )
        .unwrap();
    assert_eq!(got, "<s>[INST] hi [/INST]hello</s>[INST] again [/INST]");
}

/// `chat_template_kwargs` reach the template as `apply_chat_template(**kwargs)` passes them: any
/// name, any JSON value, overriding a special token of the same name; the renderer's own
/// variables cannot be replaced.
#[test]
fn template_kwargs_become_variables_and_override_special_tokens() {
    let t = ChatTemplate::new(
        "{{ bos_token }}|{{ custom }}|{{ enable_thinking }}|{{ messages | length }}|{{ tools }}",
        "<s>",
        "</s>",
        "t",
    )
    .unwrap();
    let kwargs = serde_json::json!({
        "bos_token": "X", "custom": [1, "a"], "enable_thinking": false,
        "messages": [], "tools": "T"
    });
    let got = t
        .render_with(
            &[Message::user(0, "hi")],
            false,
            kwargs.as_object().unwrap(),
        )
        .unwrap();
    assert_eq!(got, "X|[1, 'a']|False|1|None");
}
