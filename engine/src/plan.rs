//! Planning: typed stage configs wired into a petgraph DAG. Planning reads no DICOM and reports
//! every problem at once: unknown stage kinds, bad settings, unknown or missing inputs, cycles,
//! item-kind mismatches on edges, stages whose output goes nowhere.

use std::collections::{BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics};
use crate::item::ItemKind;
use crate::recipe::{parse_with, Recipe, Source, StageDecl};
use crate::stage::{Mode, Registry, StageConfig};

/// A stage that passed its checks.
#[derive(Debug)]
pub struct PlannedStage {
    /// Its envelope.
    pub decl: StageDecl,
    /// Its typed config.
    pub config: Box<dyn StageConfig>,
}

/// A checked recipe: a DAG of typed stages. Node weights index into `stages`; edge weights are
/// the item kind carried.
#[derive(Debug)]
pub struct Plan {
    /// The recipe it came from.
    pub recipe: Recipe,
    /// The stages, in recipe order.
    pub stages: Vec<PlannedStage>,
    /// The graph.
    pub graph: DiGraph<usize, ItemKind>,
    /// Node of each stage (same order as `stages`).
    pub nodes: Vec<NodeIndex>,
}

/// Parse a stage's `with` into a kind's config type (the registry's generic parser).
pub fn parse_config<C>(source: &Source, index: usize) -> Result<Box<dyn StageConfig>, Diagnostic>
where
    C: StageConfig + serde::de::DeserializeOwned + 'static,
{
    parse_with::<C>(source, index)
        .map(|c| Box::new(c) as Box<dyn StageConfig>)
        .map_err(|e| source.diag_from_yaml(&e, None))
}

impl Plan {
    /// Check a recipe against a registry and build the graph.
    pub fn build(recipe: Recipe, registry: &Registry) -> Result<Plan, Diagnostics> {
        let src = &recipe.source;
        let mut diags: Vec<Diagnostic> = Vec::new();
        let label = |d: &StageDecl| Some((d.id.clone(), d.kind.clone()));

        // ids
        let mut first_at: HashMap<&str, &StageDecl> = HashMap::new();
        for d in &recipe.stages {
            if d.id.is_empty() {
                diags.push(src.diag(d.line, d.column, label(d), "stage id is empty"));
            } else if let Some(prev) = first_at.get(d.id.as_str()) {
                diags.push(src.diag(
                    d.line,
                    d.column,
                    label(d),
                    format!("duplicate stage id; first used at line {}", prev.line),
                ));
            } else {
                first_at.insert(&d.id, d);
            }
        }

        // kinds and typed configs
        let mut configs: Vec<Option<Box<dyn StageConfig>>> = Vec::new();
        for d in &recipe.stages {
            let Some(kind) = registry.get(&d.kind) else {
                let hint = did_you_mean(&d.kind, registry.kinds().iter().map(|k| k.name))
                    .map(|b| format!(", did you mean \"{b}\"?"))
                    .unwrap_or_else(|| "; `dcmflow stages` lists the kinds".to_string());
                diags.push(src.diag(
                    d.kind_pos.0,
                    d.kind_pos.1,
                    label(d),
                    format!("unknown stage type \"{}\"{hint}", d.kind),
                ));
                configs.push(None);
                continue;
            };
            match (kind.parse)(src, d.index) {
                Ok(cfg) => {
                    for problem in cfg.check() {
                        diags.push(src.diag(d.with_pos.0, d.with_pos.1, label(d), problem));
                    }
                    configs.push(Some(cfg));
                }
                Err(mut e) => {
                    e.stage = label(d);
                    diags.push(e);
                    configs.push(None);
                }
            }
        }

        // graph
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..recipe.stages.len())
            .map(|i| graph.add_node(i))
            .collect();
        let index_of: HashMap<&str, usize> = recipe
            .stages
            .iter()
            .enumerate()
            .rev()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        for (i, d) in recipe.stages.iter().enumerate() {
            let mode = configs[i].as_ref().map(|c| c.mode());
            if mode == Some(Mode::Source) && !d.inputs.is_empty() {
                diags.push(src.diag(
                    d.inputs[0].1,
                    d.inputs[0].2,
                    label(d),
                    "a source stage reads the run's --input paths and takes no inputs",
                ));
            }
            if mode.is_some() && mode != Some(Mode::Source) && d.inputs.is_empty() {
                diags.push(src.diag(
                    d.line,
                    d.column,
                    label(d),
                    "stage has no inputs; add `inputs: [<stage id>]`",
                ));
            }
            let mut seen = BTreeSet::new();
            for (input, line, col) in &d.inputs {
                if !seen.insert(input.as_str()) {
                    diags.push(src.diag(
                        *line,
                        *col,
                        label(d),
                        format!("input \"{input}\" is listed twice"),
                    ));
                    continue;
                }
                let Some(&j) = index_of.get(input.as_str()) else {
                    let hint = did_you_mean(input, recipe.stages.iter().map(|s| s.id.as_str()))
                        .map(|b| format!(", did you mean \"{b}\"?"))
                        .unwrap_or_default();
                    diags.push(src.diag(
                        *line,
                        *col,
                        label(d),
                        format!("unknown input \"{input}\"{hint}"),
                    ));
                    continue;
                };
                let emitted = configs[j].as_ref().map(|c| c.emits());
                if let (Some(emits), Some(cfg)) = (emitted, configs[i].as_ref()) {
                    if cfg.mode() != Mode::Source && !cfg.accepts().contains(&emits) {
                        let accepts: Vec<&str> = cfg.accepts().iter().map(|k| k.name()).collect();
                        diags.push(src.diag(
                            *line,
                            *col,
                            label(d),
                            format!(
                                "input \"{input}\" emits {emits} items but {} accepts {}",
                                d.kind,
                                accepts.join(" or ")
                            ),
                        ));
                    }
                }
                graph.add_edge(nodes[j], nodes[i], emitted.unwrap_or(ItemKind::File));
            }
        }

        // cycles
        for scc in petgraph::algo::tarjan_scc(&graph) {
            let cyclic = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
            if cyclic {
                let mut members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
                members.sort();
                let ids: Vec<&str> = members
                    .iter()
                    .map(|&i| recipe.stages[i].id.as_str())
                    .collect();
                let d = &recipe.stages[members[0]];
                diags.push(src.diag(
                    d.line,
                    d.column,
                    label(d),
                    format!(
                        "cycle: {} feed each other; a recipe must be acyclic",
                        ids.join(" -> ")
                    ),
                ));
            }
        }

        // reachability: a source exists; every non-sink output is used
        if !configs.iter().flatten().any(|c| c.mode() == Mode::Source)
            && configs.iter().all(Option::is_some)
        {
            diags.push(src.diag(
                0,
                0,
                None,
                "the recipe has no source stage (e.g. read_dicom)",
            ));
        }
        for (i, d) in recipe.stages.iter().enumerate() {
            let Some(cfg) = &configs[i] else { continue };
            let consumers = graph.edges_directed(nodes[i], Direction::Outgoing).count();
            if consumers == 0 && !cfg.is_sink() {
                diags.push(src.diag(
                    d.line,
                    d.column,
                    label(d),
                    format!(
                        "unused stage: its {} output goes to no stage; feed it into a sink or remove it",
                        cfg.emits()
                    ),
                ));
            }
        }

        if !diags.is_empty() {
            let mut d = Diagnostics(diags);
            d.sort();
            return Err(d);
        }
        let stages = recipe
            .stages
            .iter()
            .cloned()
            .zip(configs.into_iter().map(|c| c.expect("checked above")))
            .map(|(decl, config)| PlannedStage { decl, config })
            .collect();
        Ok(Plan {
            recipe,
            stages,
            graph,
            nodes,
        })
    }

    /// Stage indexes in an order where every stage comes after its inputs.
    pub fn topo_order(&self) -> Vec<usize> {
        petgraph::algo::toposort(&self.graph, None)
            .map(|v| v.into_iter().map(|n| self.graph[n]).collect())
            .unwrap_or_default()
    }

    /// Indexes of the stages feeding stage `i`.
    pub fn inputs_of(&self, i: usize) -> Vec<usize> {
        self.graph
            .edges_directed(self.nodes[i], Direction::Incoming)
            .map(|e| self.graph[e.source()])
            .collect()
    }

    /// Indexes of the stages stage `i` feeds.
    pub fn outputs_of(&self, i: usize) -> Vec<usize> {
        self.graph
            .edges_directed(self.nodes[i], Direction::Outgoing)
            .map(|e| self.graph[e.target()])
            .collect()
    }

    /// Whether stage `i` or any stage downstream of it reads pixel data.
    pub fn pixels_needed_from(&self, i: usize) -> bool {
        let mut dfs = petgraph::visit::Dfs::new(&self.graph, self.nodes[i]);
        while let Some(n) = dfs.next(&self.graph) {
            if self.stages[self.graph[n]].config.needs_pixels() {
                return true;
            }
        }
        false
    }

    /// Whether any stage needs the project secret.
    pub fn needs_secret(&self) -> bool {
        self.stages.iter().any(|s| s.config.needs_secret())
    }

    /// The graph in Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut s = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
            escape(&self.recipe.name)
        );
        for st in &self.stages {
            s.push_str(&format!(
                "  \"{}\" [label=\"{}\\n({})\"];\n",
                escape(&st.decl.id),
                escape(&st.decl.id),
                escape(&st.decl.kind)
            ));
        }
        for e in self.graph.edge_references() {
            s.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
                escape(&self.stages[self.graph[e.source()]].decl.id),
                escape(&self.stages[self.graph[e.target()]].decl.id),
                e.weight()
            ));
        }
        s.push_str("}\n");
        s
    }

    /// The graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut s = String::from("flowchart LR\n");
        for (i, st) in self.stages.iter().enumerate() {
            s.push_str(&format!(
                "  s{i}[\"{} ({})\"]\n",
                st.decl.id.replace('"', "'"),
                st.decl.kind
            ));
        }
        for e in self.graph.edge_references() {
            s.push_str(&format!(
                "  s{} -->|{}| s{}\n",
                self.graph[e.source()],
                e.weight(),
                self.graph[e.target()]
            ));
        }
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
