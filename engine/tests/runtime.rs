//! Runtime behaviour with synthetic stages (the engine names no real stage): backpressure keeps
//! in-flight items bounded by channel sizes, a failed item never reaches downstream stages and
//! the run goes on, fan-out/fan-in deliver every item, barriers flush, fail-fast stops early.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcmflow_engine::plan::parse_config;
use dcmflow_engine::recipe::Recipe;
use dcmflow_engine::report::ReportPaths;
use dcmflow_engine::runtime::{run, RunOptions};
use dcmflow_engine::stage::schema_of;
use dcmflow_engine::*;
use schemars::JsonSchema;
use serde::Deserialize;

static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);
static MAX_IN_FLIGHT: AtomicI64 = AtomicI64::new(0);
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Emits `count` numbered items; counts every item it creates as in flight.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Numbers {
    count: usize,
    #[serde(default)]
    track: bool,
}
struct NumbersRt {
    count: usize,
    track: bool,
}
impl SourceWorker for NumbersRt {
    fn count(&self, _inputs: &[PathBuf]) -> u64 {
        self.count as u64
    }
    fn discover(
        &self,
        _inputs: &[PathBuf],
        yield_one: &mut dyn FnMut(Result<PathBuf, (PathBuf, ItemError)>) -> bool,
    ) {
        for i in 0..self.count {
            if !yield_one(Ok(PathBuf::from(format!("{i}")))) {
                break;
            }
        }
    }
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        if self.track {
            let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
            MAX_IN_FLIGHT.fetch_max(now, Ordering::SeqCst);
        }
        Ok(vec![item])
    }
}
impl StageConfig for Numbers {
    fn accepts(&self) -> &'static [ItemKind] {
        &[]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::File
    }
    fn mode(&self) -> Mode {
        Mode::Source
    }
    fn build(&self, _: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::Source(Arc::new(NumbersRt {
            count: self.count,
            track: self.track,
        })))
    }
}

/// Fails odd-numbered items; passes the rest.
#[derive(Debug, Deserialize, JsonSchema)]
struct FailOdd {}
struct FailOddRt;
impl ItemWorker for FailOddRt {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        let n: usize = item.source.to_string_lossy().parse().unwrap();
        if n % 2 == 1 {
            if n == 7 {
                panic!("stage bug on item 7");
            }
            Err(ItemError::failed("odd"))
        } else {
            Ok(vec![item])
        }
    }
}
impl StageConfig for FailOdd {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::File]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::File
    }
    fn build(&self, _: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::PerItem(Arc::new(FailOddRt)))
    }
}

/// A sink that sleeps per item and records what it saw.
#[derive(Debug, Deserialize, JsonSchema)]
struct SlowSink {
    #[serde(default)]
    sleep_us: u64,
    #[serde(default)]
    tag: String,
}
struct SlowSinkRt {
    sleep_us: u64,
    tag: String,
}
impl ItemWorker for SlowSinkRt {
    fn process(&self, item: Item) -> Result<Vec<Item>, ItemError> {
        std::thread::sleep(Duration::from_micros(self.sleep_us));
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        SEEN.lock()
            .unwrap()
            .push(format!("{}:{}", self.tag, item.source.display()));
        Ok(vec![item.with(Payload::Output(PathBuf::from("x")))])
    }
}
impl StageConfig for SlowSink {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::File]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::Output
    }
    fn build(&self, _: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::PerItem(Arc::new(SlowSinkRt {
            sleep_us: self.sleep_us,
            tag: self.tag.clone(),
        })))
    }
}

/// A barrier that holds everything and emits it in reverse order at the end.
#[derive(Debug, Deserialize, JsonSchema)]
struct Reverse {}
struct ReverseRt(Vec<Item>);
impl BarrierWorker for ReverseRt {
    fn push(&mut self, item: Item) -> Result<Vec<Item>, ItemError> {
        self.0.push(item);
        Ok(vec![])
    }
    fn finish(&mut self) -> Vec<Result<Item, (Arc<PathBuf>, ItemError)>> {
        self.0.drain(..).rev().map(Ok).collect()
    }
}
impl StageConfig for Reverse {
    fn accepts(&self) -> &'static [ItemKind] {
        &[ItemKind::File]
    }
    fn emits(&self) -> ItemKind {
        ItemKind::File
    }
    fn mode(&self) -> Mode {
        Mode::Barrier
    }
    fn build(&self, _: &BuildContext) -> Result<Runtime, String> {
        Ok(Runtime::Barrier(Box::new(ReverseRt(Vec::new()))))
    }
}

macro_rules! k {
    ($n:literal, $t:ty, [$($a:ident),*] => $e:ident) => {
        StageKind { name: $n, parse: parse_config::<$t>, schema: schema_of::<$t>, accepts: &[$(ItemKind::$a),*], emits: ItemKind::$e }
    };
}
static REG: Registry = Registry(&[
    k!("numbers", Numbers, [] => File),
    k!("fail_odd", FailOdd, [File] => File),
    k!("slow_sink", SlowSink, [File] => Output),
    k!("reverse", Reverse, [File] => File),
]);

fn plan(yaml: &str) -> Plan {
    let r = Recipe::parse("t.yaml", yaml.to_string(), &[]).unwrap();
    Plan::build(r, &REG).unwrap_or_else(|d| panic!("{d}"))
}

fn opts(threads: usize, cap: usize) -> RunOptions {
    let mut o = RunOptions::new(vec![], std::env::temp_dir());
    o.threads = threads;
    o.channel_capacity = cap;
    o
}

// One test owns the statics at a time.
static LOCK: Mutex<()> = Mutex::new(());

#[test]
fn backpressure_keeps_in_flight_items_bounded_by_channel_sizes() {
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    IN_FLIGHT.store(0, Ordering::SeqCst);
    MAX_IN_FLIGHT.store(0, Ordering::SeqCst);
    let p = plan(
        "version: 1\nstages:\n  - {id: src, type: numbers, with: {count: 400, track: true}}\n  - {id: sink, type: slow_sink, inputs: [src], with: {sleep_us: 500}}\n",
    );
    let (threads, cap) = (4, 4);
    let report = run(&p, &opts(threads, cap)).unwrap();
    assert_eq!(report.outputs, 400);
    // Items exist only in source workers, the one edge channel, and sink workers.
    let bound = (threads + cap) as i64;
    let max = MAX_IN_FLIGHT.load(Ordering::SeqCst);
    assert!(max <= bound, "max in flight {max} exceeds {bound}");
}

#[test]
fn the_report_names_inputs_by_a_one_run_keyed_hash_when_no_secret_and_no_plain_paths() {
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let p = plan(
        "version: 1\nstages:\n  - {id: src, type: numbers, with: {count: 6}}\n  - {id: check, type: fail_odd, inputs: [src]}\n  - {id: sink, type: slow_sink, inputs: [check], with: {tag: h}}\n",
    );
    let names = |o: &RunOptions| {
        let report = run(&p, o).unwrap();
        assert_eq!(report.report_paths, ReportPaths::Hashed);
        assert_eq!(report.input_hash_key.as_deref(), Some("one-run random key"));
        let mut names: Vec<String> = report.problems.iter().map(|p| p.input.clone()).collect();
        names.sort();
        names
    };
    let first = names(&opts(2, 2));
    assert_eq!(first.len(), 3);
    for n in &first {
        assert!(
            n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()),
            "{n}"
        );
    }
    assert_ne!(first, names(&opts(2, 2)), "each run has its own key");
}

#[test]
fn failed_items_never_reach_downstream_and_the_run_goes_on() {
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    SEEN.lock().unwrap().clear();
    let p = plan(
        "version: 1\nstages:\n  - {id: src, type: numbers, with: {count: 20}}\n  - {id: check, type: fail_odd, inputs: [src]}\n  - {id: sink, type: slow_sink, inputs: [check], with: {tag: s}}\n",
    );
    let mut o = opts(3, 2);
    o.report_paths = ReportPaths::Plain;
    let report = run(&p, &o).unwrap();
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen.len(), 10);
    assert!(
        seen.iter()
            .all(|s| s[2..].parse::<usize>().unwrap() % 2 == 0),
        "{seen:?}"
    );
    assert_eq!(report.problems.len(), 10);
    assert!(report.problems.iter().all(|p| p.stage == "check"));
    let seven = report.problems.iter().find(|p| p.input == "7").unwrap();
    assert!(
        seven.reason.contains("internal error"),
        "a panic is isolated: {}",
        seven.reason
    );
    assert_eq!(report.stages["check"].failed, 10);
    assert!(!report.all_ok());
}

#[test]
fn fan_out_and_barrier_fan_in_deliver_every_item_to_every_branch() {
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    SEEN.lock().unwrap().clear();
    let p = plan(
        "version: 1\nstages:\n  - {id: src, type: numbers, with: {count: 50}}\n  - {id: rev, type: reverse, inputs: [src]}\n  - {id: a, type: slow_sink, inputs: [src], with: {tag: a}}\n  - {id: b, type: slow_sink, inputs: [rev], with: {tag: b}}\n",
    );
    let report = run(&p, &opts(2, 1)).unwrap();
    assert!(report.all_ok());
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|s| s.starts_with("a:")).count(), 50);
    let b: Vec<usize> = seen
        .iter()
        .filter_map(|s| s.strip_prefix("b:"))
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(b.len(), 50);
    assert_eq!(report.stages["rev"].emitted, 50);
}

#[test]
fn fail_fast_stops_feeding_new_items() {
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let p = plan(
        "version: 1\nstages:\n  - {id: src, type: numbers, with: {count: 5000}}\n  - {id: check, type: fail_odd, inputs: [src]}\n  - {id: sink, type: slow_sink, inputs: [check], with: {sleep_us: 100}}\n",
    );
    let mut o = opts(2, 2);
    o.fail_fast = true;
    let report = run(&p, &o).unwrap();
    assert!(report.cancelled);
    assert!(
        report.outputs < 2500,
        "stopped early, wrote {}",
        report.outputs
    );
}

#[test]
fn cancel_flag_set_before_the_run_processes_nothing() {
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let p = plan("version: 1\nstages:\n  - {id: src, type: numbers, with: {count: 100}}\n  - {id: sink, type: slow_sink, inputs: [src]}\n");
    let mut o = opts(2, 2);
    o.cancel = Arc::new(AtomicBool::new(true));
    let report = run(&p, &o).unwrap();
    assert_eq!(report.outputs, 0);
    let _ = AtomicUsize::new(0);
}

#[test]
fn planning_reports_every_problem_at_once_with_positions() {
    let text = "version: 1\nstages:\n  - id: src\n    type: numbers\n    with: {count: 1, cuont: 2}\n  - id: a\n    type: fail_odd\n    inputs: [b]\n  - id: b\n    type: fail_odd\n    inputs: [a]\n  - id: c\n    type: slow_sink\n    inputs: [nope]\n  - id: d\n    type: slwo_sink\n    inputs: [src]\n  - id: e\n    type: fail_odd\n    inputs: [src]\n";
    let r = Recipe::parse("t.yaml", text.into(), &[]).unwrap();
    let d = Plan::build(r, &REG).unwrap_err().to_string();
    for want in [
        "t.yaml:5:22: stage \"src\" (numbers): unknown field \"cuont\", did you mean \"count\"?",
        "t.yaml:6:5: stage \"a\" (fail_odd): cycle: a -> b feed each other",
        "t.yaml:14:14: stage \"c\" (slow_sink): unknown input \"nope\"",
        "t.yaml:16:11: stage \"d\" (slwo_sink): unknown stage type \"slwo_sink\", did you mean \"slow_sink\"?",
        "t.yaml:18:5: stage \"e\" (fail_odd): unused stage",
    ] {
        assert!(d.contains(want), "missing {want:?} in:\n{d}");
    }
}

#[test]
fn item_kind_mismatch_on_an_edge_is_reported() {
    let text = "version: 1\nstages:\n  - {id: src, type: numbers, with: {count: 1}}\n  - {id: s, type: slow_sink, inputs: [src]}\n  - {id: t, type: slow_sink, inputs: [s]}\n";
    let r = Recipe::parse("t.yaml", text.into(), &[]).unwrap();
    let d = Plan::build(r, &REG).unwrap_err().to_string();
    assert!(
        d.contains("input \"s\" emits output items but slow_sink accepts file"),
        "{d}"
    );
}
