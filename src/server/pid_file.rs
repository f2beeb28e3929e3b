//! `server.pid_file`: the serving process's pid, for `ferry reload` and scripts (nginx's
//! `pid`). Written whole or not at all (a temporary file renamed over the name), and removed
//! at exit only while it still holds this process's pid: after an upgrade it holds the new
//! process's, which the old one must leave alone.

use std::io;
use std::path::{Path, PathBuf};

/// The written pid file; removed when dropped, if it is still ours.
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes this process's pid to `path`.
    pub fn write(path: &Path) -> io::Result<PidFile> {
        let pid = std::process::id();
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(".{pid}.tmp"));
        let temp = PathBuf::from(temp);
        std::fs::write(&temp, format!("{pid}\n"))?;
        if let Err(err) = std::fs::rename(&temp, path) {
            let _ = std::fs::remove_file(&temp);
            return Err(err);
        }
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read(&self.path).ok() == Some(self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The pid in a pid file.
pub fn read(path: &Path) -> io::Result<u32> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a pid: {:?}", text.trim()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed_only_while_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.pid");
        let file = PidFile::write(&path).unwrap();
        assert_eq!(read(&path).unwrap(), std::process::id());
        drop(file);
        assert!(!path.exists(), "removed at exit");

        let file = PidFile::write(&path).unwrap();
        // Another process (the new one after an upgrade) wrote its pid over it.
        std::fs::write(&path, "1\n").unwrap();
        drop(file);
        assert_eq!(
            read(&path).unwrap(),
            1,
            "someone else's pid file is left alone"
        );
        std::fs::write(&path, "ferry\n").unwrap();
        assert_eq!(read(&path).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
