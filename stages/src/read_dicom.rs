//! `read_dicom`, the source stage: enumerates the run's `--input` paths (files, folders walked
//! recursively, globs, DICOMDIR file-sets) and parses each file into an instance. It recognises
//! DICOM with and without the 128-byte preamble and file meta group; files that are not DICOM are
//! counted and skipped, not errors. Pixel data is read only when a later stage needs it.

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dcmflow_engine::{
    BuildContext, Instance, Item, ItemError, ItemKind, Mode, Payload, Runtime, SourceStamp,
    SourceWorker, StageConfig,
};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use globset::{Glob, GlobSet, GlobSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

/// Read DICOM files from the run's inputs: files, folders (walked recursively), glob patterns
/// and DICOMDIR file-sets. Files that are not DICOM are counted as skipped, not errors.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadDicomConfig {
    /// Walk sub-folders of folder inputs. Default: true.
    #[serde(default = "yes")]
    pub recursive: bool,
    /// Follow symbolic links while walking folders (loops are detected and reported). Links
    /// not followed, FIFOs, sockets and devices are listed as skipped in `run.json`.
    /// Default: false.
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Glob patterns (relative to a folder input, e.g. `**/*.dcm`); when given, only matching
    /// files are read. Default: every file.
    #[serde(default)]
    pub include: Vec<String>,
    /// Glob patterns of files to leave out (e.g. `**/.*`). Default: none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Largest file to read, in MiB; larger files fail with a message instead of filling memory.
    /// Default: 4096.
    #[serde(default = "default_max_mib")]
    pub max_file_mib: u64,
}

fn yes() -> bool {
    true
}
fn default_max_mib() -> u64 {
    4096
}

fn globset(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("bad glob \"{p}\": {e}"))?);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

impl StageConfig for ReadDicomConfig {
    fn accepts(&self) -> &'static [ItemKind] {
        &[]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Instance
    }
    fn mode(&self) -> Mode {
        Mode::Source
    }
    fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        for set in [&self.include, &self.exclude] {
            if let Err(e) = globset(set) {
                out.push(e);
            }
        }
        if self.max_file_mib == 0 {
            out.push("max_file_mib must be at least 1".into());
        }
        out
    }
    fn explain(&self) -> String {
        "DICOM files were read from the input folders (non-DICOM files skipped).".into()
    }
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::Source(Arc::new(ReadDicom {
            cfg: self.clone(),
            include: globset(&self.include)?,
            exclude: globset(&self.exclude)?,
            with_pixels: ctx.pixels_needed_downstream,
        })))
    }
}

/// The runtime of `read_dicom`.
pub struct ReadDicom {
    cfg: ReadDicomConfig,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    with_pixels: bool,
}

/// Why a path that is neither a regular file nor a folder is not read.
fn not_regular(in_folder_walk: bool) -> String {
    if in_folder_walk {
        "not a regular file (a symbolic link not followed, since read_dicom follow_symlinks is false, or a FIFO, socket or device); not read".into()
    } else {
        "not a regular file or folder (a FIFO, socket or device); not read".into()
    }
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// What the walk found: a file to read, or a problem with one input.
type Found = Result<PathBuf, (PathBuf, ItemError)>;

impl ReadDicom {
    fn wanted(&self, rel: &Path) -> bool {
        if let Some(inc) = &self.include {
            if !inc.is_match(rel) {
                return false;
            }
        }
        if let Some(exc) = &self.exclude {
            if exc.is_match(rel) {
                return false;
            }
        }
        true
    }

    /// Walk one folder in file-name order; `f` returns false to stop.
    fn walk(
        &self,
        root: &Path,
        filter: Option<&GlobSet>,
        f: &mut dyn FnMut(Found) -> bool,
    ) -> bool {
        let mut walker = walkdir::WalkDir::new(root)
            .follow_links(self.cfg.follow_symlinks)
            .sort_by_file_name();
        if !self.cfg.recursive {
            walker = walker.max_depth(1);
        }
        for entry in walker {
            let go_on = match entry {
                Ok(e) if e.file_type().is_file() => {
                    let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                    let matched = filter.is_none_or(|g| g.is_match(e.path()));
                    if matched && self.wanted(rel) {
                        f(Ok(e.into_path()))
                    } else {
                        true
                    }
                }
                Ok(e) if e.file_type().is_dir() => true,
                // Links not followed, FIFOs, sockets, devices: named in the report, never
                // opened (a FIFO would block the reader).
                Ok(e) => {
                    let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                    let matched = filter.is_none_or(|g| g.is_match(e.path()));
                    if matched && self.wanted(rel) {
                        f(Err((e.into_path(), ItemError::Skipped(not_regular(true)))))
                    } else {
                        true
                    }
                }
                Err(err) => {
                    let path = err
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.to_path_buf());
                    let what = if err.loop_ancestor().is_some() {
                        "symbolic link loop; not followed".to_string()
                    } else {
                        format!(
                            "cannot read: {}",
                            err.io_error()
                                .map(|e| e.to_string())
                                .unwrap_or_else(|| err.to_string())
                        )
                    };
                    f(Err((path, ItemError::failed(what))))
                }
            };
            if !go_on {
                return false;
            }
        }
        true
    }

    /// Visit every unit of work of the inputs, in a stable order.
    fn visit(&self, inputs: &[PathBuf], f: &mut dyn FnMut(Found) -> bool) {
        for input in inputs {
            let text = input.to_string_lossy();
            let go_on = if input.is_dir() {
                self.walk(input, None, f)
            } else if input.is_file() {
                if is_dicomdir_name(input) {
                    match dicomdir_files(input) {
                        Ok(files) => files.into_iter().all(|p| f(Ok(p))),
                        Err(e) => f(Err((input.clone(), e))),
                    }
                } else {
                    f(Ok(input.clone()))
                }
            } else if input.exists() {
                f(Err((input.clone(), ItemError::Skipped(not_regular(false)))))
            } else if has_glob_chars(&text) {
                let base: PathBuf = input
                    .components()
                    .take_while(|c| !has_glob_chars(&c.as_os_str().to_string_lossy()))
                    .collect();
                let base = if base.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    base
                };
                match Glob::new(&text).and_then(|g| GlobSetBuilder::new().add(g).build()) {
                    Ok(set) => {
                        let mut any = false;
                        let go = self.walk(&base, Some(&set), &mut |x| {
                            any |= x.is_ok();
                            f(x)
                        });
                        if go && !any {
                            f(Err((
                                input.clone(),
                                ItemError::failed("the pattern matches no file"),
                            )))
                        } else {
                            go
                        }
                    }
                    Err(e) => f(Err((
                        input.clone(),
                        ItemError::failed(format!("bad glob pattern: {e}")),
                    ))),
                }
            } else {
                f(Err((
                    input.clone(),
                    ItemError::failed("input does not exist"),
                )))
            };
            if !go_on {
                return;
            }
        }
    }

    /// Visit with duplicates removed when inputs can overlap (several inputs, or a DICOMDIR
    /// next to its files). A single folder cannot yield a file twice, so then nothing is kept.
    fn visit_unique(&self, inputs: &[PathBuf], f: &mut dyn FnMut(Found) -> bool) {
        if inputs.len() == 1 && !is_dicomdir_name(&inputs[0]) {
            return self.visit(inputs, f);
        }
        use std::hash::{Hash, Hasher};
        let mut seen: HashSet<u64> = HashSet::new();
        self.visit(inputs, &mut |x| match x {
            Ok(p) => {
                let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
                let mut h = std::collections::hash_map::DefaultHasher::new();
                canon.hash(&mut h);
                if seen.insert(h.finish()) {
                    f(Ok(p))
                } else {
                    true
                }
            }
            Err(e) => f(Err(e)),
        })
    }
}

impl SourceWorker for ReadDicom {
    fn count(&self, inputs: &[PathBuf]) -> u64 {
        let mut n = 0;
        self.visit_unique(inputs, &mut |_| {
            n += 1;
            true
        });
        n
    }

    fn discover(&self, inputs: &[PathBuf], yield_one: &mut dyn FnMut(Found) -> bool) {
        self.visit_unique(inputs, yield_one)
    }

    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let path = item.source.as_path();
        let meta =
            std::fs::metadata(path).map_err(|e| ItemError::context("cannot read the file", &e))?;
        if !meta.is_file() {
            // Replaced since it was found (opening a FIFO would block the reader).
            return Err(ItemError::failed(
                "not a regular file any more (it changed since it was found); not read",
            ));
        }
        if meta.len() > self.cfg.max_file_mib * 1024 * 1024 {
            return Err(ItemError::failed(format!(
                "file is {} MiB, over the max_file_mib limit of {}",
                meta.len() / (1024 * 1024),
                self.cfg.max_file_mib
            )));
        }
        let (obj, stamp) = open_dicom_stamped(path, self.with_pixels)?;
        if obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            == "1.2.840.10008.1.3.10"
        {
            return Err(ItemError::Skipped(
                "DICOMDIR index (its referenced files are read on their own)".into(),
            ));
        }
        let mut instance = Instance::new(obj, self.with_pixels);
        instance.source_stamp = Some(stamp);
        Ok(vec![item.with(Payload::Instance(Arc::new(instance)))])
    }
}

fn is_dicomdir_name(p: &Path) -> bool {
    p.file_name()
        .map(|n| n.eq_ignore_ascii_case("DICOMDIR"))
        .unwrap_or(false)
}

/// The files a DICOMDIR references (ReferencedFileID of every directory record).
fn dicomdir_files(path: &Path) -> Result<Vec<PathBuf>, ItemError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| ItemError::context("cannot read the DICOMDIR", &e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    if let Some(records) = obj
        .get(tags::DIRECTORY_RECORD_SEQUENCE)
        .and_then(|e| e.items())
    {
        for rec in records {
            if let Some(parts) = rec
                .get(tags::REFERENCED_FILE_ID)
                .and_then(|e| e.to_multi_str().ok())
            {
                let mut p = base.to_path_buf();
                let mut ok = true;
                for part in parts.iter() {
                    let part = part.trim();
                    // A component may not climb out of the file-set.
                    if part.is_empty() || part == ".." || part.contains(['/', '\\']) {
                        ok = false;
                        break;
                    }
                    p.push(part);
                }
                if ok && p.is_file() {
                    out.push(p);
                }
            }
        }
    }
    Ok(out)
}

/// How a file starts.
enum Layout {
    /// 128-byte preamble and "DICM".
    Preamble,
    /// "DICM" at offset 0.
    MagicOnly,
    /// No magic: looks like a bare data set (explicit or implicit VR little endian, or explicit
    /// VR big endian).
    Bare { explicit: bool, big_endian: bool },
    /// Not DICOM.
    NotDicom,
}

fn sniff(head: &[u8]) -> Layout {
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Layout::Preamble;
    }
    if head.len() >= 4 && &head[..4] == b"DICM" {
        return Layout::MagicOnly;
    }
    if head.len() >= 8 {
        let vr = &head[4..6];
        let explicit = vr.iter().all(u8::is_ascii_uppercase)
            && dicom_core::VR::from_binary([vr[0], vr[1]]).is_some();
        // A bare data set starts with a low even group (0002, 0008, ...), in ascending order.
        let plausible =
            |g: u16, e: u16| matches!(g, 0x0002 | 0x0004 | 0x0008 | 0x0010) && e < 0x0100;
        if plausible(
            u16::from_le_bytes([head[0], head[1]]),
            u16::from_le_bytes([head[2], head[3]]),
        ) {
            return Layout::Bare {
                explicit,
                big_endian: false,
            };
        }
        if explicit
            && plausible(
                u16::from_be_bytes([head[0], head[1]]),
                u16::from_be_bytes([head[2], head[3]]),
            )
        {
            return Layout::Bare {
                explicit,
                big_endian: true,
            };
        }
    }
    Layout::NotDicom
}

/// Open a DICOM file, with fallbacks for files without a preamble or without a (complete) file
/// meta group. A data set holding an item or delimiter tag (group FFFE) as an element is
/// refused: the file is damaged, and written out again it would not read back.
pub fn open_dicom(
    path: &Path,
    with_pixels: bool,
) -> Result<FileDicomObject<InMemDicomObject>, ItemError> {
    open_checked(path, with_pixels, false).map(|(obj, _)| obj)
}

/// [`open_dicom`], and what the file was as it was read (size, modification time, a SHA-256 of
/// its header bytes), from the same open and the same bytes: [`ensure_pixels`] compares it.
pub fn open_dicom_stamped(
    path: &Path,
    with_pixels: bool,
) -> Result<(FileDicomObject<InMemDicomObject>, SourceStamp), ItemError> {
    let (obj, stamp) = open_checked(path, with_pixels, true)?;
    Ok((obj, stamp.expect("asked for")))
}

fn open_checked(
    path: &Path,
    with_pixels: bool,
    stamp: bool,
) -> Result<(FileDicomObject<InMemDicomObject>, Option<SourceStamp>), ItemError> {
    let (obj, stamp) = open_dicom_as_parsed(path, with_pixels, stamp)?;
    if let Some(t) = delimiter_element(&obj) {
        return Err(ItemError::failed(format!(
            "({:04X},{:04X}) stands where a data element should be: the file is damaged; refusing it",
            t.0, t.1
        )));
    }
    Ok((obj, stamp))
}

/// The first element tagged like an item or delimiter (group FFFE), at any depth.
fn delimiter_element(obj: &InMemDicomObject) -> Option<dicom_core::Tag> {
    obj.iter().find_map(|e| {
        let t = e.header().tag;
        if t.0 == 0xFFFE {
            return Some(t);
        }
        e.items()?.iter().find_map(delimiter_element)
    })
}

/// Files up to this size are read into memory once and sniffed, pre-scanned and parsed from
/// there (one open and one read instead of three); larger ones are streamed from the path.
const IN_MEMORY_MAX_BYTES: u64 = 8 << 20;

/// Where a file's bytes come from.
#[derive(Clone, Copy)]
enum Src<'a> {
    Path(&'a Path),
    Bytes(&'a [u8]),
}

/// How many header bytes the stamp hashes when the pre-scan finds no top-level Pixel Data in
/// the file's own bytes (no pixel data, a deflated data set, a meta group it cannot walk).
const STAMP_HEADER_MAX_BYTES: u64 = 1 << 20;

/// The stamp of a file from its metadata and its first `header_len` bytes.
fn stamp_of(meta: &std::fs::Metadata, header: &[u8]) -> SourceStamp {
    use sha2::Digest;
    SourceStamp {
        size: meta.len(),
        modified: meta.modified().ok(),
        header_sha256: sha2::Sha256::digest(header).into(),
    }
}

/// Of a file of `size` bytes whose top-level Pixel Data starts at `pixel_at`: how many leading
/// bytes the stamp hashes.
fn stamp_len(size: u64, pixel_at: Option<u64>) -> u64 {
    pixel_at.unwrap_or(STAMP_HEADER_MAX_BYTES).min(size)
}

fn open_dicom_as_parsed(
    path: &Path,
    with_pixels: bool,
    stamp: bool,
) -> Result<(FileDicomObject<InMemDicomObject>, Option<SourceStamp>), ItemError> {
    let mut f =
        std::fs::File::open(path).map_err(|e| ItemError::context("cannot open the file", &e))?;
    let meta = f.metadata().ok();
    let size = meta.as_ref().map(|m| m.len()).unwrap_or(u64::MAX);
    let stamp_err = || ItemError::failed("cannot read the file's size and modification time");
    if size <= IN_MEMORY_MAX_BYTES {
        let mut bytes = Vec::with_capacity(size as usize);
        f.read_to_end(&mut bytes)
            .map_err(|e| ItemError::context("cannot read the file", &e))?;
        let (obj, pixel_at) = parse_dicom(Src::Bytes(&bytes), with_pixels)?;
        let stamp = match (stamp, &meta) {
            (false, _) => None,
            (true, None) => return Err(stamp_err()),
            (true, Some(m)) => {
                let n = stamp_len(bytes.len() as u64, pixel_at) as usize;
                Some(stamp_of(m, &bytes[..n]))
            }
        };
        return Ok((obj, stamp));
    }
    let (obj, pixel_at) = parse_dicom(Src::Path(path), with_pixels)?;
    let stamp = match (stamp, &meta) {
        (false, _) => None,
        (true, None) => return Err(stamp_err()),
        (true, Some(m)) => {
            // Only the header region is read again (the pixel data is not).
            let mut header = Vec::new();
            f.seek(std::io::SeekFrom::Start(0))
                .and_then(|_| {
                    (&mut f)
                        .take(stamp_len(size, pixel_at))
                        .read_to_end(&mut header)
                })
                .map_err(|e| ItemError::context("cannot read the file", &e))?;
            Some(stamp_of(m, &header))
        }
    };
    Ok((obj, stamp))
}

/// Parse a file's bytes; also returns where its top-level Pixel Data element starts, when the
/// pre-scan saw one in the file's own bytes.
fn parse_dicom(
    src: Src<'_>,
    with_pixels: bool,
) -> Result<(FileDicomObject<InMemDicomObject>, Option<u64>), ItemError> {
    parse_repairing(src, with_pixels, Repaired::default())
}

/// The repairs made to a file's bytes (in memory) before parsing them. A repaired file's
/// Pixel Data offset is not returned (the stamp then hashes the first MiB of the file).
#[derive(Clone, Copy, Default)]
struct Repaired {
    /// The file meta group rebuilt the way dcmtk reads it ([`repaired_meta`]).
    meta: bool,
    /// UN sequences of undefined length rewritten as SQ ([`transcode_un_sequences`]).
    un_sequences: bool,
}

/// How much of a large file is read to check its file meta group.
const META_HEAD_BYTES: u64 = 64 << 10;

/// The whole file, read into memory.
fn all_bytes<'a>(src: Src<'a>, read: &'a mut Vec<u8>) -> Result<&'a [u8], ItemError> {
    match src {
        Src::Bytes(b) => Ok(b),
        Src::Path(path) => {
            *read =
                std::fs::read(path).map_err(|e| ItemError::context("cannot read the file", &e))?;
            Ok(&read[..])
        }
    }
}

fn parse_repairing(
    src: Src<'_>,
    with_pixels: bool,
    done: Repaired,
) -> Result<(FileDicomObject<InMemDicomObject>, Option<u64>), ItemError> {
    let mut head = [0u8; 132];
    let n = match src {
        Src::Bytes(b) => {
            let n = b.len().min(head.len());
            head[..n].copy_from_slice(&b[..n]);
            n
        }
        Src::Path(path) => {
            let mut f = std::fs::File::open(path)
                .map_err(|e| ItemError::context("cannot open the file", &e))?;
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(ItemError::context("cannot read the file", &e)),
                }
            }
            n
        }
    };
    let layout = sniff(&head[..n]);
    let meta_start = match layout {
        Layout::Preamble => Some(132),
        Layout::MagicOnly => Some(4),
        _ => None,
    };
    if let (false, Some(start)) = (done.meta, meta_start) {
        let fixed = match src {
            Src::Bytes(b) => repaired_meta(b, start),
            Src::Path(path) => {
                // The meta group is at the start: its first bytes tell whether it needs a
                // repair, and only then is the whole file read.
                let mut first = Vec::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(META_HEAD_BYTES).read_to_end(&mut first))
                    .map_err(|e| ItemError::context("cannot read the file", &e))?;
                match repaired_meta(&first, start) {
                    Some(_) => {
                        let mut read = Vec::new();
                        repaired_meta(all_bytes(src, &mut read)?, start)
                    }
                    None => None,
                }
            }
        };
        if let Some(fixed) = fixed {
            let done = Repaired { meta: true, ..done };
            return parse_repairing(Src::Bytes(&fixed), with_pixels, done).map(|(o, _)| (o, None));
        }
    }
    let scanned = match src {
        Src::Bytes(b) => prescan_reader(&mut std::io::Cursor::new(b), b.len() as u64, &layout)?,
        Src::Path(path) => prescan(path, &layout)?,
    };
    if let Some(ds_start) = scanned.un_sequence_in {
        if done.un_sequences {
            return Err(un_sequences_unreadable());
        }
        let mut read = Vec::new();
        let fixed = transcode_un_sequences(all_bytes(src, &mut read)?, ds_start as usize)?;
        let done = Repaired {
            meta: true,
            un_sequences: true,
        };
        return parse_repairing(Src::Bytes(&fixed), with_pixels, done).map(|(o, _)| (o, None));
    }
    let pixel_at = scanned.pixel_at;
    let opts = |pre: ReadPreamble| {
        let o = OpenFileOptions::new().read_preamble(pre);
        if with_pixels {
            o
        } else {
            o.read_until(tags::PIXEL_DATA)
        }
    };
    let open = |pre: ReadPreamble| match src {
        Src::Bytes(b) => opts(pre).from_reader(b),
        Src::Path(path) => opts(pre).open_file(path),
    };
    let first_try = match layout {
        Layout::NotDicom => return Err(ItemError::Skipped("not a DICOM file".into())),
        Layout::Preamble => open(ReadPreamble::Always),
        Layout::MagicOnly => open(ReadPreamble::Never),
        Layout::Bare {
            explicit,
            big_endian,
        } => {
            return match src {
                Src::Bytes(b) => open_bare_bytes(b, explicit, big_endian),
                Src::Path(path) => open_bare(path, explicit, big_endian),
            }
            .map(|obj| (obj, pixel_at))
        }
    };
    match first_try {
        Ok(obj) => Ok((obj, pixel_at)),
        Err(first) => {
            // The file meta group may be broken (e.g. no TransferSyntaxUID): read the data set
            // after it on its own.
            let read;
            let bytes = match src {
                Src::Bytes(b) => b,
                Src::Path(path) => {
                    read = std::fs::read(path)
                        .map_err(|e| ItemError::context("cannot read the file", &e))?;
                    &read[..]
                }
            };
            let start = if matches!(layout, Layout::Preamble) {
                132
            } else {
                4
            };
            let Some(ds_start) = skip_meta_group(bytes, start) else {
                return Err(ItemError::context("not readable as DICOM", &first));
            };
            let explicit = bytes.len() >= ds_start + 6
                && bytes[ds_start + 4..ds_start + 6]
                    .iter()
                    .all(u8::is_ascii_uppercase);
            let ds = &bytes[ds_start..];
            // The data set is parsed on its own: check its lengths and nesting first, as for
            // any file.
            let bare = Layout::Bare {
                explicit,
                big_endian: false,
            };
            let scan =
                |ds: &[u8]| prescan_reader(&mut std::io::Cursor::new(ds), ds.len() as u64, &bare);
            let scanned = scan(ds)?;
            let fixed;
            let (ds, pixel_at) = match scanned.un_sequence_in {
                None => (ds, scanned.pixel_at.map(|at| at + ds_start as u64)),
                Some(_) => {
                    fixed = transcode_un_sequences(ds, 0)?;
                    if scan(&fixed)?.un_sequence_in.is_some() {
                        return Err(un_sequences_unreadable());
                    }
                    (&fixed[..], None)
                }
            };
            open_bare_bytes(ds, explicit, false)
                .map(|obj| (obj, pixel_at))
                .map_err(|_| ItemError::context("not readable as DICOM", &first))
        }
    }
}

/// Check every element length the file declares against the bytes that are really there,
/// before the parser allocates anything: a 1 KB file claiming a 4 GB element is refused at once
/// instead of reserving 4 GB. Reads only element headers (values are skipped with seeks).
fn prescan(path: &Path, layout: &Layout) -> Result<Scanned, ItemError> {
    let file =
        std::fs::File::open(path).map_err(|e| ItemError::context("cannot open the file", &e))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = std::io::BufReader::with_capacity(8192, file);
    prescan_reader(&mut r, total, layout)
}

/// What the pre-scan found.
#[derive(Debug, Default)]
struct Scanned {
    /// The offset of the top-level Pixel Data element, when there is one outside a deflated
    /// stream.
    pixel_at: Option<u64>,
    /// Where the data set starts, when the walk stopped at an element of VR UN and undefined
    /// length in an explicit VR little endian data set: a CP-246 sequence, whose items are in
    /// implicit VR. The parser would read them in the file's encoding, so the file must not be
    /// parsed as it is: [`transcode_un_sequences`] rewrites it and the result is scanned again.
    un_sequence_in: Option<u64>,
}

/// [`prescan`] over any reader of `total` bytes laid out as `layout`.
fn prescan_reader<R: Read + Seek>(
    r: &mut R,
    total: u64,
    layout: &Layout,
) -> Result<Scanned, ItemError> {
    let at = |pos: u64, r: &mut R| {
        r.seek(std::io::SeekFrom::Start(pos))
            .map(|_| ())
            .map_err(|e| ItemError::context("cannot read the file", &e))
    };
    let (start, explicit, big) = match layout {
        Layout::NotDicom => return Ok(Scanned::default()),
        Layout::Bare {
            explicit,
            big_endian,
        } => (0, *explicit, *big_endian),
        Layout::Preamble | Layout::MagicOnly => {
            let start = if matches!(layout, Layout::Preamble) {
                132
            } else {
                4
            };
            at(start, r)?;
            match scan_meta(r, start, total)? {
                // No (0002,0000) or no transfer syntax: the parser fails on the meta group and
                // the fallback reader pre-scans the data set it reads on its own.
                Meta::Unreadable => return Ok(Scanned::default()),
                Meta::Deflated => return check_deflated(r, total).map(|_| Scanned::default()),
                Meta::DataSet {
                    start,
                    explicit,
                    big_endian,
                } => (start, explicit, big_endian),
            }
        }
    };
    at(start, r)?;
    scan_data_set(r, start, total, explicit, big, explicit && !big)
}

/// What the file meta group says about the data set after it.
enum Meta {
    Unreadable,
    Deflated,
    DataSet {
        start: u64,
        explicit: bool,
        big_endian: bool,
    },
}

fn too_long(tag: (u16, u16), len: u64, left: u64) -> ItemError {
    ItemError::failed(format!(
        "element ({:04X},{:04X}) declares {len} bytes but only {left} remain in the file; refusing to read it",
        tag.0, tag.1
    ))
}

/// Walk the file meta group (explicit VR little endian) the way dicom-rs reads it: it must
/// start with (0002,0000), and every element that starts within that many bytes after it
/// belongs to the group, whatever its tag says. A stray tag inside the group must not end the
/// walk early while the parser reads on.
fn scan_meta<R: Read>(r: &mut R, mut pos: u64, total: u64) -> Result<Meta, ItemError> {
    // One explicit VR little endian element header: (tag, length, header bytes).
    let header = |r: &mut R| -> Option<((u16, u16), u32, u64)> {
        let mut h = [0u8; 12];
        r.read_exact(&mut h[..8]).ok()?;
        let tag = (
            u16::from_le_bytes([h[0], h[1]]),
            u16::from_le_bytes([h[2], h[3]]),
        );
        let vr = [h[4], h[5]];
        if long_vr(vr) {
            r.read_exact(&mut h[8..12]).ok()?;
            Some((tag, u32::from_le_bytes([h[8], h[9], h[10], h[11]]), 12))
        } else {
            Some((tag, u16::from_le_bytes([h[6], h[7]]) as u32, 8))
        }
    };
    // The parser checks the first element's tag and length (4), not its VR.
    let Some(((2, 0), 4, n)) = header(r) else {
        return Ok(Meta::Unreadable);
    };
    let mut value = [0u8; 4];
    if r.read_exact(&mut value).is_err() {
        return Ok(Meta::Unreadable);
    }
    pos += n + 4;
    let end = pos + u32::from_le_bytes(value) as u64;
    let mut ts = None;
    while pos < end {
        let Some((tag, len, n)) = header(r) else {
            return Ok(Meta::Unreadable);
        };
        pos += n;
        let left = total.saturating_sub(pos);
        if len != u32::MAX && len as u64 > left {
            return Err(too_long(tag, len as u64, left));
        }
        if len == u32::MAX {
            return Ok(Meta::Unreadable); // the parser refuses undefined lengths in the meta group
        }
        let mut v = vec![
            0u8;
            if tag == (2, 0x10) {
                len.min(64) as usize
            } else {
                0
            }
        ];
        if r.read_exact(&mut v).is_err() {
            return Ok(Meta::Unreadable);
        }
        if tag == (2, 0x10) {
            ts = Some(
                String::from_utf8_lossy(&v)
                    .trim_end_matches(['\0', ' '])
                    .to_string(),
            );
        }
        std::io::copy(
            &mut r.take(len as u64 - v.len() as u64),
            &mut std::io::sink(),
        )
        .map_err(|e| ItemError::context("cannot read the file", &e))?;
        pos += len as u64;
    }
    Ok(match ts.as_deref() {
        None => Meta::Unreadable,
        Some("1.2.840.10008.1.2.1.99") => Meta::Deflated,
        Some(ts) => Meta::DataSet {
            start: pos,
            explicit: ts != "1.2.840.10008.1.2",
            big_endian: ts == "1.2.840.10008.1.2.2",
        },
    })
}

/// The VR the implicit VR parser gives `tag`: the standard dictionary's (US for "US or SS",
/// OW for "OB or OW"), OW for pixel and overlay data, UN when the tag is unknown.
fn implicit_vr(tag: (u16, u16)) -> [u8; 2] {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    if tag == (0x7FE0, 0x0010) || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        return *b"OW";
    }
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(dicom_core::Tag(tag.0, tag.1))
        .map(|e| e.vr().relaxed().to_bytes())
        .unwrap_or(*b"UN")
}

/// Size of one value of a binary VR. The parser reads `length / size` values and moves on
/// by only that many bytes, so a length that is not a multiple of the size leaves it reading
/// the rest of the file out of step.
fn binary_value_size(vr: [u8; 2]) -> Option<u32> {
    match &vr {
        b"US" | b"SS" | b"OW" => Some(2),
        b"UL" | b"SL" | b"FL" | b"OF" | b"OL" | b"AT" => Some(4),
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        _ => None,
    }
}

/// Walk a data set's element headers from `pos` (the reader is there), in its byte order and
/// VR encoding, following the parser's rules: (7FE0,0010) of undefined length holds raw
/// fragments; any other element of undefined length is a sequence, read in the same encoding
/// (whatever its VR says, UN included); in explicit VR a defined-length SQ is a sequence; in
/// implicit VR an element the dictionary types SQ is one, and nothing else (a value that
/// merely starts with an item tag is a value to the parser, and walking into it would put the
/// walk out of step with the parser). Every defined length is
/// checked against the bytes left, and nesting against [`MAX_NESTING`]. Values are skipped
/// with seeks; nothing is allocated. Returns where the top-level Pixel Data element starts,
/// when the walk reaches one. With `cp246` (an explicit VR little endian data set the caller
/// can rewrite), the walk stops at the first UN of undefined length and says so.
fn scan_data_set<R: Read + Seek>(
    r: &mut R,
    pos: u64,
    total: u64,
    explicit: bool,
    big: bool,
    cp246: bool,
) -> Result<Scanned, ItemError> {
    let (pixel_at, un_sequence) = scan_elements(r, pos, total, explicit, big, cp246)?;
    Ok(Scanned {
        pixel_at,
        un_sequence_in: un_sequence.then_some(pos),
    })
}

/// The walk of [`scan_data_set`]: where the top-level Pixel Data starts, and whether it
/// stopped at a CP-246 UN sequence.
fn scan_elements<R: Read + Seek>(
    r: &mut R,
    mut pos: u64,
    total: u64,
    explicit: bool,
    big: bool,
    cp246: bool,
) -> Result<(Option<u64>, bool), ItemError> {
    let rd16 = |b: &[u8]| {
        if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        }
    };
    let rd32 = |b: &[u8]| {
        if big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
    };
    let skip = |r: &mut R, n: u64| {
        r.seek_relative(n as i64)
            .map_err(|e| ItemError::context("cannot read the file", &e))
    };
    const UNDEFINED: u32 = u32::MAX;
    let mut nest = Nesting::default();
    // Where the parser is: reading elements (a data set or an item) or, right inside a
    // sequence, item headers. An item tag means different things in the two: a plain element
    // whose value is skipped, or an item whose contents are read.
    let mut in_sequence = false;
    let mut fragments = false;
    let mut pixel_at = None;
    let mut buf = [0u8; 12];
    loop {
        if let Some(was_sequence) = nest.close_ended(pos) {
            in_sequence = !was_sequence;
        }
        // A truncated tail is the parser's to report: the walk just ends.
        if r.read_exact(&mut buf[..8]).is_err() {
            return Ok((pixel_at, false));
        }
        pos += 8;
        let tag = (rd16(&buf[0..2]), rd16(&buf[2..4]));
        if tag == (0x7FE0, 0x0010)
            && pixel_at.is_none()
            && !fragments
            && !in_sequence
            && nest.open.is_empty()
        {
            pixel_at = Some(pos - 8);
        }
        let left = total.saturating_sub(pos);
        let len = rd32(&buf[4..8]);
        let check = |len: u32| {
            if len != UNDEFINED && len as u64 > left {
                Err(too_long(tag, len as u64, left))
            } else {
                Ok(())
            }
        };
        if fragments {
            // Encapsulated pixel data: an offset table and fragments, then the delimiter.
            match tag {
                (0xFFFE, 0xE000) => {
                    check(len)?;
                    skip(r, len as u64)?;
                    pos += len as u64;
                }
                (0xFFFE, 0xE0DD) => fragments = false,
                _ => return Ok((pixel_at, false)), // the parser stops here with an error
            }
            continue;
        }
        if in_sequence {
            // Item headers only.
            match tag {
                (0xFFFE, 0xE000) => {
                    check(len)?;
                    nest.open(false, (len != UNDEFINED).then(|| pos + len as u64), pos)?;
                    in_sequence = false;
                }
                (0xFFFE, 0xE00D) => {
                    nest.delimit();
                    in_sequence = true;
                }
                (0xFFFE, 0xE0DD) => {
                    nest.delimit();
                    in_sequence = false;
                }
                _ => return Ok((pixel_at, false)), // the parser stops here with an error
            }
            continue;
        }
        if tag.0 == 0xFFFE {
            // In an element context an item delimiter ends the item (and is ignored outside
            // any); any other item tag is a plain element of that length.
            if tag.1 == 0xE00D {
                if nest.delimit() {
                    in_sequence = true;
                }
            } else if len == UNDEFINED {
                nest.open(true, None, pos)?;
                in_sequence = true;
            } else {
                check(len)?;
                skip(r, len as u64)?;
                pos += len as u64;
            }
            continue;
        }
        let (vr, len) = if explicit {
            let vr = [buf[4], buf[5]];
            if long_vr(vr) {
                if r.read_exact(&mut buf[8..12]).is_err() {
                    return Ok((pixel_at, false));
                }
                pos += 4;
                (vr, rd32(&buf[8..12]))
            } else {
                (vr, rd16(&buf[6..8]) as u32)
            }
        } else {
            (implicit_vr(tag), rd32(&buf[4..8]))
        };
        let sequence = &vr == b"SQ";
        let left = total.saturating_sub(pos);
        if len == UNDEFINED {
            if cp246 && &vr == b"UN" {
                return Ok((pixel_at, true));
            }
            if tag == (0x7FE0, 0x0010) {
                fragments = true;
            } else {
                nest.open(true, None, pos)?;
                in_sequence = true;
            }
            continue;
        }
        if len as u64 > left {
            return Err(too_long(tag, len as u64, left));
        }
        if let Some(size) = binary_value_size(vr).filter(|size| len % size != 0) {
            return Err(ItemError::failed(format!(
                "element ({:04X},{:04X}) ({}) has a length of {len} bytes, not a multiple of {size}; \
                 the file is damaged and the rest of it would be misread; refusing it",
                tag.0,
                tag.1,
                String::from_utf8_lossy(&vr)
            )));
        }
        if sequence {
            nest.open(true, Some(pos + len as u64), pos)?;
            in_sequence = true;
        } else {
            skip(r, len as u64)?;
            pos += len as u64;
        }
    }
}

/// Whether an explicit VR has the 4-byte length field. As in dicom-rs, every VR other than
/// the 21 with a 2-byte length, including unknown codes (read as UN), has it.
fn long_vr(vr: [u8; 2]) -> bool {
    !matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// How deep sequences and items may nest (each sequence and each item is one level). The
/// parser recurses once per level, so a file nested thousands deep would overflow the stack
/// and abort the whole run; real files stay far below this (an SR tree of 30 levels is rare).
pub const MAX_NESTING: usize = 128;

/// The sequences and items open at a point of [`prescan`]'s walk.
#[derive(Default)]
struct Nesting {
    /// Per open level: whether it is a sequence (else an item), and where it ends (None:
    /// undefined length, closed by a delimiter).
    open: Vec<(bool, Option<u64>)>,
}

impl Nesting {
    /// Close the levels of defined length that end at or before `pos`; returns whether the
    /// last one closed was a sequence.
    fn close_ended(&mut self, pos: u64) -> Option<bool> {
        let mut closed = None;
        while let Some(&(sequence, Some(end))) = self.open.last() {
            if end > pos {
                break;
            }
            self.open.pop();
            closed = Some(sequence);
        }
        closed
    }
    /// Open a sequence or an item ending at `end` (None: undefined length).
    fn open(&mut self, sequence: bool, end: Option<u64>, at: u64) -> Result<(), ItemError> {
        self.open.push((sequence, end));
        if self.open.len() > MAX_NESTING {
            return Err(Self::too_deep(at));
        }
        Ok(())
    }
    /// A delimiter closes the innermost level; false when none was open.
    fn delimit(&mut self) -> bool {
        self.open.pop().is_some()
    }
    fn too_deep(at: u64) -> ItemError {
        ItemError::failed(format!(
            "sequences and items are nested more than {MAX_NESTING} levels deep (depth {} at byte {at}); refusing to read it",
            MAX_NESTING + 1
        ))
    }
}

/// A deflated data set must inflate completely, and to a bounded size (64 times the file, at
/// least 64 MiB): a truncated stream, or a small file that inflates without bound, is refused
/// before the parser sees it.
fn check_deflated<R: Read + Seek>(r: &mut R, total: u64) -> Result<(), ItemError> {
    let limit = total.saturating_mul(64).max(64 << 20);
    // The reader is where the meta group ends and the deflated stream starts.
    let mut inflater = flate2::read::DeflateDecoder::new(r.take(total)).take(limit + 1);
    let mut inflated = Vec::new();
    if let Err(e) = inflater.read_to_end(&mut inflated) {
        return Err(ItemError::failed(format!(
            "the deflated data set is corrupt or truncated: {e}"
        )));
    }
    if inflated.len() as u64 > limit {
        return Err(ItemError::failed(format!(
            "the deflated data set inflates beyond {} MiB (64 times the file); refusing it",
            limit >> 20
        )));
    }
    // The inflated data set gets the same length and nesting checks as a plain one (a UN of
    // undefined length walked in the data set's encoding, as the parser reads it: the
    // inflated bytes are not rewritten).
    let n = inflated.len() as u64;
    scan_data_set(
        &mut std::io::Cursor::new(&inflated),
        0,
        n,
        true,
        false,
        false,
    )
    .map(|_| ())
}

/// Whether a file starting with `head` (its first 132 bytes or fewer) looks like DICOM: with
/// the preamble, with "DICM" at the start, or a bare data set.
pub(crate) fn looks_like_dicom(head: &[u8]) -> bool {
    !matches!(sniff(&head[..head.len().min(132)]), Layout::NotDicom)
}

/// The data set of a DICOM file in Deflated Explicit VR Little Endian, inflated (with the bound
/// of [`check_deflated`]). None when the file has no meta group to skip.
pub(crate) fn inflated_data_set(bytes: &[u8]) -> Option<Result<Vec<u8>, ItemError>> {
    let start = match sniff(&bytes[..bytes.len().min(132)]) {
        Layout::Preamble => 132,
        Layout::MagicOnly => 4,
        Layout::Bare { .. } | Layout::NotDicom => return None,
    };
    // The meta group's own length says where it ends; walking by group number could take
    // deflated bytes that happen to start with 02 00 for one more meta element.
    let declared = (bytes.get(start..start + 8) == Some(&[2, 0, 0, 0, b'U', b'L', 4, 0][..]))
        .then(|| bytes.get(start + 8..start + 12))
        .flatten()
        .map(|v| start + 12 + u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize);
    let ds_start = match declared {
        Some(end) => end,
        None => skip_meta_group(bytes, start)?,
    };
    let ds = bytes.get(ds_start..)?;
    let limit = (bytes.len() as u64).saturating_mul(64).max(64 << 20);
    let mut inflated = Vec::new();
    let read = flate2::read::DeflateDecoder::new(ds)
        .take(limit + 1)
        .read_to_end(&mut inflated);
    Some(match read {
        Err(e) => Err(ItemError::failed(format!(
            "the deflated data set is corrupt or truncated: {e}"
        ))),
        Ok(_) if inflated.len() as u64 > limit => Err(ItemError::failed(
            "the deflated data set inflates beyond 64 times the file; refusing it",
        )),
        Ok(_) => Ok(inflated),
    })
}

/// Offset of the first element after the file meta group (group 0002, explicit VR LE).
fn skip_meta_group(bytes: &[u8], mut pos: usize) -> Option<usize> {
    while pos + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
        if group != 0x0002 {
            return Some(pos);
        }
        let vr = &bytes[pos + 4..pos + 6];
        let long = long_vr([vr[0], vr[1]]);
        let (len, header) = if long {
            if pos + 12 > bytes.len() {
                return None;
            }
            (
                u32::from_le_bytes([
                    bytes[pos + 8],
                    bytes[pos + 9],
                    bytes[pos + 10],
                    bytes[pos + 11],
                ]) as usize,
                12,
            )
        } else {
            (
                u16::from_le_bytes([bytes[pos + 6], bytes[pos + 7]]) as usize,
                8,
            )
        };
        pos = pos.checked_add(header)?.checked_add(len)?;
    }
    None
}

/// The file meta group read the way dcmtk reads it without trusting the group length
/// (`dcmdump -ml`): every element from `start` whose tag is in group 0002 belongs to it, the
/// first other tag starts the data set. When the group has no (0002,0000), or its value does
/// not end the group where its elements end, or the elements are out of order, the file's
/// bytes come back with the group rebuilt: a (0002,0000) giving the real length, then the
/// elements in ascending order (a repeated one kept once, the first). None when the group is
/// right as it is, or cannot be walked, or has no transfer syntax: the file is then read as
/// before (dicom-rs by the declared length, else the fallback reader).
fn repaired_meta(bytes: &[u8], start: usize) -> Option<Vec<u8>> {
    let mut elements: Vec<(u16, &[u8])> = Vec::new();
    let mut pos = start;
    while pos + 8 <= bytes.len() && u16::from_le_bytes([bytes[pos], bytes[pos + 1]]) == 0x0002 {
        let element = u16::from_le_bytes([bytes[pos + 2], bytes[pos + 3]]);
        let (len, header) = if long_vr([bytes[pos + 4], bytes[pos + 5]]) {
            let v = bytes.get(pos + 8..pos + 12)?;
            (u32::from_le_bytes([v[0], v[1], v[2], v[3]]), 12)
        } else {
            (
                u16::from_le_bytes([bytes[pos + 6], bytes[pos + 7]]) as u32,
                8,
            )
        };
        if len == u32::MAX {
            return None;
        }
        let end = pos.checked_add(header)?.checked_add(len as usize)?;
        elements.push((element, bytes.get(pos..end)?));
        pos = end;
    }
    let group_end = pos;
    let declared_end = match elements.first() {
        Some((0, e)) if e.len() == 12 && &e[4..6] == b"UL" => {
            Some(start + 12 + u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as usize)
        }
        _ => None,
    };
    let in_order = elements.windows(2).all(|w| w[0].0 < w[1].0);
    if declared_end == Some(group_end) && in_order {
        return None;
    }
    if !elements.iter().any(|(e, _)| *e == 0x0010) {
        return None;
    }
    let mut kept: Vec<(u16, &[u8])> = Vec::new();
    for (e, b) in elements {
        if e != 0 && !kept.iter().any(|(k, _)| *k == e) {
            kept.push((e, b));
        }
    }
    kept.sort_by_key(|(e, _)| *e);
    let len: usize = kept.iter().map(|(_, b)| b.len()).sum();
    let len = u32::try_from(len).ok()?;
    let mut out = Vec::with_capacity(bytes.len() + 12);
    out.extend_from_slice(&bytes[..start]);
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    for (_, b) in kept {
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&bytes[group_end..]);
    Some(out)
}

fn un_sequences_unreadable() -> ItemError {
    ItemError::failed(
        "a UN element of undefined length could not be rewritten as a sequence consistently; the file is damaged; refusing it",
    )
}

/// One level open during [`transcode_un_sequences`]' walk.
struct Open {
    sequence: bool,
    /// Where it ends (None: undefined length, closed by a delimiter).
    end: Option<usize>,
    /// Where its 4-byte length field is, when it has one the rewrite may have to change.
    len_at: Option<usize>,
    /// Its content is in implicit VR (inside a CP-246 sequence).
    implicit: bool,
    /// Its content grows in the rewrite, so a defined length is made undefined (and a
    /// delimiter added where it ends).
    grows: bool,
}

impl Open {
    /// A level as it opens: its content grows exactly when it is implicit (later levels may make
    /// an enclosing one grow too).
    fn new(sequence: bool, end: Option<usize>, len_at: Option<usize>, implicit: bool) -> Open {
        Open {
            sequence,
            end,
            len_at,
            implicit,
            grows: implicit,
        }
    }
}

/// CP-246 (PS3.5 6.2.2): the value of an element of VR UN and undefined length is a sequence
/// whose items are encoded in implicit VR little endian, whatever the data set's transfer
/// syntax. dicom-rs 0.10 reads such a value in the data set's own encoding (explicit VR here),
/// which misreads every element inside. So the bytes of an explicit VR little endian data set
/// starting at `start` are rewritten before parsing: each such element becomes an SQ of
/// undefined length and the elements of its items get explicit VR headers (the dictionary's
/// VR; LO for private creators; UN when the tag is unknown, the value too long for a 2-byte
/// length, or its length not a multiple of the VR's value size). Every item or sequence of
/// defined length inside or around such an element gets an undefined length and a delimiter
/// (its content grew). The walk follows the same reading rules as [`scan_data_set`] and checks
/// lengths and nesting the same way; the rewritten bytes are pre-scanned again before the
/// parser sees them.
fn transcode_un_sequences(bytes: &[u8], start: usize) -> Result<Vec<u8>, ItemError> {
    const UNDEFINED: u32 = u32::MAX;
    const ITEM_END: [u8; 8] = [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0];
    const SEQUENCE_END: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
    let total = bytes.len();
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    // (offset, bytes replaced, bytes put there), applied in offset order.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let header = |tag: (u16, u16), vr: &[u8; 2], len: u32| {
        let mut h = Vec::with_capacity(12);
        h.extend_from_slice(&tag.0.to_le_bytes());
        h.extend_from_slice(&tag.1.to_le_bytes());
        h.extend_from_slice(vr);
        if long_vr(*vr) {
            h.extend_from_slice(&[0, 0]);
            h.extend_from_slice(&len.to_le_bytes());
        } else {
            h.extend_from_slice(&(len as u16).to_le_bytes());
        }
        h
    };
    let mut open: Vec<Open> = Vec::new();
    let close = |o: Open, at: usize, edits: &mut Vec<(usize, usize, Vec<u8>)>| {
        if o.grows {
            if let Some(len_at) = o.len_at {
                edits.push((len_at, 4, UNDEFINED.to_le_bytes().to_vec()));
            }
            if o.end.is_some() {
                let d = if o.sequence { SEQUENCE_END } else { ITEM_END };
                edits.push((at, 0, d.to_vec()));
            }
        }
    };
    let push = |open: &mut Vec<Open>, o: Open, at: usize| {
        open.push(o);
        if open.len() > MAX_NESTING {
            Err(Nesting::too_deep(at as u64))
        } else {
            Ok(())
        }
    };
    let mut pos = start;
    let mut in_sequence = false;
    let mut fragments = false;
    loop {
        while let Some(o) = open.last() {
            if o.end.is_none_or(|end| end > pos) {
                break;
            }
            let o = open.pop().expect("a level is open");
            in_sequence = !o.sequence;
            close(o, pos, &mut edits);
        }
        if pos + 8 > total {
            break;
        }
        let tag = (u16_at(pos), u16_at(pos + 2));
        let len = u32_at(pos + 4);
        let left = total - pos - 8;
        let check = |len: u32, left: usize| {
            if len != UNDEFINED && len as usize > left {
                Err(too_long(tag, len as u64, left as u64))
            } else {
                Ok(())
            }
        };
        let implicit = open.last().is_some_and(|o| o.implicit);
        if fragments {
            match tag {
                (0xFFFE, 0xE000) => {
                    check(len, left)?;
                    pos += 8 + len as usize;
                }
                (0xFFFE, 0xE0DD) => {
                    fragments = false;
                    pos += 8;
                }
                _ => break,
            }
            continue;
        }
        if in_sequence || tag.0 == 0xFFFE {
            // Item and delimiter headers read the same in both encodings.
            match tag {
                (0xFFFE, 0xE000) if in_sequence => {
                    check(len, left)?;
                    let o = Open::new(
                        false,
                        (len != UNDEFINED).then(|| pos + 8 + len as usize),
                        (len != UNDEFINED).then_some(pos + 4),
                        implicit,
                    );
                    push(&mut open, o, pos)?;
                    in_sequence = false;
                }
                (0xFFFE, 0xE00D) | (0xFFFE, 0xE0DD) if in_sequence => {
                    if let Some(o) = open.pop() {
                        let o = Open { end: None, ..o };
                        close(o, pos, &mut edits);
                    }
                    in_sequence = tag.1 == 0xE00D;
                }
                _ if in_sequence => break,
                (0xFFFE, 0xE00D) => {
                    if let Some(o) = open.pop() {
                        let o = Open { end: None, ..o };
                        close(o, pos, &mut edits);
                        in_sequence = true;
                    }
                }
                _ if len == UNDEFINED => {
                    let o = Open::new(true, None, None, implicit);
                    push(&mut open, o, pos)?;
                    in_sequence = true;
                }
                _ => {
                    check(len, left)?;
                    pos += len as usize;
                }
            }
            pos += 8;
            continue;
        }
        if !implicit {
            let vr = [bytes[pos + 4], bytes[pos + 5]];
            let (len, hdr) = if long_vr(vr) {
                if pos + 12 > total {
                    break;
                }
                (u32_at(pos + 8), 12)
            } else {
                (u16_at(pos + 6) as u32, 8)
            };
            let left = total - pos - hdr;
            if len == UNDEFINED {
                if tag == (0x7FE0, 0x0010) {
                    fragments = true;
                } else {
                    let un = &vr == b"UN";
                    if un {
                        edits.push((pos + 4, 2, b"SQ".to_vec()));
                        for o in open.iter_mut() {
                            o.grows = true;
                        }
                    }
                    let o = Open::new(true, None, None, un);
                    push(&mut open, o, pos)?;
                    in_sequence = true;
                }
                pos += hdr;
                continue;
            }
            check(len, left)?;
            if &vr == b"SQ" {
                let o = Open::new(true, Some(pos + hdr + len as usize), Some(pos + 8), false);
                push(&mut open, o, pos)?;
                in_sequence = true;
                pos += hdr;
            } else {
                pos += hdr + len as usize;
            }
            continue;
        }
        // Implicit VR, inside a CP-246 sequence.
        let private_creator = tag.0 % 2 == 1 && (0x0010..=0x00FF).contains(&tag.1);
        let vr = if tag.1 == 0 {
            *b"UL"
        } else if private_creator {
            *b"LO"
        } else {
            implicit_vr(tag)
        };
        if len == UNDEFINED {
            if tag == (0x7FE0, 0x0010) {
                edits.push((pos, 8, header(tag, b"OB", UNDEFINED)));
                fragments = true;
            } else {
                edits.push((pos, 8, header(tag, b"SQ", UNDEFINED)));
                let o = Open::new(true, None, None, true);
                push(&mut open, o, pos)?;
                in_sequence = true;
            }
            pos += 8;
            continue;
        }
        check(len, left)?;
        if &vr == b"SQ" {
            edits.push((pos, 8, header(tag, b"SQ", UNDEFINED)));
            let o = Open::new(true, Some(pos + 8 + len as usize), None, true);
            push(&mut open, o, pos)?;
            in_sequence = true;
            pos += 8;
            continue;
        }
        let fits = long_vr(vr) || len <= 0xFFFF;
        let whole = binary_value_size(vr).is_none_or(|size| len % size == 0);
        let vr = if fits && whole { vr } else { *b"UN" };
        edits.push((pos, 8, header(tag, &vr, len)));
        pos += 8 + len as usize;
    }
    // Levels still open where the walk ended (a damaged tail): closed there, so that what
    // the rewrite changed stays consistent; the parser reports the damage.
    while let Some(o) = open.pop() {
        close(o, pos.min(total), &mut edits);
    }
    edits.sort_by_key(|e| e.0);
    let grown: usize = edits.iter().map(|e| e.2.len()).sum();
    let mut out = Vec::with_capacity(total + grown);
    let mut at = 0;
    for (offset, replaced, with) in edits {
        if offset < at || offset + replaced > total {
            return Err(un_sequences_unreadable());
        }
        out.extend_from_slice(&bytes[at..offset]);
        out.extend_from_slice(&with);
        at = offset + replaced;
    }
    out.extend_from_slice(&bytes[at..]);
    Ok(out)
}

fn open_bare(
    path: &Path,
    explicit: bool,
    big_endian: bool,
) -> Result<FileDicomObject<InMemDicomObject>, ItemError> {
    let bytes = std::fs::read(path).map_err(|e| ItemError::context("cannot read the file", &e))?;
    open_bare_bytes(&bytes, explicit, big_endian)
}

fn open_bare_bytes(
    bytes: &[u8],
    explicit: bool,
    big_endian: bool,
) -> Result<FileDicomObject<InMemDicomObject>, ItemError> {
    use dicom_transfer_syntax_registry::entries;
    let ts = if big_endian {
        entries::EXPLICIT_VR_BIG_ENDIAN.erased()
    } else if explicit {
        entries::EXPLICIT_VR_LITTLE_ENDIAN.erased()
    } else {
        entries::IMPLICIT_VR_LITTLE_ENDIAN.erased()
    };
    let ds = InMemDicomObject::read_dataset_with_ts(bytes, &ts).map_err(|e| {
        ItemError::context("no file meta group, and the data set could not be read", &e)
    })?;
    let uid = |tag| {
        ds.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .filter(|s| !s.is_empty())
    };
    let (Some(class), Some(inst)) = (uid(tags::SOP_CLASS_UID), uid(tags::SOP_INSTANCE_UID)) else {
        return Err(ItemError::failed(
            "no file meta group and no SOPClassUID/SOPInstanceUID to rebuild it from",
        ));
    };
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(inst)
        .transfer_syntax(ts.uid())
        .build()
        .map_err(|e| ItemError::context("cannot rebuild the file meta group", &e))?;
    Ok(ds.with_exact_meta(meta))
}

/// Make sure the instance carries its Pixel Data: stages that hold many instances (e.g.
/// `sort_series`) drop it to keep memory flat, and this reads it back from the input file,
/// which dcmflow never modifies. The rest of the (possibly de-identified) header is kept. The
/// file must still be the one the header came from: its size, modification time and header
/// bytes are compared with those recorded when it was read ([`SourceStamp`]), else the item
/// fails and no pixel data of another file is joined to this header.
pub fn ensure_pixels(inst: &mut Instance, source: &Path) -> Result<(), ItemError> {
    if inst.pixels_loaded {
        return Ok(());
    }
    let changed = || {
        ItemError::failed(
            "the input file changed since it was read (size, modification time or header bytes differ); its pixel data is not used",
        )
    };
    let Some(was) = inst.source_stamp.as_ref() else {
        return Err(ItemError::failed(
            "no record of the input file as it was read, so pixel data read back from it cannot be checked to belong to this instance; not read",
        ));
    };
    // The cheap checks first; the header bytes are hashed from the same read as the pixels.
    let meta =
        std::fs::metadata(source).map_err(|e| ItemError::context("cannot read the file", &e))?;
    if meta.len() != was.size || meta.modified().ok() != was.modified {
        return Err(changed());
    }
    let (full, now) = open_dicom_stamped(source, true)?;
    if &now != was || full.meta().transfer_syntax() != inst.obj.meta().transfer_syntax() {
        return Err(changed());
    }
    if let Some(px) = full.get(tags::PIXEL_DATA) {
        inst.obj.put(px.clone());
    }
    inst.pixels_loaded = true;
    Ok(())
}

/// Drop Pixel Data from an instance held for later (see [`ensure_pixels`]).
pub fn drop_pixels(inst: &mut Instance) {
    if inst.obj.remove_element(tags::PIXEL_DATA) {
        inst.pixels_loaded = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(g: u16, e: u16, vr: &[u8; 2], val: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&g.to_le_bytes());
        v.extend_from_slice(&e.to_le_bytes());
        v.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&(val.len() as u32).to_le_bytes());
        } else {
            v.extend_from_slice(&(val.len() as u16).to_le_bytes());
        }
        v.extend_from_slice(val);
        v
    }

    fn small_file(tail: &[u8]) -> Vec<u8> {
        let mut meta = el(2, 1, b"OB", &[0, 1]);
        meta.extend(el(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"));
        meta.extend(el(2, 3, b"UI", b"1.2.3.4\0"));
        meta.extend(el(2, 0x10, b"UI", b"1.2.840.10008.1.2.1\0"));
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend(el(2, 0, b"UL", &(meta.len() as u32).to_le_bytes()));
        f.extend(meta);
        f.extend(el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"));
        f.extend(el(8, 0x18, b"UI", b"1.2.3.4\0"));
        f.extend_from_slice(tail);
        f
    }

    #[test]
    fn a_small_file_declaring_a_4_gb_element_is_refused_before_reading_it() {
        let mut tail = Vec::new();
        tail.extend_from_slice(&0x7FE0u16.to_le_bytes());
        tail.extend_from_slice(&0x0010u16.to_le_bytes());
        tail.extend_from_slice(b"OB\0\0");
        tail.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        tail.extend_from_slice(&[0u8; 200]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.dcm");
        std::fs::write(&p, small_file(&tail)).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() < 1024);
        let e = open_dicom(&p, true).unwrap_err();
        assert!(
            e.reason().contains("(7FE0,0010) declares 4294967280 bytes"),
            "{e}"
        );
    }

    /// Found by the `deid_write` fuzz target: an element of another group inside the meta group's
    /// declared length. The parser reads it as part of the meta group and goes on with the
    /// data set; the pre-scan used to stop at it, so a 2 GB claim further on was allocated
    /// (and zero-filled) before anything refused it.
    #[test]
    fn a_stray_tag_inside_the_meta_group_does_not_end_the_length_check() {
        let mut meta = el(2, 1, b"OB", &[0, 1]);
        meta.extend(el(0x26, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"));
        meta.extend(el(2, 0x10, b"UI", b"1.2.840.10008.1.2.1\0"));
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend(el(2, 0, b"UL", &(meta.len() as u32).to_le_bytes()));
        f.extend(meta);
        f.extend(el(8, 0x18, b"UI", b"1.2.3.4\0"));
        f.extend_from_slice(&0x8D03u16.to_le_bytes());
        f.extend_from_slice(&0xFC03u16.to_le_bytes());
        f.extend_from_slice(b"OB\0\0");
        f.extend_from_slice(&0x7E00_0042u32.to_le_bytes());
        f.extend_from_slice(&[0u8; 100]);
        let len = f.len() as u64;
        let e = prescan_reader(&mut std::io::Cursor::new(&f), len, &Layout::Preamble).unwrap_err();
        assert!(
            e.reason().contains("(8D03,FC03) declares 2113929282 bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_well_formed_small_file_passes_the_length_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok.dcm");
        std::fs::write(&p, small_file(&el(0x10, 0x10, b"PN", b"Doe^John"))).unwrap();
        let obj = open_dicom(&p, true).unwrap();
        assert!(obj.get(tags::PATIENT_NAME).is_some());
    }

    /// `depth` ContentSequences each holding one item, of undefined length (closed by
    /// delimiters) or of defined length.
    fn nested(depth: usize, defined: bool) -> Vec<u8> {
        let mut inner = el(0x0008, 0x0100, b"SH", b"LEAF");
        for _ in 0..depth {
            let mut item = Vec::new();
            item.extend_from_slice(&0xFFFEu16.to_le_bytes());
            item.extend_from_slice(&0xE000u16.to_le_bytes());
            let mut sq = Vec::new();
            sq.extend_from_slice(&0x0040u16.to_le_bytes());
            sq.extend_from_slice(&0xA730u16.to_le_bytes());
            sq.extend_from_slice(b"SQ\0\0");
            if defined {
                item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
                item.extend(inner);
                sq.extend_from_slice(&(item.len() as u32).to_le_bytes());
                sq.extend(item);
            } else {
                item.extend_from_slice(&u32::MAX.to_le_bytes());
                item.extend(inner);
                item.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
                sq.extend_from_slice(&u32::MAX.to_le_bytes());
                sq.extend(item);
                sq.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
            }
            inner = sq;
        }
        inner
    }

    fn open_bytes(bytes: &[u8]) -> Result<FileDicomObject<InMemDicomObject>, ItemError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.dcm");
        std::fs::write(&p, bytes).unwrap();
        open_dicom(&p, true)
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_and_one_level_more_is_refused() {
        for defined in [false, true] {
            let mut tail = nested(MAX_NESTING / 2, defined);
            tail.extend(el(0x0010, 0x0010, b"PN", b"Doe^John"));
            let obj = open_bytes(&small_file(&tail)).unwrap_or_else(|e| panic!("{e}"));
            assert!(obj.get(tags::PATIENT_NAME).is_some(), "defined {defined}");
            let e = open_bytes(&small_file(&nested(MAX_NESTING / 2 + 1, defined))).unwrap_err();
            assert!(
                e.reason()
                    .contains("nested more than 128 levels deep (depth 129"),
                "defined {defined}: {e}"
            );
        }
    }

    #[test]
    fn deep_nesting_in_implicit_vr_and_inside_un_is_refused() {
        // Implicit VR little endian: sequences are told by an item tag at the start of the value.
        let mut implicit = Vec::new();
        for (g, e, vr, v) in [
            (8u16, 0x16u16, b"UI", &b"1.2.840.10008.5.1.4.1.1.7\0"[..]),
            (8, 0x18, b"UI", b"1.2.3.4\0"),
        ] {
            let _ = vr;
            implicit.extend_from_slice(&g.to_le_bytes());
            implicit.extend_from_slice(&e.to_le_bytes());
            implicit.extend_from_slice(&(v.len() as u32).to_le_bytes());
            implicit.extend_from_slice(v);
        }
        let mut inner = Vec::new();
        for _ in 0..200 {
            let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
            item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
            item.extend(inner);
            let mut sq = vec![0x40, 0x00, 0x30, 0xA7];
            sq.extend_from_slice(&(item.len() as u32).to_le_bytes());
            sq.extend(item);
            inner = sq;
        }
        implicit.extend(inner);
        let e = open_bytes(&implicit).unwrap_err();
        assert!(e.reason().contains("nested more than 128"), "{e}");

        // A UN of undefined length is a sequence in implicit VR (CP-246): deep nesting inside
        // one is refused too.
        let mut un = vec![0x40, 0x00, 0x30, 0xA7];
        un.extend_from_slice(b"UN\0\0");
        un.extend_from_slice(&u32::MAX.to_le_bytes());
        for _ in 0..200 {
            un.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
            un.extend_from_slice(&[0x40, 0x00, 0x30, 0xA7, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let e = open_bytes(&small_file(&un)).unwrap_err();
        assert!(e.reason().contains("nested more than 128"), "{e}");
    }

    /// A UN of undefined length holding `content` (item and element headers) in the data set
    /// of an explicit VR little endian file.
    fn with_un_sequence(tag: (u16, u16), content: &[u8]) -> Vec<u8> {
        let mut un = Vec::new();
        un.extend_from_slice(&tag.0.to_le_bytes());
        un.extend_from_slice(&tag.1.to_le_bytes());
        un.extend_from_slice(b"UN\0\0");
        un.extend_from_slice(&u32::MAX.to_le_bytes());
        un.extend_from_slice(content);
        un.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        small_file(&un)
    }

    /// Found by the `deid_write` fuzz target: implicit VR content inside a UN of undefined
    /// length, which dicom-rs reads in the file's explicit encoding, where "ABCD" after a tag
    /// is a 4-byte length of 1,145,258,561 (a 1 GB zero-filled buffer). The content is now
    /// read as implicit VR, as CP-246 says: the bytes are rewritten before the parser sees
    /// them, and the element inside is read as what it is.
    #[test]
    fn implicit_content_inside_an_undefined_length_un_is_read_as_implicit_vr() {
        let mut content = vec![0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
        content.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0]);
        content.extend_from_slice(b"ABCD");
        content.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        let obj = open_bytes(&with_un_sequence((0x0009, 0x1010), &content)).unwrap();
        let seq = obj.get(dicom_core::Tag(0x0009, 0x1010)).unwrap();
        let items = seq.items().expect("read as a sequence");
        assert_eq!(items.len(), 1);
        let name = items[0].get(tags::PATIENT_NAME).unwrap();
        assert_eq!(name.vr(), dicom_core::VR::PN);
        assert_eq!(name.to_str().unwrap(), "ABCD");
    }

    #[test]
    fn a_lying_length_inside_an_undefined_length_un_is_refused() {
        // Inside an item of defined length, and of undefined length.
        for item_len in [28u32, u32::MAX] {
            let mut content = vec![0xFE, 0xFF, 0x00, 0xE0];
            content.extend_from_slice(&item_len.to_le_bytes());
            content.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0]);
            content.extend_from_slice(b"ABCD");
            content.extend_from_slice(&[0x10, 0x00, 0x20, 0x00]);
            content.extend_from_slice(&0x4000_0000u32.to_le_bytes());
            content.extend_from_slice(&[0u8; 8]);
            let e = open_bytes(&with_un_sequence((0x0009, 0x1010), &content)).unwrap_err();
            assert!(
                e.reason().contains("(0010,0020) declares 1073741824 bytes"),
                "{e}"
            );
        }
    }

    /// A standard sequence stored as UN: its items (defined length, implicit VR) hold a nested
    /// sequence of defined length and a value too long for its VR's 2-byte length; the
    /// rewrite gives undefined lengths and UN where it must, and the parser reads it all.
    #[test]
    fn a_standard_sequence_stored_as_un_is_read_with_its_nested_content() {
        let im = |g: u16, e: u16, v: &[u8]| {
            let mut b = Vec::new();
            b.extend_from_slice(&g.to_le_bytes());
            b.extend_from_slice(&e.to_le_bytes());
            b.extend_from_slice(&(v.len() as u32).to_le_bytes());
            b.extend_from_slice(v);
            b
        };
        let item = |content: &[u8]| {
            let mut b = vec![0xFE, 0xFF, 0x00, 0xE0];
            b.extend_from_slice(&(content.len() as u32).to_le_bytes());
            b.extend_from_slice(content);
            b
        };
        let inner = item(&im(8, 0x100, b"INNER1"));
        let mut outer = im(8, 0x104, &vec![b'x'; 70_000]); // LO, longer than 65535
        outer.extend(im(0x0040, 0xA730, &inner)); // ContentSequence, defined length
        outer.extend(im(8, 0x100, b"OUTER1"));
        let obj = open_bytes(&with_un_sequence((0x0008, 0x1115), &item(&outer))).unwrap();
        let items = obj
            .get(tags::REFERENCED_SERIES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].get(tags::CODE_VALUE).unwrap().to_str().unwrap(),
            "OUTER1"
        );
        assert_eq!(
            items[0].get(tags::CODE_MEANING).unwrap().vr(),
            dicom_core::VR::UN
        );
        let nested = items[0]
            .get(tags::CONTENT_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(
            nested[0].get(tags::CODE_VALUE).unwrap().to_str().unwrap(),
            "INNER1"
        );
        // Elements after the rewritten sequence are read in step.
        assert!(obj.get(tags::SOP_INSTANCE_UID).is_some());
    }

    /// Bytes of a file with UN sequences (nested, defined and undefined lengths) changed at
    /// random: each is read or refused, never a panic, and what is read holds no item tag
    /// as an element.
    #[test]
    fn damaged_un_sequences_are_read_or_refused_without_panicking() {
        let im = |g: u16, e: u16, v: &[u8]| {
            let mut b = Vec::new();
            b.extend_from_slice(&g.to_le_bytes());
            b.extend_from_slice(&e.to_le_bytes());
            b.extend_from_slice(&(v.len() as u32).to_le_bytes());
            b.extend_from_slice(v);
            b
        };
        let mut inner = vec![0xFE, 0xFF, 0x00, 0xE0, 14, 0, 0, 0];
        inner.extend(im(8, 0x100, b"INNER1"));
        let mut content = vec![0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
        content.extend(im(0x10, 0x10, b"Doe^John"));
        content.extend(im(0x40, 0xA730, &inner));
        content.extend(im(0x29, 0x1001, &[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]));
        content.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        let base = with_un_sequence((0x0029, 0x1010), &content);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut read, mut refused) = (0, 0);
        for _ in 0..3000 {
            let mut f = base.clone();
            for _ in 0..1 + next() % 4 {
                let at = 132 + (next() as usize) % (f.len() - 132);
                f[at] = match next() % 4 {
                    0 => 0xFF,
                    1 => 0x00,
                    2 => 0xFE,
                    _ => next() as u8,
                };
            }
            match parse_dicom(Src::Bytes(&f), true) {
                Ok((obj, _)) => {
                    read += 1;
                    let _ = delimiter_element(&obj);
                }
                Err(_) => refused += 1,
            }
        }
        assert!(read > 0 && refused > 0, "read {read}, refused {refused}");
    }

    /// A UN sequence inside an explicit SQ item of defined length: the enclosing lengths grow
    /// with the rewrite and are made undefined, so the element after the SQ is read in step.
    #[test]
    fn a_un_sequence_inside_a_defined_length_item_keeps_the_rest_in_step() {
        let mut un = vec![0x09, 0x00, 0x10, 0x10];
        un.extend_from_slice(b"UN\0\0");
        un.extend_from_slice(&u32::MAX.to_le_bytes());
        un.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 12, 0, 0, 0]);
        un.extend_from_slice(&[0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0]);
        un.extend_from_slice(b"ABCD");
        un.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        item.extend_from_slice(&(un.len() as u32).to_le_bytes());
        item.extend(un);
        let mut t = vec![0x40, 0x00, 0x30, 0xA7, b'S', b'Q', 0, 0];
        t.extend_from_slice(&(item.len() as u32).to_le_bytes());
        t.extend(item);
        t.extend(el(0x0010, 0x0010, b"PN", b"Doe^John"));
        let obj = open_bytes(&small_file(&t)).unwrap();
        assert_eq!(
            obj.get(tags::PATIENT_NAME).unwrap().to_str().unwrap(),
            "Doe^John"
        );
        let items = obj.get(tags::CONTENT_SEQUENCE).unwrap().items().unwrap();
        let private = items[0].get(dicom_core::Tag(0x0009, 0x1010)).unwrap();
        let name = private.items().unwrap()[0].get(tags::PATIENT_NAME).unwrap();
        assert_eq!(name.to_str().unwrap(), "ABCD");
    }

    /// Found by the `deid_write` fuzz target: a data set the parser reads with an item tag
    /// (FFFE,E000) as an element. Written out again, that is an item header where an element
    /// belongs, and no reader (dcmdump, dicom-rs) can open the result.
    #[test]
    fn an_item_tag_standing_as_an_element_is_refused() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/crashers/fuzz-deid_write-item-tag-as-element.dcm");
        let e = open_dicom(&p, true).unwrap_err();
        assert!(
            e.reason()
                .contains("(FFFE,E000) stands where a data element should be"),
            "{e}"
        );
    }

    /// Also from the fuzzer: an OW element of undefined length that is not (7FE0,0010) is a
    /// sequence to the parser (not encapsulated fragments), so the lengths inside its items
    /// are checked.
    #[test]
    fn undefined_length_ow_outside_pixel_data_is_walked_as_a_sequence() {
        let mut t = vec![0xE0, 0x7F, 0x11, 0x00];
        t.extend_from_slice(b"OW\0\0");
        t.extend_from_slice(&u32::MAX.to_le_bytes());
        t.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 20, 0, 0, 0]);
        t.extend_from_slice(&[0xFF, 0x4F, 0xFF, 0x51, b'U', b'N', 0, 0]);
        t.extend_from_slice(&0x4000_0000u32.to_le_bytes());
        t.extend_from_slice(&[0u8; 8]);
        let e = open_bytes(&small_file(&t)).unwrap_err();
        assert!(
            e.reason().contains("(4FFF,51FF) declares 1073741824 bytes"),
            "{e}"
        );
    }

    fn reader() -> ReadDicom {
        ReadDicom {
            cfg: ReadDicomConfig {
                recursive: true,
                follow_symlinks: false,
                include: vec![],
                exclude: vec![],
                max_file_mib: 4096,
            },
            include: None,
            exclude: None,
            with_pixels: true,
        }
    }

    /// Read `path` header-only, as a recipe does when a later stage (sort_series, encode_video)
    /// reads the pixels back.
    fn header_only(path: &Path) -> Instance {
        let mut r = reader();
        r.with_pixels = false;
        let items = r.process(Item::file(path.to_path_buf())).unwrap();
        let (_, inst) = items.into_iter().next().unwrap().into_instance().unwrap();
        assert!(!inst.pixels_loaded && inst.obj.get(tags::PIXEL_DATA).is_none());
        inst
    }

    fn mtime(path: &Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    fn set_mtime(path: &Path, t: std::time::SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn pixels_are_not_read_back_from_an_input_file_that_changed_since_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.dcm");
        let file = |name: &[u8], px: &[u8]| {
            let mut tail = el(0x10, 0x10, b"PN", name);
            tail.extend(el(0x7FE0, 0x10, b"OB", px));
            small_file(&tail)
        };
        let original = file(b"Doe^John", &[1, 2, 3, 4]);
        std::fs::write(&p, &original).unwrap();
        let read_at = mtime(&p);

        // Unchanged: the pixels are read back.
        let mut inst = header_only(&p);
        ensure_pixels(&mut inst, &p).unwrap();
        assert!(inst.pixels_loaded && inst.obj.get(tags::PIXEL_DATA).is_some());

        // Another file of the same size and transfer syntax, its modification time put back:
        // the header fingerprint tells them apart.
        let mut inst = header_only(&p);
        let other = file(b"Roe^Jane", &[1, 2, 3, 4]);
        assert_eq!(other.len(), original.len());
        std::fs::write(&p, &other).unwrap();
        set_mtime(&p, read_at);
        let e = ensure_pixels(&mut inst, &p).unwrap_err();
        assert!(
            e.reason()
                .contains("the input file changed since it was read"),
            "{e}"
        );
        assert!(!inst.pixels_loaded && inst.obj.get(tags::PIXEL_DATA).is_none());

        // The same header with other pixels, written later: the modification time tells.
        std::fs::write(&p, &original).unwrap();
        set_mtime(&p, read_at);
        let mut inst = header_only(&p);
        std::fs::write(&p, file(b"Doe^John", &[9, 9, 9, 9])).unwrap();
        set_mtime(&p, read_at + std::time::Duration::from_secs(2));
        let e = ensure_pixels(&mut inst, &p).unwrap_err();
        assert!(
            e.reason()
                .contains("the input file changed since it was read"),
            "{e}"
        );

        // Another size.
        std::fs::write(&p, &original).unwrap();
        let mut inst = header_only(&p);
        std::fs::write(&p, file(b"Doe^John", &[1, 2, 3, 4, 5, 6])).unwrap();
        let e = ensure_pixels(&mut inst, &p).unwrap_err();
        assert!(
            e.reason()
                .contains("the input file changed since it was read"),
            "{e}"
        );
    }

    #[test]
    fn a_file_deleted_after_discovery_fails_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gone.dcm");
        std::fs::write(&p, small_file(&[])).unwrap();
        let found = reader().count(&[dir.path().to_path_buf()]);
        assert_eq!(found, 1);
        std::fs::remove_file(&p).unwrap();
        let e = reader().process(Item::file(p.clone())).unwrap_err();
        assert!(
            matches!(e, ItemError::Failed(_)) && e.reason().contains("cannot read the file"),
            "{e}"
        );
        let e = open_dicom(&p, true).unwrap_err();
        assert!(e.reason().contains("cannot open the file"), "{e}");
    }

    #[test]
    fn a_file_replaced_by_a_folder_after_discovery_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.dcm");
        std::fs::create_dir(&p).unwrap();
        let e = reader().process(Item::file(p)).unwrap_err();
        assert!(e.reason().contains("not a regular file any more"), "{e}");
    }

    /// A file meta group with the given transfer syntax (None: no (0002,0010)), then `ds`.
    fn file_with_ts(ts: Option<&[u8]>, ds: &[u8]) -> Vec<u8> {
        let mut meta = el(2, 1, b"OB", &[0, 1]);
        meta.extend(el(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"));
        meta.extend(el(2, 3, b"UI", b"1.2.3.4\0"));
        if let Some(ts) = ts {
            meta.extend(el(2, 0x10, b"UI", ts));
        }
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend(el(2, 0, b"UL", &(meta.len() as u32).to_le_bytes()));
        f.extend(meta);
        f.extend_from_slice(ds);
        f
    }

    #[test]
    fn a_lying_length_after_a_meta_group_without_transfer_syntax_is_refused() {
        // Found by the hostile-corpus test: the fallback reader parsed the data set unchecked
        // and spent minutes filling an 859 MB buffer.
        let mut ds = el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
        ds.extend(el(8, 0x18, b"UI", b"1.2.3.4\0"));
        ds.extend_from_slice(&[0x10, 0, 0x10, 0, b'O', b'B', 0, 0]);
        ds.extend_from_slice(&0x3333_3330u32.to_le_bytes());
        ds.extend_from_slice(&[0u8; 64]);
        let e = open_bytes(&file_with_ts(None, &ds)).unwrap_err();
        assert!(e.reason().contains("declares 858993456 bytes"), "{e}");
    }

    /// A meta group without (0002,0000), then `ds`.
    fn file_without_group_length(ds: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend(el(2, 1, b"OB", &[0, 1]));
        f.extend(el(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"));
        f.extend(el(2, 3, b"UI", b"1.2.3.4\0"));
        f.extend(el(2, 0x10, b"UI", b"1.2.840.10008.1.2.1\0"));
        f.extend_from_slice(ds);
        f
    }

    #[test]
    fn a_meta_group_without_its_group_length_is_rebuilt_and_the_data_set_still_checked() {
        let mut ds = el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
        ds.extend(el(8, 0x18, b"UI", b"1.2.3.4\0"));
        let f = file_without_group_length(&ds);
        let fixed = repaired_meta(&f, 132).expect("rebuilt");
        assert_eq!(&fixed[132..140], &[2, 0, 0, 0, b'U', b'L', 4, 0]);
        let obj = open_bytes(&f).unwrap();
        assert_eq!(obj.meta().transfer_syntax(), "1.2.840.10008.1.2.1");
        // A lying length after it is refused as in any file.
        let mut lying = ds.clone();
        lying.extend_from_slice(&[0x10, 0, 0x10, 0, b'O', b'B', 0, 0]);
        lying.extend_from_slice(&0x3333_3330u32.to_le_bytes());
        lying.extend_from_slice(&[0u8; 64]);
        let e = open_bytes(&file_without_group_length(&lying)).unwrap_err();
        assert!(
            e.reason().contains("(0010,0010) declares 858993456 bytes"),
            "{e}"
        );
        // A right meta group is left as it is.
        assert!(repaired_meta(&small_file(&[]), 132).is_none());
    }

    #[test]
    fn a_deflated_data_set_nested_too_deep_is_refused() {
        use std::io::Write;
        let mut ds = el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
        ds.extend(el(8, 0x18, b"UI", b"1.2.3.4\0"));
        ds.extend(nested(1000, false));
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&ds).unwrap();
        let z = z.finish().unwrap();
        let e = open_bytes(&file_with_ts(Some(b"1.2.840.10008.1.2.1.99"), &z)).unwrap_err();
        assert!(e.reason().contains("nested more than 128"), "{e}");
        // The same data set, shallow, still reads.
        let mut ds = el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
        ds.extend(el(8, 0x18, b"UI", b"1.2.3.4\0"));
        ds.extend(nested(5, false));
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&ds).unwrap();
        let z = z.finish().unwrap();
        open_bytes(&file_with_ts(Some(b"1.2.840.10008.1.2.1.99"), &z)).unwrap();
    }

    #[test]
    fn an_unknown_vr_is_read_with_a_4_byte_length_as_the_parser_does() {
        // Found by the hostile-corpus test: a flipped VR byte in the meta group made dicom-rs
        // read a 775 MB length the check had taken as a 2-byte one.
        let mut f = small_file(&[]);
        let at = f.windows(4).position(|w| w == b"UI\x1a\0").unwrap(); // (0002,0002)
        f[at..at + 2].copy_from_slice(b"ZZ");
        let e = open_bytes(&f).unwrap_err();
        assert!(e.reason().contains("(0002,0002) declares"), "{e}");
    }

    #[test]
    fn a_sequence_of_defined_length_past_the_end_of_the_file_is_refused() {
        // Found by the hostile-corpus test: the check walked into such a sequence unchecked
        // and the parser, taking the element as OB, filled a 3.4 GB buffer for minutes.
        let mut tail = vec![0x40, 0x00, 0x30, 0xA7, b'S', b'Q', 0, 0];
        tail.extend_from_slice(&0xCF00_00FFu32.to_le_bytes());
        tail.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        tail.extend(el(8, 0x100, b"SH", b"LEAFLEAF"));
        let e = open_bytes(&small_file(&tail)).unwrap_err();
        assert!(
            e.reason().contains("(0040,A730) declares 3472883967 bytes"),
            "{e}"
        );
    }
}
