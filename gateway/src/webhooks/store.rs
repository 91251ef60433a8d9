//! The webhooks file: the format of `--webhooks FILE` and of what the
//! gateway keeps on the durable engine (`{data-dir}/webhooks.json`), one
//! JSON object:
//!
//! ```json
//! {"webhooks": {"ui-backend": {"url": "http://127.0.0.1:3000/hooks",
//!   "topics": ["ui.>"], "secret": "whsec_…", "retry": {"initial": "1s"}}}}
//! ```
//!
//! Each value is a `PUT /v1/webhooks/{name}` body. The kept file holds
//! secrets, so it is written owner-only, and replaced atomically (a write
//! to a temporary file, fsync, rename, fsync of the directory) so a crash
//! leaves the old file or the new one, never half of one.

use super::config::WebhookSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "webhooks.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    pub webhooks: BTreeMap<String, WebhookSpec>,
}

/// Reads a webhooks file; a missing file is an empty one when `optional`.
pub fn read(path: &Path, optional: bool) -> Result<WebhooksFile, String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(WebhooksFile::default());
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where the webhooks are kept across restarts.
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(dir: &Path) -> FileStore {
        FileStore {
            path: dir.join(FILE_NAME),
        }
    }

    pub fn load(&self) -> Result<WebhooksFile, String> {
        read(&self.path, true)
    }

    pub fn save(&self, file: &WebhooksFile) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}
