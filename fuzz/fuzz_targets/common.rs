//! Shared by the DICOM targets: the reader opens paths, so each input goes through one scratch
//! file per process (in /dev/shm when it exists, to keep the file system out of the loop).

use std::path::PathBuf;
use std::sync::OnceLock;

pub fn scratch_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("dcmflow-fuzz-{}.dcm", std::process::id()))
    })
}

/// Write `data` to the scratch file and open it the way `read_dicom` does.
pub fn open(
    data: &[u8],
    with_pixels: bool,
) -> Option<dicom_object::FileDicomObject<dicom_object::InMemDicomObject>> {
    let p = scratch_path();
    std::fs::write(p, data).expect("scratch file");
    dcmflow_stages::read_dicom::open_dicom(p, with_pixels).ok()
}
