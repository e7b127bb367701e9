//! Reading small S3 replies (the text of an XML element), and cutting the
//! query string, where a signed URL keeps its secrets, out of any message.

/// The text of the first `<name>` element of a small XML reply.
pub fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `text` with every URL query string cut: presigned URLs carry the
/// signature, the key id and the session token there.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('?') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == ')')
            .unwrap_or(tail.len());
        out.push_str("?…");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_cut() {
        let s = "error for http://h/b/k?X-Amz-Signature=abc&X-Amz-Security-Token=tok: bad";
        assert_eq!(redact(s), "error for http://h/b/k?… bad");
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(
            redact("(http://h/x?a=1) and more"),
            "(http://h/x?…) and more"
        );
    }

    #[test]
    fn xml_tags_are_read() {
        let xml = "<Error><Code>SlowDown</Code><Key>a&amp;b</Key><Key>c</Key></Error>";
        assert_eq!(tag(xml, "Code").as_deref(), Some("SlowDown"));
        assert_eq!(tag(xml, "Key").as_deref(), Some("a&b"));
        assert_eq!(tag(xml, "Nope"), None);
    }
}
