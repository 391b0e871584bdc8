//! The recipe format, version 1: parse the envelope strictly with serde-saphyr, resolve typed
//! params (defaults, `--set`), substitute `${param}` references at the value level (a value is
//! always part of the one scalar that referred to it, see [`crate::interpolate`]), and hand each
//! stage's `with` to its kind's typed parser. Every problem becomes a [`Diagnostic`] with line and
//! column in the recipe as written; as many as can be found are reported together.
//!
//! ```yaml
//! version: 1
//! name: copy
//! params:
//!   layout: { type: string, default: "{SOPInstanceUID}.dcm", description: Output path template }
//! stages:
//!   - id: read
//!     type: read_dicom
//!   - id: write
//!     type: write_dicom
//!     inputs: [read]
//!     with: { path: "${layout}" }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;

use schemars::JsonSchema;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use crate::diagnostic::{did_you_mean, humanize_serde_message, Diagnostic, Diagnostics};
use crate::interpolate::{self, OffsetMap};

/// The recipe format versions this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// The text of a recipe and where it came from.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file name as the user gave it (used in messages).
    pub file: String,
    /// The text as written.
    pub raw: String,
    /// The text with `${param}` references substituted (same line structure as `raw`; each
    /// scalar that held a reference rewritten as one scalar with the value in it).
    pub text: String,
    /// Takes positions in `text` back to `raw`.
    pub map: OffsetMap,
}

impl Source {
    /// A diagnostic at a position.
    pub fn diag(
        &self,
        line: u64,
        column: u64,
        stage: Option<(String, String)>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            stage,
            message: message.into(),
        }
    }

    /// A diagnostic from a serde-saphyr error in `text`, placed in `raw`.
    pub fn diag_from_yaml(
        &self,
        err: &serde_saphyr::Error,
        stage: Option<(String, String)>,
    ) -> Diagnostic {
        let (line, column) = err
            .location()
            .map(|l| self.raw_position(l.line(), l.column()))
            .unwrap_or((0, 0));
        self.diag(line, column, stage, yaml_message(err))
    }

    /// Where a 1-based (line, column) of `text` is in `raw`.
    pub fn raw_position(&self, line: u64, column: u64) -> (u64, u64) {
        self.map.to_raw(&self.raw, &self.text, line, column)
    }
}

/// The plain message of a serde-saphyr error, without its position or snippet.
pub fn yaml_message(err: &serde_saphyr::Error) -> String {
    let raw = match err {
        serde_saphyr::Error::Message { msg, .. } => msg.clone(),
        other => other.without_snippet().to_string(),
    };
    let mut msg = raw.lines().next().unwrap_or("").to_string();
    if let Some(pos) = msg.rfind(" at line ") {
        msg.truncate(pos);
    }
    humanize_serde_message(&msg)
}

/// The type of a recipe param.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any text.
    String,
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// true or false.
    Bool,
    /// A file or folder path.
    Path,
}

/// A param declared by a recipe.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDecl {
    /// The param's type; `--set` values are checked against it.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// The value used when `--set` does not give one. Without a default the param is required.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// What the param controls (shown by `dcmflow explain` and `validate`).
    #[serde(default)]
    pub description: String,
    /// When given, the only values allowed.
    #[serde(default)]
    pub choices: Option<Vec<serde_json::Value>>,
    /// Redact the value in run reports (for anything sensitive; the project secret itself is
    /// never a param).
    #[serde(default)]
    pub redact: bool,
}

/// One stage as declared (envelope only; `with` is parsed by the stage kind).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageDoc {
    /// Unique id of the stage, referenced by other stages' `inputs`.
    pub id: String,
    /// The stage kind (see `dcmflow stages`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Ids of the stages whose output this stage consumes.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// A note for readers of the recipe.
    #[serde(default)]
    pub description: Option<String>,
    /// The stage kind's settings.
    #[serde(default)]
    #[schemars(with = "serde_json::Value")]
    pub with: Option<IgnoredAny>,
}

/// The recipe document envelope (for the JSON Schema; parsing uses [`TopDoc`] with spans).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipeDoc {
    /// Recipe format version; this build reads version 1.
    pub version: u32,
    /// Short name of the recipe.
    #[serde(default)]
    pub name: Option<String>,
    /// What the recipe is for (quoted by `dcmflow explain`).
    #[serde(default)]
    pub description: Option<String>,
    /// Typed params, overridable with `--set name=value` and referenced as `${name}`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamDecl>,
    /// The stages of the graph.
    pub stages: Vec<StageDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopDoc {
    version: Spanned<u32>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<ParamDecl>>,
    stages: Spanned<Vec<Spanned<IgnoredAny>>>,
}

#[derive(Deserialize)]
struct LooseStage {
    #[serde(default)]
    id: Option<Spanned<String>>,
    #[serde(default, rename = "type")]
    kind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictStage {
    id: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    inputs: Vec<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    with: Option<Spanned<IgnoredAny>>,
}

/// A resolved param value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// Text or path.
    Str(String),
    /// Whole number.
    Int(i64),
    /// Number.
    Float(f64),
    /// Flag.
    Bool(bool),
}

impl ParamValue {
    /// The value as text (what it contributes inside a longer value).
    pub(crate) fn raw(&self) -> String {
        match self {
            ParamValue::Str(s) => s.clone(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => f.to_string(),
            ParamValue::Bool(b) => b.to_string(),
        }
    }
}

/// A resolved param.
#[derive(Clone, Debug)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its declaration.
    pub decl: ParamDecl,
    /// The value in force.
    pub value: ParamValue,
    /// Whether `--set` gave it.
    pub from_set: bool,
}

/// A stage's envelope, with positions.
#[derive(Clone, Debug)]
pub struct StageDecl {
    /// Index in `stages`.
    pub index: usize,
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Inputs with their positions.
    pub inputs: Vec<(String, u64, u64)>,
    /// Position of the stage.
    pub line: u64,
    /// Position of the stage.
    pub column: u64,
    /// Position of the `type` value.
    pub kind_pos: (u64, u64),
    /// Position of `with`, or of the stage when absent.
    pub with_pos: (u64, u64),
    /// Reader's note.
    pub description: Option<String>,
}

/// A parsed recipe: envelope checked, params resolved, references substituted.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The text.
    pub source: Source,
    /// SHA-256 of the text as written.
    pub sha256: String,
    /// Name (defaults to the file stem).
    pub name: String,
    /// Description.
    pub description: String,
    /// Params in name order.
    pub params: Vec<Param>,
    /// Stages in recipe order.
    pub stages: Vec<StageDecl>,
}

impl Recipe {
    /// Read and parse a recipe file with `--set` overrides.
    pub fn load(path: &Path, sets: &[(String, String)]) -> Result<Recipe, Diagnostics> {
        let file = path.display().to_string();
        let raw = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: file.clone(),
                line: 0,
                column: 0,
                stage: None,
                message: format!("cannot read the recipe: {e}"),
            }])
        })?;
        Recipe::parse(&file, raw, sets)
    }

    /// Parse recipe text (named `file` in messages) with `--set` overrides.
    pub fn parse(
        file: &str,
        raw: String,
        sets: &[(String, String)],
    ) -> Result<Recipe, Diagnostics> {
        let mut source = Source {
            file: file.to_string(),
            text: raw.clone(),
            raw,
            map: OffsetMap::default(),
        };
        let mut diags = Vec::new();
        // `${name}` is not valid inside YAML flow collections, so read the envelope with neutral
        // placeholders (same length, same lines, same names) before the params are known.
        let placeholders = interpolate::placeholders(&source.raw);
        let top: TopDoc = match serde_saphyr::from_str(&placeholders.text) {
            Ok(t) => t,
            Err(e) => return Err(Diagnostics(vec![source.diag_from_yaml(&e, None)])),
        };
        if top.version.value != FORMAT_VERSION {
            diags.push(source.diag(
                top.version.referenced.line(),
                top.version.referenced.column(),
                None,
                format!(
                    "recipe format version {} is not known to this build (it reads version {FORMAT_VERSION})",
                    top.version.value
                ),
            ));
        }

        let params = resolve_params(&source, &top.params, sets, &mut diags);
        let declared: Vec<&str> = top.params.keys().map(String::as_str).collect();
        let (text, map, problems) =
            interpolate::substitute(&source.raw, &placeholders, &params, &declared);
        source.text = text;
        source.map = map;
        let raw_lines: Vec<usize> = std::iter::once(0)
            .chain(source.raw.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        for p in problems {
            let (line, column) = interpolate::line_col(&source.raw, &raw_lines, p.offset);
            diags.push(source.diag(line, column, None, p.message));
        }
        // Name and description as substituted.
        let (name, description) = match serde_saphyr::from_str::<TopDoc>(&source.text) {
            Ok(t) => (t.name, t.description),
            Err(e) => {
                diags.push(source.diag_from_yaml(&e, None));
                (None, None)
            }
        };

        let mut stages = Vec::new();
        for (index, spanned) in top.stages.value.iter().enumerate() {
            let at = (spanned.referenced.line(), spanned.referenced.column());
            let loose: Option<LooseStage> =
                parse_stage_part(&source.text, index, None).ok().flatten();
            let label = loose.as_ref().map(|l| {
                (
                    l.id.as_ref()
                        .map(|s| s.value.clone())
                        .unwrap_or_else(|| format!("#{}", index + 1)),
                    l.kind.as_ref().map(|s| s.value.clone()).unwrap_or_default(),
                )
            });
            match parse_stage_part::<StrictStage>(&source.text, index, None) {
                Ok(Some(s)) => stages.push(StageDecl {
                    index,
                    id: s.id.value.clone(),
                    kind: s.kind.value.clone(),
                    inputs: s
                        .inputs
                        .iter()
                        .map(|i| {
                            let (line, column) =
                                source.raw_position(i.referenced.line(), i.referenced.column());
                            (i.value.clone(), line, column)
                        })
                        .collect(),
                    line: at.0,
                    column: at.1,
                    kind_pos: source
                        .raw_position(s.kind.referenced.line(), s.kind.referenced.column()),
                    with_pos: s
                        .with
                        .as_ref()
                        .map(|w| source.raw_position(w.referenced.line(), w.referenced.column()))
                        .unwrap_or(at),
                    description: s.description,
                }),
                Ok(None) => {
                    diags.push(source.diag(at.0, at.1, label, "stage entry could not be read"))
                }
                Err(e) => diags.push(source.diag_from_yaml(&e, label)),
            }
        }
        if top.stages.value.is_empty() {
            diags.push(source.diag(
                top.stages.referenced.line(),
                top.stages.referenced.column(),
                None,
                "the recipe has no stages",
            ));
        }

        if !diags.is_empty() {
            let mut d = Diagnostics(diags);
            d.sort();
            return Err(d);
        }
        let sha256 = hex(&Sha256::digest(source.raw.as_bytes()));
        let name = name.unwrap_or_else(|| {
            Path::new(&source.file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(Recipe {
            source,
            sha256,
            name,
            description: description.unwrap_or_default(),
            params,
            stages,
        })
    }

    /// The value of a param, if declared.
    pub fn param(&self, name: &str) -> Option<&ParamValue> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// Params for reports: redacted ones replaced.
    pub fn report_params(&self) -> BTreeMap<String, serde_json::Value> {
        self.params
            .iter()
            .map(|p| {
                let v = if p.decl.redact {
                    serde_json::Value::String("<redacted>".into())
                } else {
                    serde_json::to_value(&p.value).unwrap_or(serde_json::Value::Null)
                };
                (p.name.clone(), v)
            })
            .collect()
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn resolve_params(
    source: &Source,
    decls: &BTreeMap<String, Spanned<ParamDecl>>,
    sets: &[(String, String)],
    diags: &mut Vec<Diagnostic>,
) -> Vec<Param> {
    for (key, _) in sets {
        if !decls.contains_key(key) {
            let hint = did_you_mean(key, decls.keys().map(String::as_str))
                .map(|b| format!(", did you mean \"{b}\"?"))
                .unwrap_or_else(|| {
                    let names: Vec<&str> = decls.keys().map(String::as_str).collect();
                    if names.is_empty() {
                        "; this recipe declares no params".to_string()
                    } else {
                        format!("; its params are: {}", names.join(", "))
                    }
                });
            diags.push(source.diag(
                0,
                0,
                None,
                format!("--set {key}: the recipe has no param \"{key}\"{hint}"),
            ));
        }
    }
    let mut out = Vec::new();
    for (name, spanned) in decls {
        let decl = &spanned.value;
        let (line, col) = (spanned.referenced.line(), spanned.referenced.column());
        let set = sets.iter().rev().find(|(k, _)| k == name);
        let value = match set {
            Some((_, text)) => match parse_param_text(decl.ty, text) {
                Ok(v) => Some(v),
                Err(e) => {
                    diags.push(source.diag(line, col, None, format!("--set {name}: {e}")));
                    None
                }
            },
            None => match &decl.default {
                Some(v) => match param_from_json(decl.ty, v) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        diags.push(source.diag(
                            line,
                            col,
                            None,
                            format!("param \"{name}\": default {e}"),
                        ));
                        None
                    }
                },
                None => {
                    diags.push(source.diag(
                        line,
                        col,
                        None,
                        format!("param \"{name}\" has no default; give it with --set {name}=..."),
                    ));
                    None
                }
            },
        };
        let Some(value) = value else { continue };
        if let Some(choices) = &decl.choices {
            let ok = choices.iter().any(|c| {
                param_from_json(decl.ty, c)
                    .map(|c| c == value)
                    .unwrap_or(false)
            });
            if !ok {
                let list: Vec<String> = choices
                    .iter()
                    .map(|c| c.to_string().trim_matches('"').to_string())
                    .collect();
                diags.push(source.diag(
                    line,
                    col,
                    None,
                    format!(
                        "param \"{name}\": {} is not one of: {}",
                        value.raw(),
                        list.join(", ")
                    ),
                ));
                continue;
            }
        }
        out.push(Param {
            name: name.clone(),
            decl: decl.clone(),
            value,
            from_set: set.is_some(),
        });
    }
    out
}

fn parse_param_text(ty: ParamType, text: &str) -> Result<ParamValue, String> {
    match ty {
        ParamType::String | ParamType::Path => Ok(ParamValue::Str(text.to_string())),
        ParamType::Int => text
            .trim()
            .parse()
            .map(ParamValue::Int)
            .map_err(|_| format!("\"{text}\" is not a whole number")),
        ParamType::Float => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(ParamValue::Float)
            .ok_or_else(|| format!("\"{text}\" is not a number")),
        ParamType::Bool => match text.trim() {
            "true" | "yes" | "1" => Ok(ParamValue::Bool(true)),
            "false" | "no" | "0" => Ok(ParamValue::Bool(false)),
            _ => Err(format!("\"{text}\" is not true or false")),
        },
    }
}

fn param_from_json(ty: ParamType, v: &serde_json::Value) -> Result<ParamValue, String> {
    use serde_json::Value as J;
    match (ty, v) {
        (ParamType::String | ParamType::Path, J::String(s)) => Ok(ParamValue::Str(s.clone())),
        (ParamType::String | ParamType::Path, J::Number(n)) => Ok(ParamValue::Str(n.to_string())),
        (ParamType::Int, J::Number(n)) if n.is_i64() => {
            Ok(ParamValue::Int(n.as_i64().unwrap_or(0)))
        }
        (ParamType::Int, J::String(s)) => parse_param_text(ty, s),
        (ParamType::Float, J::Number(n)) => Ok(ParamValue::Float(n.as_f64().unwrap_or(0.0))),
        (ParamType::Float, J::String(s)) => parse_param_text(ty, s),
        (ParamType::Bool, J::Bool(b)) => Ok(ParamValue::Bool(*b)),
        (ParamType::Bool, J::String(s)) => parse_param_text(ty, s),
        (ty, v) => Err(format!("{v} is not of type {ty:?}").to_lowercase()),
    }
}

thread_local! {
    static TARGET: RefCell<(usize, Option<&'static str>)> = const { RefCell::new((0, None)) };
}

/// Deserialize one part of stage `index` of the recipe text: the whole entry (`field` None) or
/// one of its fields (e.g. `with`). Errors carry line and column in the whole text.
pub fn parse_stage_part<T: DeserializeOwned>(
    text: &str,
    index: usize,
    field: Option<&'static str>,
) -> Result<Option<T>, serde_saphyr::Error> {
    TARGET.with(|t| *t.borrow_mut() = (index, field));
    let top: AtTop<T> = serde_saphyr::from_str(text)?;
    Ok(top.0)
}

/// Parse the `with` of stage `index` into a stage kind's config type. A missing `with` is an
/// empty mapping, so every default applies.
pub fn parse_with<T: DeserializeOwned>(
    source: &Source,
    index: usize,
) -> Result<T, serde_saphyr::Error> {
    match parse_stage_part::<Option<T>>(&source.text, index, Some("with"))? {
        Some(Some(v)) => Ok(v),
        _ => serde_saphyr::from_str("{}"),
    }
}

struct AtTop<T>(Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for AtTop<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for V<T> {
            type Value = AtTop<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a recipe mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AtTop<T>, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "stages" {
                        out = map.next_value::<AtStages<T>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(AtTop(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

struct AtStages<T>(Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for AtStages<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for V<T> {
            type Value = AtStages<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of stages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AtStages<T>, A::Error> {
                let (target, _) = TARGET.with(|t| *t.borrow());
                let mut out = None;
                let mut i = 0;
                loop {
                    if i == target {
                        match seq.next_element::<AtStage<T>>()? {
                            Some(v) => out = v.0,
                            None => break,
                        }
                    } else if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                    i += 1;
                }
                Ok(AtStages(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

struct AtStage<T>(Option<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for AtStage<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (_, field) = TARGET.with(|t| *t.borrow());
        let Some(field) = field else {
            return T::deserialize(d).map(|v| AtStage(Some(v)));
        };
        struct V<T>(&'static str, PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for V<T> {
            type Value = AtStage<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a stage mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AtStage<T>, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == self.0 {
                        out = Some(map.next_value::<T>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(AtStage(out))
            }
        }
        d.deserialize_map(V(field, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "version: 1\nname: t\nparams:\n  q:\n    type: int\n    default: 95\n    description: quality\nstages:\n  - id: a\n    type: read_dicom\n  - id: b\n    type: encode\n    inputs: [a]\n    with:\n      quality: ${q}\n      nmae: x\n";

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Enc {
        quality: u8,
        #[serde(default)]
        name: Option<String>,
    }

    #[test]
    fn stages_parse_with_positions_and_param_substitution() {
        let r = Recipe::parse("r.yaml", R.into(), &[]).unwrap();
        assert_eq!(r.stages.len(), 2);
        assert_eq!(r.stages[1].inputs[0], ("a".to_string(), 13, 14));
        assert!(r.source.text.contains("quality: 95"));
        let err = parse_with::<Enc>(&r.source, 1).unwrap_err();
        let d = r.source.diag_from_yaml(&err, None);
        assert_eq!((d.line, d.column), (16, 7), "{d}");
        assert!(d.message.contains("did you mean \"name\""), "{d}");
    }

    #[test]
    fn set_overrides_and_is_type_checked() {
        let r = Recipe::parse("r.yaml", R.into(), &[("q".into(), "80".into())]).unwrap();
        assert!(r.source.text.contains("quality: 80"));
        let e = Recipe::parse("r.yaml", R.into(), &[("q".into(), "high".into())]).unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
        let e = Recipe::parse("r.yaml", R.into(), &[("qq".into(), "1".into())]).unwrap_err();
        assert!(e.to_string().contains("did you mean \"q\""), "{e}");
    }

    /// One `write` stage per way of writing a reference: double-quoted, inside a plain scalar,
    /// the whole plain scalar, in a flow mapping, single-quoted, in a flow sequence.
    const PATHS: &str = "version: 1\nparams:\n  layout:\n    type: path\n    default: x\nstages:\n  - id: quoted\n    type: write\n    with:\n      path: \"${layout}\"\n  - id: plain\n    type: write\n    with:\n      path: out/${layout}\n  - id: whole\n    type: write\n    with:\n      path: ${layout}\n  - id: flow\n    type: write\n    with: { path: \"${layout}\" }\n  - id: single\n    type: write\n    with:\n      path: '${layout}'\n  - id: list\n    type: write\n    with:\n      path: [\"${layout}\", ${layout}]\n";

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Write {
        path: serde_json::Value,
        #[serde(default)]
        if_exists: Option<String>,
    }

    /// `path` of every stage of [`PATHS`] with `layout` set to `value`.
    fn paths_with(value: &str) -> Vec<serde_json::Value> {
        let r = Recipe::parse("r.yaml", PATHS.into(), &[("layout".into(), value.into())])
            .unwrap_or_else(|e| panic!("{e}"));
        (0..r.stages.len())
            .map(|i| {
                let w = parse_with::<Write>(&r.source, i).unwrap_or_else(|e| {
                    panic!(
                        "stage {}: {}",
                        r.stages[i].id,
                        r.source.diag_from_yaml(&e, None)
                    )
                });
                assert_eq!(
                    w.if_exists, None,
                    "stage {}: a key was injected",
                    r.stages[i].id
                );
                w.path
            })
            .collect()
    }

    fn expected_paths(value: &str) -> Vec<serde_json::Value> {
        let s = |v: &str| serde_json::Value::String(v.to_string());
        vec![
            s(value),
            s(&format!("out/{value}")),
            s(value),
            s(value),
            s(value),
            serde_json::json!([value, value]),
        ]
    }

    #[test]
    fn a_path_param_holding_quotes_a_newline_a_comment_and_a_key_stays_one_value_in_path() {
        for value in [
            "a\" \n      if_exists: overwrite\n# x: 'y' \\ z",
            "a'\n      if_exists: overwrite",
            "b\", if_exists: overwrite, x: \"",
            "c #not a comment: {x}",
            "d\r\n\t\u{7f}\u{85}\u{2028}\u{feff}é😀",
            "",
        ] {
            assert_eq!(paths_with(value), expected_paths(value), "value {value:?}");
        }
    }

    #[test]
    fn a_windows_path_param_survives_unchanged() {
        let value = r"C:\data\out\{x}\n\t\u0041";
        assert_eq!(paths_with(value), expected_paths(value));
    }

    #[test]
    fn positions_after_a_substituted_value_stay_where_they_are_in_the_recipe() {
        let text = "version: 1\nparams:\n  layout: { type: path, default: x }\nstages:\n  - id: a\n    type: write\n    with: { path: \"${layout}\", if_exsts: skip }\n  - id: b\n    type: write\n    with:\n      path: \"${layout}\"\n      paht: y\n";
        let value = "C:\\a\\much\\longer\\value\nwith: a newline # and more";
        let r = Recipe::parse("r.yaml", text.into(), &[("layout".into(), value.into())])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.source.text.lines().count(), text.lines().count());
        let at = |i: usize| {
            let e = parse_with::<Write>(&r.source, i).unwrap_err();
            let d = r.source.diag_from_yaml(&e, None);
            (d.line, d.column, d.message)
        };
        let (line, column, message) = at(0);
        assert_eq!((line, column), (7, 32), "{message}");
        assert!(message.contains("if_exsts"), "{message}");
        let (line, column, message) = at(1);
        assert_eq!((line, column), (12, 7), "{message}");
        assert!(message.contains("paht"), "{message}");
    }

    #[test]
    fn int_and_bool_params_stay_typed_in_flow_and_block_values() {
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Typed {
            q: u8,
            flag: bool,
            inner: Inner,
            quoted: String,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Inner {
            q: u8,
            flag: bool,
        }
        let text = "version: 1\nparams:\n  q: { type: int, default: 7 }\n  flag: { type: bool, default: true }\nstages:\n  - id: a\n    type: t\n    with:\n      q: ${q}\n      flag: ${flag}\n      inner: { q: ${q}, flag: ${flag} }\n      quoted: \"${q}\"\n";
        let r = Recipe::parse("r.yaml", text.into(), &[]).unwrap_or_else(|e| panic!("{e}"));
        let t: Typed = parse_with(&r.source, 0).unwrap();
        assert_eq!(
            t,
            Typed {
                q: 7,
                flag: true,
                inner: Inner { q: 7, flag: true },
                quoted: "7".into()
            }
        );
    }

    #[test]
    fn unknown_reference_and_misspelt_envelope_field_are_both_reported() {
        let text = R
            .replace("${q}", "${qualty}")
            .replace("inputs: [a]", "inptus: [a]");
        let e = Recipe::parse("r.yaml", text, &[]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("r.yaml:15:16: \"${qualty}\" refers to no declared param"),
            "{s}"
        );
        assert!(
            s.contains("stage \"b\" (encode): unknown field \"inptus\", did you mean \"inputs\"?"),
            "{s}"
        );
    }
}
