//! The Jinja environment transformers renders chat templates in (`_compile_jinja_template` in
//! `transformers/utils/chat_template_utils.py`), reproduced on minijinja, so that a checkpoint's
//! template renders the official prompt byte for byte and not only the fixtures' templates:
//!
//! - `trim_blocks` and `lstrip_blocks` on: a block tag's own line leaves nothing behind;
//! - `{% break %}` / `{% continue %}` (jinja2.ext.loopcontrols);
//! - `{% generation %}…{% endgeneration %}` (transformers' AssistantTracker): renders its body;
//! - `raise_exception(message)`: the template's own error;
//! - `strftime_now(format)`: local time, as `datetime.now().strftime`;
//! - `tojson`: transformers' override, `json.dumps(x, ensure_ascii=False, indent=None,
//!   separators=None, sort_keys=False)`, not Jinja's HTML-escaping filter;
//! - printed values as Python's `str()` (`True`, `None`, `[1, 'a']`, `{'k': 'v'}`, `1.0`).
//!
//! Golden renderings by transformers: `fixtures/golden/chat_templates.json`
//! (`tools/make_template_goldens.py`), checked by `tests/chat_templates_match_official.rs`.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

/// Instructions a template may run per rendering: far above any real chat template over a long
/// conversation (the fixtures' template uses ~2k for a turn), low enough to stop in about a second.
pub const TEMPLATE_FUEL: u64 = 20_000_000;

/// A fresh environment configured as transformers configures its own.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Jinja2's filters and globals that minijinja keeps in its contrib crate (truncate,
    // striptags, wordcount, filesizeformat, cycler, joiner)
    minijinja_contrib::add_to_environment(&mut env);
    env.add_filter("center", |s: String, width: Option<usize>| {
        py_center(&s, width.unwrap_or(80))
    });
    env.add_filter("truncate", truncate);
    env.set_unknown_method_callback(|state, value, method, args| {
        match (method, value.as_str(), args) {
            ("center", Some(s), [w]) if value.kind() == ValueKind::String => {
                let width = usize::try_from(w.clone()).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "center() takes an integer width",
                    )
                })?;
                Ok(Value::from(py_center(s, width)))
            }
            _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
        }
    });
    // A template from a downloaded file must not run forever (nested huge loops).
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    // undefined prints nothing, everything else as Python's str()
    env.set_formatter(|out, _state, value| out.write_str(&py_str(value)).map_err(Error::from));
    env.add_function(
        "raise_exception",
        |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_function("strftime_now", |format: String| -> Result<String, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        strftime(&format, now.as_secs() as i64, now.subsec_micros(), false)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
    });
    env.add_filter("tojson", tojson);
    env
}

/// The template source rewritten where Jinja2 (Python) and minijinja read it differently, one
/// tag at a time: inside `{{ … }}` and `{% … %}`, a backslash before a line break, which Python's
/// string-literal rules drop together with the line break (`"…Paris.\⏎Your…"` in
/// Mistral-Small-3.1's template is one line); and transformers' `{% generation %}` /
/// `{% endgeneration %}` tags, which become an always-true `if` block with the same whitespace
/// control (`-`, `+`).
pub fn python_source(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    loop {
        let open = match (rest.find("{{"), rest.find("{%")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        out.push_str(&rest[..open]);
        let tag = &rest[open..];
        let statement = tag.starts_with("{%");
        let close_pat = if statement { "%}" } else { "}}" };
        let Some(close) = tag[2..].find(close_pat).map(|i| i + 2 + close_pat.len()) else {
            out.push_str(tag);
            return out;
        };
        let joined = join_continued_lines(&tag[..close]);
        match statement.then(|| generation_as_if(&joined)).flatten() {
            Some(rewritten) => out.push_str(&rewritten),
            None => out.push_str(&joined),
        }
        rest = &tag[close..];
    }
    out.push_str(rest);
    out
}

/// One tag with every `\` + line break removed (an escaped backslash `\\` stays).
fn join_continued_lines(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    let mut chars = tag.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('\n') => {
                chars.next();
            }
            Some('\r') => {
                chars.next();
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
            }
            Some(&next) => {
                out.push(c);
                out.push(next);
                chars.next();
            }
            None => out.push(c),
        }
    }
    out
}

/// `{% generation %}` → `{% if true %}`, `{%- endgeneration +%}` → `{%- endif +%}`; None for any
/// other statement.
fn generation_as_if(tag: &str) -> Option<String> {
    let inner = &tag[2..tag.len() - 2];
    let lead = inner.strip_prefix(['-', '+']).map_or("", |_| &inner[..1]);
    let body = &inner[lead.len()..];
    let trail = if body.ends_with(['-', '+']) {
        &body[body.len() - 1..]
    } else {
        ""
    };
    let word = match body[..body.len() - trail.len()].trim() {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return None,
    };
    Some(format!("{{%{lead} {word} {trail}%}}"))
}

/// Python's `str.center(width)` (and Jinja2's `center` filter): CPython puts the odd space of
/// padding on the left only when both the padding and the width are odd.
pub fn py_center(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if width <= n {
        return s.to_string();
    }
    let marg = width - n;
    let left = marg / 2 + (marg & width & 1);
    format!("{}{s}{}", " ".repeat(left), " ".repeat(marg - left))
}

/// Jinja2's `truncate(s, length=255, killwords=False, end='...', leeway=5)`, positional or by
/// name: a string within `length + leeway` characters is kept; otherwise it is cut to
/// `length - len(end)` characters, back to the last space unless `killwords`, and `end` appended.
fn truncate(
    s: String,
    args: minijinja::value::Rest<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        match kwargs.get::<Option<Value>>(name)? {
            Some(v) => Ok(Some(v)),
            None => Ok(args.get(i).cloned()),
        }
    };
    let bad = |what: &str| Error::new(ErrorKind::InvalidOperation, format!("truncate: {what}"));
    let length = match arg(0, "length")? {
        Some(v) => usize::try_from(v).map_err(|_| bad("length must be a non-negative integer"))?,
        None => 255,
    };
    let killwords = arg(1, "killwords")?.is_some_and(|v| v.is_true());
    let end = match arg(2, "end")? {
        Some(v) => v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad("end must be a string"))?,
        None => "...".to_string(),
    };
    let leeway = match arg(3, "leeway")? {
        Some(v) if !v.is_none() => {
            usize::try_from(v).map_err(|_| bad("leeway must be a non-negative integer"))?
        }
        _ => 5,
    };
    kwargs.assert_all_used()?;
    let chars: Vec<char> = s.chars().collect();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(bad("length is shorter than end"));
    }
    if chars.len() <= length + leeway {
        return Ok(s);
    }
    let head: String = chars[..length - end_len].iter().collect();
    if killwords {
        return Ok(head + &end);
    }
    let kept = head
        .rsplit_once(' ')
        .map_or(head.as_str(), |(a, _)| a)
        .to_string();
    Ok(kept + &end)
}

/// Python's `str(value)`: strings as they are, everything else as [`py_repr`].
pub fn py_str(v: &Value) -> String {
    match v.as_str() {
        Some(s) if v.kind() == ValueKind::String => s.to_string(),
        _ => py_repr(v),
    }
}

/// Python's `repr(value)` for the values a template can hold.
pub fn py_repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number => py_number(v),
        ValueKind::String => py_str_repr(v.as_str().unwrap_or("")),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| it.map(|x| py_repr(&x)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| {
                    it.map(|k| {
                        let val = v.get_item(&k).unwrap_or_default();
                        format!("{}: {}", py_repr(&k), py_repr(&val))
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => v.to_string(),
    }
}

fn py_number(v: &Value) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match f64::try_from(v.clone()) {
        Ok(f) => py_float(f),
        Err(_) => v.to_string(),
    }
}

/// Python's `repr(float)`: the shortest digits that read back, fixed notation for decimal
/// exponents -4..16 (always with a fractional part), else `d.ddde+XX`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7"
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!(
                "{sign}{digits}{}.0",
                "0".repeat(point as usize - digits.len())
            )
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{sign}{a}.{b}")
        }
    } else {
        let (a, b) = digits.split_at(1);
        let frac = if b.is_empty() {
            String::new()
        } else {
            format!(".{b}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{a}{frac}e{esign}{:02}", exp.abs())
    }
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`; backslash, the quote,
/// `\n`, `\r`, `\t` and other control characters escaped; printable non-ASCII kept.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: Value, kwargs: Kwargs) -> Result<String, Error> {
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let indent: Option<Value> = kwargs.get("indent")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(match v.as_str() {
            Some(s) if v.kind() == ValueKind::String => s.to_string(),
            _ => " ".repeat(v.as_i64().unwrap_or(0).max(0) as usize),
        }),
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() => {
            let a = v.get_item_by_index(0)?;
            let b = v.get_item_by_index(1)?;
            (py_str(&a), py_str(&b))
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let opts = JsonOpts {
        ensure_ascii: ensure_ascii.unwrap_or(false),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    json_dump(&value, &opts, 0, &mut out)?;
    Ok(out)
}

struct JsonOpts {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn json_dump(v: &Value, o: &JsonOpts, depth: usize, out: &mut String) -> Result<(), Error> {
    let open_close = |out: &mut String, items: Vec<String>, open: char, close: char| {
        if items.is_empty() {
            out.push(open);
            out.push(close);
            return;
        }
        out.push(open);
        match &o.indent {
            Some(ind) => {
                let inner = format!("\n{}", ind.repeat(depth + 1));
                out.push_str(&inner);
                out.push_str(&items.join(&format!("{}{inner}", o.item_sep)));
                out.push('\n');
                out.push_str(&ind.repeat(depth));
            }
            None => out.push_str(&items.join(&o.item_sep)),
        }
        out.push(close);
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&match f {
                    f if f.is_nan() => "NaN".to_string(),
                    f if f.is_infinite() && f > 0.0 => "Infinity".to_string(),
                    f if f.is_infinite() => "-Infinity".to_string(),
                    f => py_float(f),
                });
            }
        }
        ValueKind::String => json_str(v.as_str().unwrap_or(""), o.ensure_ascii, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for x in v.try_iter()? {
                let mut s = String::new();
                json_dump(&x, o, depth + 1, &mut s)?;
                items.push(s);
            }
            open_close(out, items, '[', ']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if o.sort_keys {
                keys.sort_by_key(py_str);
            }
            let mut items = Vec::new();
            for k in keys {
                let mut s = String::new();
                json_str(&py_str(&k), o.ensure_ascii, &mut s);
                s.push_str(&o.key_sep);
                json_dump(&v.get_item(&k)?, o, depth + 1, &mut s)?;
                items.push(s);
            }
            open_close(out, items, '{', '}');
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("Object of type {} is not JSON serializable", v.kind()),
            ))
        }
    }
    Ok(())
}

/// A JSON string as Python's json module writes it.
fn json_str(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `time.strftime(format)` at `secs` since the epoch (local time, or UTC), with what Python's
/// `datetime.strftime` does differently from C's on a naive datetime: `%f` is the microseconds,
/// `%z` and `%Z` are empty.
pub fn strftime(format: &str, secs: i64, micros: u32, utc: bool) -> Result<String, String> {
    // Python's own directives first; everything else goes to the C library, like CPython.
    let mut c_format = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            c_format.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => {
                let _ = write!(c_format, "{micros:06}");
            }
            Some('z') | Some('Z') => {}
            Some(d) => {
                c_format.push('%');
                c_format.push(d);
            }
            None => c_format.push('%'),
        }
    }
    let fmt = std::ffi::CString::new(c_format)
        .map_err(|_| "strftime format contains a NUL character".to_string())?;
    let t = secs as libc::time_t;
    // SAFETY: tm is plain data filled by gmtime_r/localtime_r; strftime writes at most buf.len()
    // bytes into buf and returns how many it wrote.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let ok = if utc {
            libc::gmtime_r(&t, &mut tm)
        } else {
            libc::localtime_r(&t, &mut tm)
        };
        if ok.is_null() {
            return Err(format!("strftime: time {secs} out of range"));
        }
        for size in [256usize, 4096, 65536] {
            let mut buf = vec![0u8; size];
            let n = libc::strftime(buf.as_mut_ptr().cast(), size, fmt.as_ptr(), &tm);
            if n > 0 || fmt.as_bytes().is_empty() {
                buf.truncate(n);
                return String::from_utf8(buf).map_err(|e| e.to_string());
            }
        }
    }
    // an empty expansion (e.g. a format of only %z) is not an error
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        for (f, want) in [
            (1.0, "1.0"),
            (2.5, "2.5"),
            (-3.0, "-3.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(py_float(f), want, "{f}");
        }
    }

    #[test]
    fn generation_tags_become_if_blocks_with_their_whitespace_control() {
        assert_eq!(
            python_source("a{% generation %}b{%- endgeneration -%}c{%+ generation+%}"),
            "a{% if true %}b{%- endif -%}c{%+ if true +%}"
        );
        assert_eq!(python_source("{% if x %}{{ y }}"), "{% if x %}{{ y }}");
        assert_eq!(python_source("unclosed {% tag"), "unclosed {% tag");
    }

    #[test]
    fn a_backslash_line_break_inside_a_tag_is_one_line_as_in_python() {
        assert_eq!(
            python_source("{{ \"a\\\nb\" }}x\\\ny{% set s = 'c\\\r\nd\\\\' %}"),
            "{{ \"ab\" }}x\\\ny{% set s = 'cd\\\\' %}"
        );
    }

    #[test]
    fn center_pads_as_cpython() {
        assert_eq!(py_center("abc", 6), " abc  ");
        assert_eq!(py_center("abc", 7), "  abc  ");
        assert_eq!(py_center("ab", 5), "  ab ");
        assert_eq!(py_center("abcdef", 3), "abcdef");
    }

    #[test]
    fn strings_repr_like_python() {
        assert_eq!(py_str_repr("a'b"), "\"a'b\"");
        assert_eq!(py_str_repr("a'b\""), "'a\\'b\"'");
        assert_eq!(py_str_repr("x\ny\t\u{1}ü"), "'x\\ny\\t\\x01ü'");
    }
}
