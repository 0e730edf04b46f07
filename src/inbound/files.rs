//! Attachments of e-mail replies: kept in a folder under their SHA-256 (never under the name
//! the sender chose, so nothing in the folder is ever found by a name, executed or rendered),
//! readable by the daemon's user only, and not kept at all above the size limit.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::AttachmentMeta;

/// Saves one attachment and describes it. Over `max_bytes` the file is not written: its name,
/// size and hash are still recorded with the reply.
pub async fn save(
    dir: &Path,
    max_bytes: u64,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> std::io::Result<AttachmentMeta> {
    let sha = hex::encode(Sha256::digest(bytes));
    let size = bytes.len() as u64;
    let stored_as = if size <= max_bytes {
        let (dir, name, bytes) = (dir.to_owned(), sha.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || keep(&dir, &name, &bytes))
            .await
            .map_err(std::io::Error::other)??;
        Some(sha.clone())
    } else {
        None
    };
    Ok(AttachmentMeta {
        name: clean_name(name),
        content_type: content_type.chars().take(100).collect(),
        size,
        sha256: sha,
        stored_as,
    })
}

/// Writes `bytes` as `dir/name` unless it is there: a 0600 file in a 0700 folder, whatever the
/// umask, written under a temporary name and renamed, so a reader never sees half a file. A
/// file already there (the same content) is narrowed to 0600 if others could read it.
fn keep(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    crate::private_files::create_dir_all(dir)?;
    let path = dir.join(name);
    if path.exists() {
        return crate::private_files::narrow_file(&path);
    }
    let tmp = dir.join(format!(".{name}.part"));
    let mut f = crate::private_files::create_file(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// A file name as it may be shown to the office: no path, no control characters, at most 120
/// characters.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim_start_matches('.')
        .trim()
        .chars()
        .take(120)
        .collect();
    if cleaned.is_empty() {
        "allegato".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_paths() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\x\\doc.pdf"), "doc.pdf");
        assert_eq!(clean_name(".bashrc"), "bashrc");
        assert_eq!(clean_name(""), "allegato");
        assert_eq!(clean_name("a\u{0}b.pdf"), "ab.pdf");
    }

    #[tokio::test]
    async fn files_are_kept_by_hash_and_big_ones_are_not() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("unit-attachments");
        let _ = std::fs::remove_dir_all(&dir);
        let small = save(&dir, 10, "../x.pdf", "application/pdf", b"0123456789")
            .await
            .unwrap();
        assert_eq!(small.name, "x.pdf");
        assert_eq!(small.size, 10);
        let stored = small.stored_as.clone().unwrap();
        assert_eq!(std::fs::read(dir.join(&stored)).unwrap(), b"0123456789");
        let big = save(
            &dir,
            10,
            "big.bin",
            "application/octet-stream",
            b"01234567890",
        )
        .await
        .unwrap();
        assert_eq!(big.stored_as, None);
        assert!(!dir.join(&big.sha256).exists());
    }
}
