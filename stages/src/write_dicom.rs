//! `write_dicom`, a sink: writes each instance under the output folder at a path built from its
//! attributes, atomically (temporary file in the same folder, then rename), never over an input,
//! with a stated policy for names that already exist.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dcmflow_engine::journal::MoveLog;
use dcmflow_engine::{
    BuildContext, Item, ItemError, ItemKind, ItemWorker, Leftovers, Payload, Runtime, StageConfig,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::path_template::PathTemplate;

/// What to do when the output path is already taken (by an earlier run, or by another item of
/// this run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfExists {
    /// The item fails with a message naming the path; nothing is lost (default).
    #[default]
    Error,
    /// Replace a file left by an earlier run. Two items of one run never replace each other:
    /// the second fails.
    Overwrite,
    /// Keep the existing file and count the item as skipped.
    Skip,
    /// Keep every copy: of the files that want one name, the one whose bytes have the lowest
    /// SHA-256 keeps it and the others are named `name~<12 hex digits of their SHA-256>.ext`, so
    /// the names do not depend on which copy arrived first.
    Suffix,
}

/// Write instances as DICOM files under the output folder. Writes are atomic: a file appears
/// under its final name only when complete.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteDicomConfig {
    /// Output path relative to the output folder. `{Keyword}` or `{(gggg,eeee)}` is replaced by
    /// the attribute's value, sanitised to `[A-Za-z0-9._-]`; `{Keyword|fallback}` gives the text
    /// used when the attribute is absent. Default:
    /// `{StudyInstanceUID|no-study}/{SeriesInstanceUID|no-series}/{SOPInstanceUID}.dcm`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Policy when the path is taken: error (default), overwrite, skip or suffix.
    #[serde(default)]
    pub if_exists: IfExists,
}

fn default_path() -> String {
    "{StudyInstanceUID|no-study}/{SeriesInstanceUID|no-series}/{SOPInstanceUID}.dcm".into()
}

impl StageConfig for WriteDicomConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::Instance]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Output
    }
    fn needs_pixels(&self) -> bool {
        true
    }
    fn check(&self) -> Vec<String> {
        PathTemplate::parse(&self.path, &[])
            .err()
            .into_iter()
            .collect()
    }
    fn explain(&self) -> String {
        format!(
            "Instances were written as DICOM files named `{}`.",
            self.path
        )
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        let inputs = ctx
            .inputs
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        Ok(Runtime::PerItem(Arc::new(WriteDicom {
            template: PathTemplate::parse(&self.path, &[])?,
            if_exists: self.if_exists,
            out: Output::new(&ctx.output_dir, inputs, ctx.dry_run)?.journaled(ctx),
        })))
    }
}

/// The runtime of `write_dicom`.
pub struct WriteDicom {
    template: PathTemplate,
    if_exists: IfExists,
    out: Output,
}

impl ItemWorker for WriteDicom {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let inst = item.instance()?;
        let meta = output_meta(inst.obj.meta())?;
        let rel = self
            .template
            .render_with_meta(&inst.obj, Some(inst.obj.meta()), &[])
            .map_err(ItemError::failed)?;
        let written = self.out.write(&rel, self.if_exists, |w| {
            // The encoder's error hides the I/O error under it (a full disk would read "could
            // not print data set"): keep the first I/O error and report that.
            let mut tap = IoErrorTap {
                inner: w,
                first: None,
            };
            let written = (|| {
                std::io::Write::write_all(&mut tap, &[0u8; 128]).map_err(|e| e.to_string())?;
                std::io::Write::write_all(&mut tap, b"DICM").map_err(|e| e.to_string())?;
                meta.write(&mut tap).map_err(|e| e.to_string())?;
                inst.obj.write_dataset(&mut tap).map_err(|e| e.to_string())
            })();
            match written {
                Ok(()) => Ok(()),
                Err(e) => Err(tap.first.take().unwrap_or_else(|| {
                    std::io::Error::other(format!("cannot encode the DICOM file: {e}"))
                })),
            }
        })?;
        Ok(vec![item.with(Payload::Output(written))])
    }
}

/// A writer that remembers the first I/O error passed through it.
struct IoErrorTap<'a, W: std::io::Write> {
    inner: &'a mut W,
    first: Option<std::io::Error>,
}

impl<W: std::io::Write> IoErrorTap<'_, W> {
    fn keep<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        r.map_err(|e| {
            let copy = std::io::Error::new(e.kind(), e.to_string());
            if self.first.is_none() {
                self.first = Some(e);
            }
            copy
        })
    }
}

impl<W: std::io::Write> std::io::Write for IoErrorTap<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.keep(r)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.keep(r)
    }
}

/// Whether a UID value (trailing NUL or space padding allowed) is well formed: digits and dots,
/// 1 to 64 characters.
pub fn uid_is_valid(v: &str) -> bool {
    let v = v.trim_end_matches(['\0', ' ']);
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Implementation Class UID of dcmflow, written in the file meta group of every file it writes
/// (a 2.25 UUID-derived UID, PS3.5 B.2).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.89121194570894782568609849280443064792";

/// Implementation Version Name written with it (at most 16 characters).
pub fn implementation_version_name() -> String {
    let mut v = format!("DCMFLOW_{}", env!("CARGO_PKG_VERSION"));
    v.truncate(16);
    v
}

/// The file meta group a written file gets: the instance's, with dcmflow named as the
/// implementation that wrote it (the input's class UID and version name describe another
/// writer, and a damaged one may hold anything), checked to read back.
pub fn output_meta(
    meta: &dicom_object::FileMetaTable,
) -> Result<dicom_object::FileMetaTable, ItemError> {
    let mut meta = meta.clone();
    meta.implementation_class_uid = IMPLEMENTATION_CLASS_UID.to_string();
    meta.implementation_version_name = Some(implementation_version_name());
    meta.update_information_group_length();
    check_meta_uids(&meta)?;
    let mut bytes = b"DICM".to_vec();
    meta.write(&mut bytes)
        .map_err(|e| ItemError::failed(format!("cannot encode the file meta group: {e}")))?;
    dicom_object::FileMetaTable::from_reader(&bytes[..]).map_err(|e| {
        ItemError::failed(format!(
            "the file meta group would not read back ({e}); not written"
        ))
    })?;
    Ok(meta)
}

/// A file meta group whose UIDs DICOM readers (dicom-rs among them) refuse would make an
/// output nobody can open: such an instance fails here instead of being written.
pub fn check_meta_uids(meta: &dicom_object::FileMetaTable) -> Result<(), ItemError> {
    for (name, v) in [
        (
            "MediaStorageSOPClassUID",
            meta.media_storage_sop_class_uid(),
        ),
        (
            "MediaStorageSOPInstanceUID",
            meta.media_storage_sop_instance_uid(),
        ),
        ("TransferSyntaxUID", meta.transfer_syntax()),
    ] {
        if !uid_is_valid(v) {
            return Err(ItemError::failed(format!(
                "{name} in the file meta group is not a valid UID (only digits and dots, at most 64 characters); not written"
            )));
        }
    }
    Ok(())
}

/// Safe file output under one folder, shared by every sink: writes atomically (a temporary
/// file in the target folder, then a link or rename to the final name), never over an input,
/// and never lets two items of one run replace each other. It keeps no per-file state except,
/// under `overwrite`, an 8-byte hash per path written, so memory stays flat. Every file is
/// synced to disk before it gets its final name, so a name never points at a partial file.
///
/// On a resumed run, a file that a killed run left at a name without recording it (a
/// [`Leftovers`] entry) is taken as written when it holds exactly the bytes to be written;
/// otherwise the `if_exists` policy applies as usual.
pub struct Output {
    root: PathBuf,
    inputs: Vec<PathBuf>,
    written_hashes: Mutex<HashSet<u64>>,
    /// Folders this run has made or found (one `mkdir` per folder, not per file).
    folders: Mutex<HashSet<PathBuf>>,
    collisions: Mutex<()>,
    counter: AtomicU64,
    dry_run: bool,
    leftovers: Option<Arc<Leftovers>>,
    moves: Option<Arc<dyn MoveLog>>,
}

fn path_hash(p: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

impl Output {
    /// Output under `root` (which must exist), never at or under any of `inputs` (canonical).
    pub fn new(root: &Path, inputs: Vec<PathBuf>, dry_run: bool) -> Result<Output, String> {
        let root = if dry_run {
            root.to_path_buf()
        } else {
            std::fs::canonicalize(root)
                .map_err(|e| format!("output folder {}: {e}", root.display()))?
        };
        Ok(Output {
            root,
            inputs,
            written_hashes: Mutex::new(HashSet::new()),
            folders: Mutex::new(HashSet::new()),
            collisions: Mutex::new(()),
            counter: AtomicU64::new(0),
            dry_run,
            leftovers: None,
            moves: None,
        })
    }

    /// Join the run's journal: take files a killed run left unrecorded as written when their
    /// bytes are identical, and report files moved aside after they were handed on.
    pub fn journaled(mut self, ctx: &BuildContext) -> Output {
        self.leftovers = ctx.leftovers.clone();
        self.moves = ctx.moves.clone();
        self
    }

    /// Whether `target` is a leftover of an earlier run holding the bytes of `tmp` (then it is
    /// ours now).
    fn claim_leftover(&self, tmp: &Path, target: &Path) -> bool {
        self.leftovers
            .as_ref()
            .is_some_and(|l| l.claim(target, || same_bytes(tmp, target).unwrap_or(false)))
    }

    /// The output folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Write a file at `rel` with `fill`, atomically, following `policy` when the name is taken.
    /// Returns the final path; a skipped item is an error of kind Skipped.
    pub fn write(
        &self,
        rel: &Path,
        policy: IfExists,
        fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
    ) -> Result<PathBuf, ItemError> {
        let target = self.root.join(rel);
        if self.inputs.iter().any(|i| target.starts_with(i)) {
            return Err(ItemError::failed(format!(
                "output path {} would be inside an input; refusing to write",
                rel.display()
            )));
        }
        if self.dry_run {
            return Ok(target);
        }
        let dir = target.parent().unwrap_or(&self.root);
        let known = self
            .folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(dir);
        if !known {
            std::fs::create_dir_all(dir)
                .map_err(|e| ItemError::context(format!("cannot create {}", dir.display()), &e))?;
            self.folders
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(dir.to_path_buf());
        }
        let tmp = dir.join(format!(
            ".{}.{}-{}.dcmflow-tmp",
            target
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let filled = (|| {
            let f = std::fs::File::create(&tmp)?;
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
            fill(&mut w)?;
            // Complete before it has a name: a crash or a full disk never leaves a name on a
            // partial file. (The run flushes the file system once at its end, not per file.)
            w.into_inner().map_err(|e| e.into_error())?;
            Ok::<(), std::io::Error>(())
        })();
        if let Err(e) = filled {
            let _ = std::fs::remove_file(&tmp);
            return Err(ItemError::context(
                format!("cannot write {}", rel.display()),
                &e,
            ));
        }
        let placed = self.place(&tmp, rel, policy);
        let _ = std::fs::remove_file(&tmp);
        placed
    }

    /// Give the complete temporary file its final name.
    fn place(&self, tmp: &Path, rel: &Path, policy: IfExists) -> Result<PathBuf, ItemError> {
        if policy == IfExists::Overwrite {
            let target = self.root.join(rel);
            let fresh = self
                .written_hashes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(path_hash(&target));
            if !fresh {
                return Err(ItemError::failed(format!(
                    "output path {} is already written by another input of this run (set if_exists: suffix to keep both)",
                    rel.display()
                )));
            }
            return std::fs::rename(tmp, &target)
                .map(|_| target)
                .map_err(|e| ItemError::context(format!("cannot write {}", rel.display()), &e));
        }
        let target = self.root.join(rel);
        // A hard link fails when the name exists, so claiming a name is atomic.
        match link_no_replace(tmp, &target) {
            Ok(()) => Ok(target),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists
                && self.claim_leftover(tmp, &target) =>
            {
                Ok(target)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match policy {
                IfExists::Suffix => self.place_by_content(tmp, rel),
                IfExists::Skip => Err(ItemError::Skipped(format!("{} exists (if_exists: skip)", rel.display()))),
                _ => Err(ItemError::failed(format!(
                    "output path {} already exists, written by another input of this run or an earlier run \
                     (if_exists: error); set if_exists: suffix to keep both",
                    rel.display()
                ))),
            },
            Err(e) => Err(ItemError::context(format!("cannot write {}", rel.display()), &e)),
        }
    }

    /// Several different files want one name: the copy whose bytes hash lowest keeps it, every
    /// other copy is named by its own hash. Decided under a lock, so the outcome does not depend
    /// on arrival order or thread count.
    fn place_by_content(&self, tmp: &Path, rel: &Path) -> Result<PathBuf, ItemError> {
        let _guard = self.collisions.lock().unwrap_or_else(|p| p.into_inner());
        let io =
            |e: std::io::Error| ItemError::context(format!("cannot write {}", rel.display()), &e);
        let target = self.root.join(rel);
        let new_hash = file_sha256(tmp).map_err(io)?;
        for _ in 0..4 {
            let old_hash = match file_sha256(&target) {
                Ok(h) => h,
                Err(_) => match link_no_replace(tmp, &target) {
                    Ok(()) => return Ok(target),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(e)),
                },
            };
            if new_hash == old_hash {
                return self.place_identical(tmp, rel, &new_hash);
            }
            if new_hash < old_hash {
                // Move the present holder aside under its own hash, then take the name. When
                // identical copies of it are already aside, it joins them as the next number
                // (as it would have, had it arrived after them): no copy is lost, and the tree
                // does not depend on the order of arrival.
                let first = hashed_name(rel, &old_hash);
                let aside = (1u32..)
                    .map(|n| {
                        self.root.join(if n == 1 {
                            first.clone()
                        } else {
                            hashed_name(&first, &format!("{n}"))
                        })
                    })
                    .find(|p| !p.exists())
                    .expect("a free name");
                let size = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
                std::fs::rename(&target, &aside).map_err(io)?;
                if let Some(l) = &self.leftovers {
                    l.moved(&target, Some(&aside));
                }
                // The holder's bytes now live at `aside` (an identical copy, when it was there).
                if let Some(m) = &self.moves {
                    m.moved(&target, &aside, size);
                }
                match link_no_replace(tmp, &target) {
                    Ok(()) => return Ok(target),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(e)),
                }
            }
            let mine = self.root.join(hashed_name(rel, &new_hash));
            return match link_no_replace(tmp, &mine) {
                Ok(()) => Ok(mine),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && self.claim_leftover(tmp, &mine) =>
                {
                    Ok(mine)
                }
                // A leftover named by our hash without our bytes is damaged (cut short by a
                // crash outside dcmflow, or by hand): ours replaces it.
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && self.leftovers.as_ref().is_some_and(|l| l.take(&mine)) =>
                {
                    std::fs::rename(tmp, &mine).map_err(io)?;
                    Ok(mine)
                }
                // The same bytes are already there under that name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    self.place_identical(tmp, rel, &new_hash)
                }
                Err(e) => Err(io(e)),
            };
        }
        Err(ItemError::failed(format!(
            "output path {} kept changing while it was being claimed",
            rel.display()
        )))
    }

    /// Byte-identical copies are interchangeable, so numbering them keeps the tree the same
    /// whatever the order: `name~<hash>.ext`, `name~<hash>~2.ext`, ...
    fn place_identical(&self, tmp: &Path, rel: &Path, hash: &str) -> Result<PathBuf, ItemError> {
        let first = hashed_name(rel, hash);
        for n in 1u32.. {
            let name = if n == 1 {
                first.clone()
            } else {
                hashed_name(&first, &format!("{n}"))
            };
            let target = self.root.join(&name);
            match link_no_replace(tmp, &target) {
                Ok(()) => return Ok(target),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && self.claim_leftover(tmp, &target) =>
                {
                    return Ok(target)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(ItemError::context(
                        format!("cannot write {}", rel.display()),
                        &e,
                    ))
                }
            }
        }
        unreachable!("u32 names run out only after four billion copies")
    }
}

/// Whether two files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (fa, fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ra, mut rb) = (
        std::io::BufReader::with_capacity(64 * 1024, fa),
        std::io::BufReader::with_capacity(64 * 1024, fb),
    );
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = ra.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        rb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

fn file_sha256(p: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Link `tmp` to `target` unless `target` exists. Where the file system has no hard links, fall
/// back to a check and a rename (not atomic against another writer, still never partial).
fn link_no_replace(tmp: &Path, target: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(tmp, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if target.exists() {
                return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
            }
            std::fs::copy(tmp, target).map(|_| ())
        }
    }
}

fn hashed_name(rel: &Path, hash: &str) -> PathBuf {
    let stem = rel
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag = &hash[..hash.len().min(12)];
    let name = match rel.extension() {
        Some(ext) => format!("{stem}~{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}~{tag}"),
    };
    rel.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_taken_in_one_run_follow_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let out = Output::new(dir.path(), vec![], false).unwrap();
        let rel = Path::new("a/b.dcm");
        let p1 = out
            .write(rel, IfExists::Error, |w| {
                std::io::Write::write_all(w, b"one")
            })
            .unwrap();
        assert_eq!(std::fs::read(&p1).unwrap(), b"one");
        let e = out
            .write(rel, IfExists::Error, |w| {
                std::io::Write::write_all(w, b"two")
            })
            .unwrap_err();
        assert!(e.reason().contains("already exists"), "{e}");
        let p2 = out
            .write(rel, IfExists::Suffix, |w| {
                std::io::Write::write_all(w, b"two")
            })
            .unwrap();
        assert!(p2.starts_with(dir.path().join("a")));
        let mut contents: Vec<Vec<u8>> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| std::fs::read(e.path()).unwrap())
            .collect();
        contents.sort();
        assert_eq!(
            contents,
            vec![b"one".to_vec(), b"two".to_vec()],
            "nothing lost"
        );
    }

    /// Found by the `deid_write` fuzz target: an input whose meta group carried an 18-byte
    /// ImplementationVersionName of stray bytes. Written as it was, the file did not read back;
    /// the output now names dcmflow as its writer and is checked to read back.
    #[test]
    fn written_files_name_dcmflow_as_their_implementation_and_read_back() {
        let mut meta = dicom_object::meta::FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("1.2.3.4")
            .transfer_syntax("1.2.840.10008.1.2.1")
            .implementation_class_uid("1.2.276.0.7230010.3.0.3.6.1")
            .build()
            .unwrap();
        meta.implementation_version_name = Some("OF \u{1}\u{2}\u{3}wK_361xxxxxx".into());
        let out = output_meta(&meta).unwrap();
        assert_eq!(out.implementation_class_uid(), IMPLEMENTATION_CLASS_UID);
        assert!(uid_is_valid(IMPLEMENTATION_CLASS_UID));
        let name = out.implementation_version_name.clone().unwrap();
        assert!(name.starts_with("DCMFLOW_") && name.len() <= 16, "{name}");
        let mut bytes = b"DICM".to_vec();
        out.write(&mut bytes).unwrap();
        let back = dicom_object::FileMetaTable::from_reader(&bytes[..]).unwrap();
        assert_eq!(back.media_storage_sop_instance_uid(), "1.2.3.4");
        // A meta group that cannot read back is refused, not written.
        meta.source_application_entity_title = Some("A".repeat(40));
        let e = output_meta(&meta).unwrap_err();
        assert!(e.reason().contains("would not read back"), "{e}");
    }

    #[test]
    fn byte_identical_copies_are_all_kept_under_content_names() {
        let dir = tempfile::tempdir().unwrap();
        let out = Output::new(dir.path(), vec![], false).unwrap();
        let mut paths: Vec<PathBuf> = (0..3)
            .map(|_| {
                out.write(Path::new("x.dcm"), IfExists::Suffix, |w| {
                    std::io::Write::write_all(w, b"same")
                })
                .unwrap()
            })
            .collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 3, "{paths:?}");
        for p in &paths {
            assert_eq!(std::fs::read(p).unwrap(), b"same");
        }
    }

    #[test]
    fn suffix_names_do_not_depend_on_arrival_order() {
        let layout = |order: &[&[u8]]| {
            let dir = tempfile::tempdir().unwrap();
            let out = Output::new(dir.path(), vec![], false).unwrap();
            for bytes in order {
                out.write(Path::new("s/x.dcm"), IfExists::Suffix, |w| {
                    std::io::Write::write_all(w, bytes)
                })
                .unwrap();
            }
            let mut names: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir.path())
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .map(|e| {
                    let rel = e
                        .path()
                        .strip_prefix(dir.path())
                        .unwrap()
                        .display()
                        .to_string();
                    (rel, std::fs::read(e.path()).unwrap())
                })
                .collect();
            names.sort();
            names
        };
        let (a, b, c): (&[u8], &[u8], &[u8]) = (b"alpha", b"beta", b"gamma");
        let first = layout(&[a, b, c]);
        assert_eq!(first.len(), 3);
        for order in [[b, a, c], [c, b, a], [c, a, b]] {
            assert_eq!(layout(&order), first);
        }
        // With identical copies among them, in every order: a holder moved aside joins its
        // identical copies already there instead of being dropped.
        let items = [a, b, b, c, c];
        let first = layout(&items);
        assert_eq!(first.len(), 5, "{first:?}");
        let mut orders = 0;
        for i in 0..5usize.pow(5) {
            let idx: Vec<usize> = (0..5).map(|k| i / 5usize.pow(k) % 5).collect();
            let mut seen = idx.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() == 5 {
                let order: Vec<&[u8]> = idx.iter().map(|&k| items[k]).collect();
                assert_eq!(layout(&order), first, "order {idx:?}");
                orders += 1;
            }
        }
        assert_eq!(orders, 120);
    }

    #[test]
    fn overwrite_replaces_earlier_runs_but_not_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let out = Output::new(dir.path(), vec![], false).unwrap();
        let rel = Path::new("o.dcm");
        out.write(rel, IfExists::Overwrite, |w| {
            std::io::Write::write_all(w, b"one")
        })
        .unwrap();
        let e = out
            .write(rel, IfExists::Overwrite, |w| {
                std::io::Write::write_all(w, b"two")
            })
            .unwrap_err();
        assert!(
            e.reason().contains("already written by another input"),
            "{e}"
        );
        assert_eq!(std::fs::read(dir.path().join(rel)).unwrap(), b"one");
    }

    #[test]
    fn files_from_an_earlier_run_follow_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.dcm"), b"old").unwrap();
        let out = Output::new(dir.path(), vec![], false).unwrap();
        assert!(out
            .write(Path::new("x.dcm"), IfExists::Error, |_| Ok(()))
            .is_err());
        assert!(matches!(
            out.write(Path::new("x.dcm"), IfExists::Skip, |_| Ok(())),
            Err(ItemError::Skipped(_))
        ));
        let out = Output::new(dir.path(), vec![], false).unwrap();
        out.write(Path::new("x.dcm"), IfExists::Overwrite, |w| {
            std::io::Write::write_all(w, b"new")
        })
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.dcm")).unwrap(), b"new");
    }

    #[test]
    fn a_failed_write_leaves_neither_partial_nor_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = Output::new(dir.path(), vec![], false).unwrap();
        let e = out
            .write(Path::new("s/f.dcm"), IfExists::Error, |w| {
                std::io::Write::write_all(w, b"half")?;
                Err(std::io::Error::other("disk full"))
            })
            .unwrap_err();
        assert!(e.reason().contains("disk full"));
        let left: Vec<_> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn never_writes_inside_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let out = Output::new(dir.path(), vec![root.join("in")], false).unwrap();
        assert!(out
            .write(Path::new("in/x.dcm"), IfExists::Error, |_| Ok(()))
            .is_err());
    }
}
