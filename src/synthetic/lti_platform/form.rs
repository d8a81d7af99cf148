//! The auto-submitting form a platform answers its authorization endpoint with (OIDC form post
//! response mode), and the reading of one back for tests that go through the HTML.

/// An HTML page whose script posts `fields` to `action` as soon as it loads; without
/// JavaScript a button does it.
pub(super) fn auto_submit_form(action: &str, fields: &[(&str, &str)]) -> String {
    let mut html = String::with_capacity(2048);
    html.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Launching…</title></head>\n",
    );
    html.push_str("<body onload=\"document.forms[0].submit()\">\n");
    html.push_str(&format!(
        "<form method=\"post\" action=\"{}\" enctype=\"application/x-www-form-urlencoded\">\n",
        escape(action)
    ));
    for (name, value) in fields {
        html.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        ));
    }
    html.push_str(
        "<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n</body></html>\n",
    );
    html
}

/// `(name, value)` of each hidden input of an auto-submit form, in document order, entities
/// decoded. Reads the form this platform writes (double-quoted attributes), not any HTML.
pub fn form_fields(html: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<input") {
        let tag_and_after = &rest[start..];
        let end = tag_and_after.find('>').unwrap_or(tag_and_after.len());
        let tag = &tag_and_after[..end];
        if attribute(tag, "type").as_deref() == Some("hidden") {
            if let Some(name) = attribute(tag, "name") {
                fields.push((name, attribute(tag, "value").unwrap_or_default()));
            }
        }
        rest = &tag_and_after[end..];
    }
    fields
}

/// The `action` of the first form: where the browser would post the fields.
pub fn form_action(html: &str) -> Option<String> {
    let start = html.find("<form")?;
    let tag = &html[start..];
    attribute(&tag[..tag.find('>')?], "action")
}

/// The decoded value of `name="…"` in a tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// Escapes text for a double-quoted attribute or element content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`]; `&amp;` last so `&amp;lt;` stays `&lt;`.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
