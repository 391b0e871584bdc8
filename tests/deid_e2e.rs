//! End-to-end de-identification: the shipped recipes (`deid-safe-harbor`, `deid-longitudinal`)
//! run by the binary over synthetic studies with planted PHI (`deidentify::testgen`) and over the
//! shared corpus. What a user relies on: no planted value survives anywhere, references still
//! resolve, pseudonyms are one per patient, intervals survive a date shift, pixels are untouched,
//! outputs are valid DICOM, and the same secret gives the same bytes however many threads run.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use dcmflow_stages::deidentify::{dates, testgen};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

const SECRET: &str = "e2e-test-project-secret-0f3a9c";
const RECIPES: [&str; 2] = [
    "recipes/deid-safe-harbor.yaml",
    "recipes/deid-longitudinal.yaml",
];

/// Write the synthetic studies into `dir`; returns the generated set and each file's path.
fn write_generated(dir: &Path) -> (testgen::Generated, Vec<PathBuf>) {
    let gen = testgen::generate();
    std::fs::create_dir_all(dir).unwrap();
    let mut paths = Vec::new();
    for (k, g) in gen.instances.iter().enumerate() {
        let p = dir.join(format!("in{k:02}.dcm"));
        std::fs::write(&p, testgen::to_bytes(&g.obj).unwrap()).unwrap();
        paths.push(p);
    }
    (gen, paths)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn dcm_outputs(out: &Path) -> Vec<PathBuf> {
    files_below(out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect()
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
}

/// id_old -> id_new from a linkage file.
fn linkage(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit_once(','))
        .map(|(a, b)| (a.trim_matches('"').to_string(), b.to_string()))
        .collect()
}

/// An element's value as text; UN values (read without their VR) are taken as their bytes.
fn elem_str(e: &dicom_object::mem::InMemElement) -> Option<String> {
    let v = if e.vr() == VR::UN {
        String::from_utf8_lossy(&e.value().to_bytes().ok()?).into_owned()
    } else {
        e.to_str().ok()?.into_owned()
    };
    Some(v.trim_end_matches(['\0', ' ']).to_string())
}

fn str_of(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    o.get(tag).and_then(elem_str)
}

/// Every element at every depth, with a path of tags and item indexes.
fn walk<'a>(
    o: &'a InMemDicomObject,
    path: &str,
    out: &mut Vec<(String, &'a dicom_object::mem::InMemElement)>,
) {
    for e in o.iter() {
        let t = e.header().tag;
        let here = format!("{path}({:04X},{:04X})", t.0, t.1);
        out.push((here.clone(), e));
        if let Some(items) = e.value().items() {
            for (i, it) in items.iter().enumerate() {
                walk(it, &format!("{here}[{i}]."), out);
            }
        }
    }
}

/// (path, value) of every element with this tag, at every depth.
fn values_at_depth(o: &InMemDicomObject, tag: Tag) -> Vec<(String, String)> {
    let mut all = Vec::new();
    walk(o, "", &mut all);
    all.into_iter()
        .filter(|(_, e)| e.header().tag == tag)
        .filter_map(|(p, e)| elem_str(e).map(|v| (p, v)))
        .collect()
}

/// Every textual value (all depths, UIDs and binary VRs left out), for PHI searches.
fn text_values(o: &InMemDicomObject) -> Vec<String> {
    let mut all = Vec::new();
    walk(o, "", &mut all);
    all.into_iter()
        .filter(|(_, e)| {
            matches!(
                e.vr(),
                VR::AE
                    | VR::AS
                    | VR::CS
                    | VR::DA
                    | VR::DS
                    | VR::DT
                    | VR::IS
                    | VR::LO
                    | VR::LT
                    | VR::PN
                    | VR::SH
                    | VR::ST
                    | VR::TM
                    | VR::UC
                    | VR::UR
                    | VR::UT
                    | VR::UN
            )
        })
        .filter_map(|(_, e)| elem_str(e))
        .collect()
}

fn contains_ci(haystack: &[u8], needle: &str) -> bool {
    let n = needle.to_ascii_lowercase().into_bytes();
    !n.is_empty()
        && haystack
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(&n))
}

fn pixel_bytes(p: &Path) -> Vec<u8> {
    let o = dicom_object::open_file(p).unwrap();
    o.element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec()
}

/// dcmdump must read the whole file without an error.
fn assert_dcmdump_reads(p: &Path) {
    let o = Command::new("dcmdump").arg("-q").arg(p).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.lines().any(|l| l.starts_with("E:")),
        "dcmdump cannot read {}: {err}",
        p.display()
    );
}

/// Lines of dciodvfy's report that start with "Error".
fn dciodvfy_errors(p: &Path) -> Vec<String> {
    let o = Command::new("dciodvfy").arg(p).output().unwrap();
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    t.lines()
        .filter(|l| l.starts_with("Error"))
        .map(String::from)
        .collect()
}

fn run_recipe(recipe: &str, input: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        recipe,
        "--input",
        s(input),
        "--output",
        s(out),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    dcmflow_with_secret(&args, SECRET)
}

#[test]
fn deid_recipes_leave_no_planted_phi_keep_references_pseudonyms_intervals_and_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (gen, in_paths) = write_generated(&input);
    let has_dcmdump = tool("dcmdump");
    let has_dciodvfy = tool("dciodvfy");
    let mut original_errors: HashMap<usize, usize> = HashMap::new();

    for recipe in RECIPES {
        let name = Path::new(recipe).file_stem().unwrap().to_str().unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let link = dir.path().join(format!("link-{name}"));
        let o = run_recipe(
            recipe,
            &input,
            &out,
            &[
                "--set",
                &format!("linkage={}", s(&link)),
                "--set",
                "burned_in=allow",
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{recipe}: {}", text(&o));
        let outputs = dcm_outputs(&out);
        assert_eq!(
            outputs.len(),
            gen.instances.len(),
            "{recipe}: one output per input"
        );

        // Not one planted value or original UID, in any output byte or in run.json.
        let mut files = outputs.clone();
        files.push(out.join("run.json"));
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            for v in gen.planted_values.iter().chain(&gen.planted_uids) {
                assert!(
                    !contains_ci(&bytes, v),
                    "{recipe}: {} still holds a planted value of {} bytes",
                    f.display(),
                    v.len()
                );
            }
        }

        let uid_map = linkage(&link.join("uid_map.csv"));
        let patient_map = linkage(&link.join("patient_map.csv"));
        let parsed: Vec<(PathBuf, dicom_object::DefaultDicomObject)> = outputs
            .iter()
            .map(|p| (p.clone(), dicom_object::open_file(p).unwrap()))
            .collect();
        let by_sop: HashMap<String, usize> = parsed
            .iter()
            .enumerate()
            .map(|(i, (_, o))| (str_of(o, tags::SOP_INSTANCE_UID).unwrap(), i))
            .collect();
        let studies: BTreeSet<String> = parsed
            .iter()
            .map(|(_, o)| str_of(o, tags::STUDY_INSTANCE_UID).unwrap())
            .collect();
        let mut pseudonyms: BTreeMap<usize, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut study_dates: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();

        for (k, g) in gen.instances.iter().enumerate() {
            let new_sop = &uid_map[&g.sop_uid];
            let (path, obj) = &parsed[by_sop[new_sop]];
            assert_eq!(
                obj.meta()
                    .media_storage_sop_instance_uid()
                    .trim_end_matches('\0'),
                new_sop.as_str(),
                "file meta follows the new SOPInstanceUID"
            );

            // Every ReferencedSOPInstanceUID, at every depth, is the mapped original and points at
            // an output instance (or, in ReferencedStudySequence, an output study).
            let orig_refs: HashMap<String, String> =
                values_at_depth(&g.obj, tags::REFERENCED_SOP_INSTANCE_UID)
                    .into_iter()
                    .collect();
            let refs = values_at_depth(obj, tags::REFERENCED_SOP_INSTANCE_UID);
            assert!(
                refs.iter().any(|(p, _)| p.starts_with("(0008,1140)[0].")),
                "{recipe}: ReferencedImageSequence kept"
            );
            for (p, v) in &refs {
                let orig = orig_refs
                    .get(p)
                    .unwrap_or_else(|| panic!("{recipe}: {p} was not in the original"));
                assert_eq!(v, &uid_map[orig], "{recipe}: {p} follows the UID map");
                assert!(
                    by_sop.contains_key(v) || studies.contains(v),
                    "{recipe}: {p} resolves to nothing in the output"
                );
            }
            let img_ref = refs
                .iter()
                .find(|(p, _)| p == "(0008,1140)[0].(0008,1155)")
                .unwrap();
            assert_eq!(
                img_ref.1,
                str_of(
                    &parsed[by_sop[&uid_map[&g.references]]].1,
                    tags::SOP_INSTANCE_UID
                )
                .unwrap(),
                "{recipe}: the image reference points at the instance the original pointed at"
            );

            let pid = str_of(obj, tags::PATIENT_ID).unwrap();
            let pname = str_of(obj, tags::PATIENT_NAME).unwrap_or_default();
            let orig_pid = str_of(&g.obj, tags::PATIENT_ID).unwrap();
            assert_eq!(patient_map[&orig_pid], pid, "{recipe}: patient_map.csv");
            pseudonyms
                .entry(g.patient)
                .or_default()
                .insert((pid, pname));
            study_dates
                .entry((g.patient, g.study))
                .or_default()
                .insert(str_of(obj, tags::STUDY_DATE).unwrap());

            assert_eq!(
                str_of(obj, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
                Some("YES")
            );
            let codes: Vec<String> = obj
                .get(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
                .and_then(|e| e.value().items())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|it| str_of(it, tags::CODE_VALUE))
                        .collect()
                })
                .unwrap_or_default();
            assert!(codes.iter().any(|c| c == "113100"), "{recipe}: {codes:?}");

            assert_eq!(
                pixel_bytes(path),
                pixel_bytes(&in_paths[k]),
                "{recipe}: pixel data unchanged"
            );
            if has_dcmdump {
                assert_dcmdump_reads(path);
            }
            if has_dciodvfy {
                let before = *original_errors
                    .entry(k)
                    .or_insert_with(|| dciodvfy_errors(&in_paths[k]).len());
                let after = dciodvfy_errors(path);
                assert!(
                    after.len() <= before,
                    "{recipe}: dciodvfy finds {} errors in {} (original: {before}): {after:?}",
                    after.len(),
                    path.display()
                );
            }
        }

        // One pseudonym per patient, different patients apart.
        let mut all_ids = BTreeSet::new();
        for (p, set) in &pseudonyms {
            assert_eq!(set.len(), 1, "{recipe}: patient {p} has {set:?}");
            assert!(all_ids.insert(set.iter().next().unwrap().0.clone()));
        }
        assert_eq!(all_ids.len(), 3);

        for p in 0..3 {
            let d0: Vec<_> = study_dates[&(p, 0)].iter().cloned().collect();
            let d1: Vec<_> = study_dates[&(p, 1)].iter().cloned().collect();
            assert_eq!((d0.len(), d1.len()), (1, 1), "one StudyDate per study");
            let orig = |st: usize| {
                gen.instances
                    .iter()
                    .find(|g| g.patient == p && g.study == st)
                    .unwrap()
                    .study_date
                    .clone()
            };
            if name == "deid-longitudinal" {
                // Find the original interval by stepping day by day (both directions are tried).
                let (o0, o1) = (orig(0), orig(1));
                let interval = (-400..=400)
                    .find(|&n| dates::shift_da(&o0, n).as_deref() == Some(o1.as_str()))
                    .unwrap();
                assert_ne!(d0[0], o0, "dates are shifted");
                assert_eq!(
                    dates::shift_da(&d0[0], interval).as_deref(),
                    Some(d1[0].as_str()),
                    "{recipe}: patient {p}: the interval between studies is preserved"
                );
            } else {
                assert!(
                    d0[0].ends_with("0101") && d1[0].ends_with("0101"),
                    "year only"
                );
            }
        }
    }
}

#[test]
fn same_inputs_and_secret_give_byte_identical_outputs_with_one_or_four_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_generated(&input);
    for recipe in RECIPES {
        let mut sums = Vec::new();
        for (k, threads) in ["1", "4", "4"].iter().enumerate() {
            let out = dir.path().join(format!("out{k}"));
            let _ = std::fs::remove_dir_all(&out);
            let o = run_recipe(
                recipe,
                &input,
                &out,
                &["--threads", threads, "--set", "burned_in=allow"],
            );
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            let c: Vec<_> = checksums(&out)
                .into_iter()
                .filter(|(p, _)| p != Path::new("run.json"))
                .collect();
            assert_eq!(c.len(), 24);
            sums.push(c);
        }
        assert_eq!(
            sums[0], sums[1],
            "{recipe}: --threads 1 and --threads 4 agree"
        );
        assert_eq!(sums[1], sums[2], "{recipe}: two runs agree");
    }
}

#[test]
fn text_bearing_secondary_captures_are_quarantined_unless_burned_in_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_generated(&input);
    let out = dir.path().join("out");
    let o = run_recipe(RECIPES[0], &input, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(dcm_outputs(&out).is_empty(), "nothing written");
    let r = report(&out);
    let problems = r["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 24);
    for p in problems {
        assert_eq!(p["outcome"], "quarantined");
        assert!(p["reason"]
            .as_str()
            .unwrap()
            .contains("Modality (0008,0060)"));
    }
}

#[test]
fn deid_without_a_secret_exits_2_and_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_generated(&input);
    for recipe in RECIPES {
        let out = dir.path().join("out");
        let o = dcmflow(&["run", recipe, "--input", s(&input), "--output", s(&out)]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("DCMFLOW_SECRET") && t.contains("--secret-file"),
            "{t}"
        );
        assert!(dcm_outputs(&out).is_empty());
    }
}

#[test]
fn ephemeral_secret_runs_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_generated(&input);
    let out = dir.path().join("out");
    let o = dcmflow(&[
        "run",
        RECIPES[1],
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--set",
        "ephemeral_secret=true",
        "--set",
        "burned_in=allow",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    assert_eq!(dcm_outputs(&out).len(), 24);
    assert_eq!(report(&out)["secret_source"], "ephemeral");
}

#[test]
fn the_secret_never_appears_in_run_json_or_messages() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_generated(&input);
    for (k, recipe) in RECIPES.iter().enumerate() {
        let out = dir.path().join(format!("out{k}"));
        // Not quiet, and with quarantines, so there are messages to look at.
        let o = dcmflow_with_secret(
            &["run", recipe, "--input", s(&input), "--output", s(&out)],
            SECRET,
        );
        assert_eq!(o.status.code(), Some(1));
        let t = text(&o);
        assert!(t.contains("quarantined"), "{t}");
        assert!(!t.contains(SECRET));
        let json = std::fs::read(out.join("run.json")).unwrap();
        assert!(!contains_ci(&json, SECRET));
        assert_eq!(report(&out)["secret_source"], "env");
    }
}

#[test]
fn dry_run_writes_nothing_and_prints_action_counts_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (gen, _) = write_generated(&input);
    let out = dir.path().join("out");
    let link = dir.path().join("link");
    let o = dcmflow_with_secret(
        &[
            "run",
            RECIPES[1],
            "--input",
            s(&input),
            "--output",
            s(&out),
            "--set",
            "burned_in=allow",
            "--set",
            &format!("linkage={}", s(&link)),
            "--dry-run",
        ],
        SECRET,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!out.exists(), "no output folder");
    assert!(!link.exists(), "no linkage files");
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let counts = &printed["summaries"]["deid"]["actions_per_attribute"];
    let name_actions = counts["(0010,0010) PatientName"].as_object().unwrap();
    let total: u64 = name_actions.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 24, "every PatientName counted once: {counts}");
    assert!(counts.as_object().unwrap().len() > 20);
    let all = text(&o);
    for v in gen.planted_values.iter().chain(&gen.planted_uids) {
        assert!(
            !contains_ci(all.as_bytes(), v),
            "a planted value was printed"
        );
    }
    assert!(!all.contains(SECRET));
}

/// SOPInstanceUID, or the file meta's MediaStorageSOPInstanceUID for a dataset without one.
fn sop_of(obj: &dicom_object::DefaultDicomObject) -> Option<String> {
    str_of(obj, tags::SOP_INSTANCE_UID).or_else(|| {
        let m = obj
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches(['\0', ' ']);
        (!m.is_empty()).then(|| m.to_string())
    })
}

/// The corpus files' PatientName / PatientID values at every depth, by original SOPInstanceUID.
fn corpus_identities(files: &[PathBuf]) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    for f in files {
        let Ok(obj) = dcmflow_stages::read_dicom::open_dicom(f, false) else {
            continue;
        };
        let Some(sop) = sop_of(&obj) else {
            continue;
        };
        let entry = out.entry(sop).or_default();
        for tag in [tags::PATIENT_NAME, tags::PATIENT_ID] {
            for (_, v) in values_at_depth(&obj, tag) {
                let v = v.trim().to_string();
                // Placeholders that upstream anonymisers left are not identities (and the
                // profile itself writes them as dummies).
                let placeholder = ["anonymized", "anonymous"].contains(&v.to_lowercase().as_str());
                if v.len() >= 3 && !placeholder {
                    entry.insert(v);
                }
            }
        }
    }
    out
}

#[test]
#[cfg_attr(not(dcmflow_corpus), ignore = "needs ../shared/corpus (see README)")]
fn corpus_through_both_deid_recipes_accounts_for_every_file_and_leaks_no_patient_names() {
    let corpus = corpus();
    let corpus = corpus.canonicalize().unwrap();
    let corpus_files = files_below(&corpus);
    let identities = corpus_identities(&corpus_files);
    let has_dcmdump = tool("dcmdump");
    let dir = tempfile::tempdir().unwrap();
    for recipe in RECIPES {
        let name = Path::new(recipe).file_stem().unwrap().to_str().unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let link = dir.path().join(format!("link-{name}"));
        let o = run_recipe(
            recipe,
            &corpus,
            &out,
            &[
                "--set",
                &format!("linkage={}", s(&link)),
                "--report-paths",
                "plain",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "broken files: {}", text(&o));
        let r = report(&out);
        let mut accounted: HashMap<PathBuf, String> = HashMap::new();
        for list in ["problems", "skipped"] {
            for p in r[list].as_array().unwrap() {
                assert!(!p["reason"].as_str().unwrap().is_empty(), "{p}");
                accounted.insert(
                    PathBuf::from(p["input"].as_str().unwrap()),
                    p["outcome"].as_str().unwrap().to_string(),
                );
            }
        }
        let uid_map = linkage(&link.join("uid_map.csv"));
        let mut back: HashMap<&str, Vec<&str>> = HashMap::new();
        for (old, new) in &uid_map {
            back.entry(new.as_str()).or_default().push(old.as_str());
        }
        let outputs = dcm_outputs(&out);
        assert_eq!(outputs.len() as u64, r["outputs"].as_u64().unwrap());
        let mut written = BTreeSet::new();
        let mut checked = 0;
        for p in &outputs {
            let obj = dicom_object::open_file(p)
                .unwrap_or_else(|e| panic!("{recipe}: {}: {e}", p.display()));
            if has_dcmdump {
                assert_dcmdump_reads(p);
            }
            let sop = sop_of(&obj).unwrap();
            written.insert(sop.clone());
            // A well-known instance UID (e.g. a standard color palette) is kept as it is.
            let originals = match back.get(sop.as_str()) {
                Some(o) => o.clone(),
                None if sop.starts_with("1.2.840.10008.") => vec![sop.as_str()],
                None => panic!("{recipe}: {} not in uid_map.csv", p.display()),
            };
            let text = text_values(&obj).join("\n");
            assert!(
                !contains_ci(text.as_bytes(), "ZZZ"),
                "{recipe}: {} holds a ZZZ test-patient name",
                p.display()
            );
            for orig in originals {
                for v in identities.get(orig).into_iter().flatten() {
                    checked += 1;
                    assert!(
                        !contains_ci(text.as_bytes(), v),
                        "{recipe}: {} holds its original PatientName or PatientID ({} chars)",
                        p.display(),
                        v.len()
                    );
                }
            }
        }
        assert!(
            checked >= 30,
            "{recipe}: only {checked} original identities checked"
        );
        // Every input is written, quarantined, skipped or failed with a reason.
        for f in &corpus_files {
            if accounted.contains_key(f) {
                continue;
            }
            let fname = f.file_name().unwrap().to_str().unwrap();
            let obj = dcmflow_stages::read_dicom::open_dicom(f, false).unwrap_or_else(|e| {
                panic!("{recipe}: {} unreadable but not reported: {e}", f.display())
            });
            if fname.starts_with("DICOMDIR") {
                continue; // a file-set index: its instances are checked one by one
            }
            let sop = sop_of(&obj)
                .unwrap_or_else(|| panic!("{recipe}: {} has no SOPInstanceUID", f.display()));
            let new = match uid_map.get(&sop) {
                Some(n) => n.clone(),
                None if sop.starts_with("1.2.840.10008.") => sop, // well-known, kept
                None => panic!("{recipe}: {} neither written nor reported", f.display()),
            };
            assert!(
                written.contains(&new),
                "{recipe}: {} not written",
                f.display()
            );
        }
    }
}
