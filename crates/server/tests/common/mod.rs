//! Set-up shared by the server's integration tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rnfs_server::config::Limits;
use rnfs_server::Embedded;
use rnfs_storage::handle::HandleKey;
use rnfs_storage::local::LocalFs;

/// An embedded server with `limits` exporting a fresh directory as `/export` (fsid 7), in which
/// any user may create, holding one file `f` ("hello") any user may write. The directory lives
/// as long as the returned `TempDir`.
pub fn embedded_export(limits: Limits) -> (tempfile::TempDir, Embedded) {
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("export");
    std::fs::create_dir(&export_dir).unwrap();
    std::fs::write(export_dir.join("f"), b"hello").unwrap();
    for (path, mode) in [(&export_dir, 0o777), (&export_dir.join("f"), 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let key = HandleKey::random().unwrap();
    let fs = Arc::new(LocalFs::new(7, &export_dir, key).unwrap());
    let server = Embedded::start(
        fs,
        7,
        "/export",
        export_dir,
        limits,
        dir.path().join("state"),
    )
    .unwrap();
    (dir, server)
}
