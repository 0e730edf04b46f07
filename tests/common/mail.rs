//! Reading the e-mails the tests receive: the decoded text/plain and text/html parts of a MIME
//! message, and its headers.

/// The value of header `name` (first occurrence, unfolded).
pub fn header(eml: &str, name: &str) -> Option<String> {
    let head = eml.split("\r\n\r\n").next().unwrap_or(eml);
    let mut out: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = out.as_mut()
            && (line.starts_with(' ') || line.starts_with('\t'))
        {
            v.push_str(line.trim_start());
            continue;
        }
        if out.is_some() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case(name)
        {
            out = Some(v.trim().to_owned());
        }
    }
    out
}

fn decode_qp(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if let Some(h) = text.get(i + 1..i + 3)
                && let Ok(v) = u8::from_str_radix(h, 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn decode_b64(text: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let Some(v) = T.iter().position(|&t| t == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The decoded body of the part whose Content-Type starts with `mime` (e.g. `text/plain`).
pub fn part(eml: &str, mime: &str) -> Option<String> {
    for chunk in eml.split("\r\n--") {
        let Some((head, body)) = chunk.split_once("\r\n\r\n") else {
            continue;
        };
        let head_l = head.to_ascii_lowercase();
        if !head_l.contains(&format!("content-type: {mime}")) {
            continue;
        }
        let bytes = if head_l.contains("content-transfer-encoding: quoted-printable") {
            decode_qp(body)
        } else if head_l.contains("content-transfer-encoding: base64") {
            decode_b64(body)
        } else {
            body.as_bytes().to_vec()
        };
        return Some(String::from_utf8_lossy(&bytes).replace("\r\n", "\n"));
    }
    None
}

/// The subjects of the e-mails the file channel wrote into `out` to the citizen for `kind`, in
/// the order of their file names.
pub fn subjects(out: &std::path::Path, kind: &str) -> Vec<String> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(out)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(&format!("-{kind}-citizen")) && n.ends_with(".eml"))
        })
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}
