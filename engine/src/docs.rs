//! Documentation generated from the registry: the `dcmflow stages` listing, the README's stage
//! table and the recipe JSON Schema all come from the config types' doc comments, so they cannot
//! drift from the code (tests compare the checked-in copies).

use serde_json::{json, Map, Value};

use crate::recipe::RecipeDoc;
use crate::stage::{summary_of, Registry, StageKind};

/// One documented setting of a stage kind.
#[derive(Clone, Debug)]
pub struct FieldDoc {
    /// Name in `with`.
    pub name: String,
    /// Type in words.
    pub ty: String,
    /// Whether it must be given.
    pub required: bool,
    /// Its doc comment.
    pub description: String,
}

fn type_words(schema: &Value, root: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        if let Some(def) = root.get("$defs").and_then(|d| d.get(name)) {
            if let Some(vals) = enum_values(def) {
                return vals.join(" | ");
            }
        }
        return name.to_string();
    }
    if let Some(vals) = enum_values(schema) {
        return vals.join(" | ");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .map(|a| type_words(a, root))
                .collect();
            return parts.join(" | ");
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let inner = schema
                .get("items")
                .map(|i| type_words(i, root))
                .unwrap_or_default();
            format!("list of {inner}")
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "value".into(),
    }
}

fn enum_values(schema: &Value) -> Option<Vec<String>> {
    if let Some(vals) = schema.get("enum").and_then(Value::as_array) {
        return Some(
            vals.iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect(),
        );
    }
    let alts = schema.get("oneOf").and_then(Value::as_array)?;
    let mut out = Vec::new();
    for a in alts {
        if let Some(c) = a.get("const").and_then(Value::as_str) {
            out.push(c.to_string());
        } else if let Some(vs) = a.get("enum").and_then(Value::as_array) {
            out.extend(vs.iter().filter_map(Value::as_str).map(String::from));
        } else {
            return None;
        }
    }
    Some(out)
}

/// The settings of a stage kind, from its schema.
pub fn fields(kind: &StageKind) -> Vec<FieldDoc> {
    let schema = (kind.schema)();
    let root = schema.as_value().clone();
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = root.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, s)| FieldDoc {
            name: name.clone(),
            ty: type_words(s, &root),
            required: required.contains(&name.as_str()),
            description: s
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .replace('\n', " "),
        })
        .collect()
}

/// Plain-text listing of every stage kind and its settings (`dcmflow stages`).
pub fn stages_text(reg: &Registry) -> String {
    let mut s = String::new();
    for k in reg.kinds() {
        let accepts: Vec<&str> = k.accepts.iter().map(|a| a.name()).collect();
        s.push_str(&format!(
            "{}  ({} -> {})\n  {}\n",
            k.name,
            if accepts.is_empty() {
                "--input paths".to_string()
            } else {
                accepts.join(" | ")
            },
            k.emits,
            summary_of(&(k.schema)())
        ));
        for f in fields(k) {
            s.push_str(&format!(
                "    {}{}: {}\n        {}\n",
                f.name,
                if f.required { " (required)" } else { "" },
                f.ty,
                f.description
            ));
        }
        s.push('\n');
    }
    s
}

/// The README's stage table (markdown).
pub fn stages_markdown(reg: &Registry) -> String {
    let mut s = String::from(
        "| stage | takes | gives | what it does | settings |\n|---|---|---|---|---|\n",
    );
    for k in reg.kinds() {
        let accepts: Vec<&str> = k.accepts.iter().map(|a| a.name()).collect();
        let settings: Vec<String> = fields(k).iter().map(|f| format!("`{}`", f.name)).collect();
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.name,
            if accepts.is_empty() {
                "--input paths".to_string()
            } else {
                accepts.join(", ")
            },
            k.emits,
            summary_of(&(k.schema)()).replace('|', "\\|"),
            settings.join(" ")
        ));
    }
    s
}

fn rewrite_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/$defs/") {
                    *r = format!("#/$defs/{prefix}.{name}");
                }
            }
            for (_, x) in m.iter_mut() {
                rewrite_refs(x, prefix);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, prefix)),
        _ => {}
    }
}

/// The JSON Schema of the recipe format, with each stage kind's `with` schema selected by `type`.
pub fn recipe_schema(reg: &Registry) -> Value {
    let mut root = schemars::schema_for!(RecipeDoc).as_value().clone();
    let mut defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut branches = Vec::new();
    for k in reg.kinds() {
        let mut s = (k.schema)().as_value().clone();
        rewrite_refs(&mut s, k.name);
        if let Some(Value::Object(kd)) = s.as_object_mut().and_then(|m| m.remove("$defs")) {
            for (name, d) in kd {
                defs.insert(format!("{}.{name}", k.name), d);
            }
        }
        if let Some(m) = s.as_object_mut() {
            m.remove("$schema");
        }
        defs.insert(format!("{}.with", k.name), s);
        branches.push(json!({
            "if": { "properties": { "type": { "const": k.name } }, "required": ["type"] },
            "then": { "properties": { "with": { "$ref": format!("#/$defs/{}.with", k.name) } } }
        }));
    }
    let kinds: Vec<Value> = reg
        .kinds()
        .iter()
        .map(|k| Value::String(k.name.into()))
        .collect();
    if let Some(stage) = defs.get_mut("StageDoc").and_then(Value::as_object_mut) {
        stage.insert("allOf".into(), Value::Array(branches));
        if let Some(t) = stage
            .get_mut("properties")
            .and_then(|p| p.get_mut("type"))
            .and_then(Value::as_object_mut)
        {
            t.insert("enum".into(), Value::Array(kinds));
        }
    }
    if let Some(m) = root.as_object_mut() {
        m.insert("$defs".into(), Value::Object(defs));
        m.insert(
            "$id".into(),
            json!("https://dcmflow.invalid/schemas/recipe.schema.json"),
        );
        m.insert("title".into(), json!("dcmflow recipe, format version 1"));
    }
    let _ = Map::<String, Value>::new();
    root
}

/// A methods-section paragraph (markdown) for a checked recipe: what each stage does in plain
/// words, then provenance (dcmflow version, recipe SHA-256, params). Contains no secret and no
/// data values; the same recipe and params always give the same text.
pub fn explain(plan: &crate::Plan) -> String {
    let r = &plan.recipe;
    let mut s = format!("## Methods: {}\n\n", r.name);
    if !r.description.trim().is_empty() {
        s.push_str(r.description.trim());
        s.push_str("\n\n");
    }
    let mut parts = Vec::new();
    for i in plan.topo_order() {
        let text = plan.stages[i].config.explain();
        if !text.trim().is_empty() && !parts.contains(&text) {
            parts.push(text);
        }
    }
    s.push_str(&parts.join(" "));
    if plan.needs_secret() {
        s.push_str(
            " Pseudonyms and replacement UIDs were derived with HMAC-SHA256 keyed by a project secret held \
             by the data custodian, so they are consistent across batches and cannot be reversed or \
             confirmed without the secret.",
        );
    }
    s.push_str(&format!(
        " Processing used dcmflow {} with the recipe `{}`.\n\n### Provenance\n\n- dcmflow version: {}\n- recipe: `{}` (SHA-256 `{}`)\n",
        crate::VERSION,
        r.name,
        crate::VERSION,
        r.source.file,
        r.sha256
    ));
    let params = r.report_params();
    if params.is_empty() {
        s.push_str("- params: none\n");
    } else {
        s.push_str("- params:\n");
        for (k, v) in params {
            s.push_str(&format!(
                "  - `{k}` = `{}`\n",
                v.to_string().trim_matches('"')
            ));
        }
    }
    s
}
