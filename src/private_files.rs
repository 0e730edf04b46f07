//! Files and folders only the daemon's user may read: the SQLite database and its `-wal` and
//! `-shm` companions, the single-daemon lock, the file channel's messages, the attachments of
//! replies. They hold citizens' personal data, so their modes are set when they are made
//! (0600 files, 0700 folders), whatever the process's umask, and a file of ours that others can
//! read is narrowed with a warning in the log.
//!
//! A folder that already exists is never changed (it may be shared: the working directory,
//! `/tmp`); only the folders Messo makes are 0700. On systems without Unix modes these are
//! plain creations.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The mode of every file Messo makes.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every folder Messo makes.
pub const DIR_MODE: u32 = 0o700;

/// Makes `dir` and its missing parents, each 0700 whatever the umask. Folders that exist are
/// left as they are.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    match b.create(dir) {
        Ok(()) => set_mode(dir, DIR_MODE),
        // Made by someone else in between: theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` for writing, created 0600 (or emptied when it exists, as `File::create`).
/// A file that existed keeps being ours only: its mode is narrowed too.
pub fn create_file(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    let f = o.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(f)
}

/// Creates `path` empty and 0600 when it does not exist (an existing file is not touched).
pub fn create_empty_if_missing(path: &Path) -> io::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    match o.open(path) {
        Ok(f) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
            }
            drop(f);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Narrows a file of ours that its group or others may read or write to 0600, with a warning
/// naming it. A missing file is fine.
pub fn narrow_file(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            return Ok(());
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "a file with personal data was readable by others; narrowed to 0600"
            );
            set_mode(path, FILE_MODE)?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_private_and_open_files_narrowed() {
        let root = std::env::temp_dir().join(format!("messo-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let deep = root.join("a/b/c");
        create_dir_all(&deep).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&root.join(d)), 0o700, "{d}");
        }
        assert_eq!(mode(&root), 0o755, "a folder that existed is left alone");
        let f = deep.join("x");
        drop(create_file(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
        let g = deep.join("g");
        std::fs::write(&g, b"x").unwrap();
        std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o644)).unwrap();
        narrow_file(&g).unwrap();
        assert_eq!(mode(&g), 0o600);
        narrow_file(&deep.join("missing")).unwrap();
        let e = deep.join("e");
        create_empty_if_missing(&e).unwrap();
        assert_eq!(mode(&e), 0o600);
        std::fs::write(&e, b"kept").unwrap();
        create_empty_if_missing(&e).unwrap();
        assert_eq!(std::fs::read(&e).unwrap(), b"kept");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
