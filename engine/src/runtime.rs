//! The runtime: worker threads per stage joined by one bounded crossbeam channel per edge, so a
//! slow stage slows its producers and memory stays flat however many items stream through.
//! Per-item stages run on several threads; a barrier runs on one and flushes when all its
//! inputs have ended. Shutdown cascades by dropping senders. A failed item is recorded (stage,
//! input, reason) and never passed on. One cancel flag serves Ctrl-C and `--fail-fast`.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, Select, Sender};

use crate::item::{Item, Payload};
use crate::journal::{self, Done, Fingerprint, JournalWriter, OutputFile};
use crate::keys::Secret;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report::{InputNames, ItemProblem, RecipeInfo, ReportPaths, RunReport, StageCounts};
use crate::stage::{BuildContext, ItemError, Mode, Runtime};

/// How to run a plan.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads in all (each stage has at least one).
    pub threads: usize,
    /// Stop at the first failed or quarantined item.
    pub fail_fast: bool,
    /// No progress bars.
    pub quiet: bool,
    /// Items each edge's channel holds before the producer waits.
    pub channel_capacity: usize,
    /// The run's inputs.
    pub inputs: Vec<PathBuf>,
    /// The output folder.
    pub output_dir: PathBuf,
    /// The project secret.
    pub secret: Option<Secret>,
    /// Where the secret came from, for the report.
    pub secret_source: String,
    /// Set to stop the run (shared with a Ctrl-C handler).
    pub cancel: Arc<AtomicBool>,
    /// Report what would change; write nothing.
    pub dry_run: bool,
    /// Continue an earlier run into the same output folder: skip the inputs its journal records
    /// as complete (unchanged, outputs in place) and redo the rest.
    pub resume: bool,
    /// How the report names inputs (default: a keyed hash of the path).
    pub report_paths: ReportPaths,
}

impl RunOptions {
    /// Defaults for a run into `output_dir`.
    pub fn new(inputs: Vec<PathBuf>, output_dir: PathBuf) -> Self {
        RunOptions {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            fail_fast: false,
            quiet: true,
            channel_capacity: 8,
            inputs,
            output_dir,
            secret: None,
            secret_source: "none".into(),
            cancel: Arc::new(AtomicBool::new(false)),
            dry_run: false,
            resume: false,
            report_paths: ReportPaths::Hashed,
        }
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    emitted: AtomicU64,
    failed: AtomicU64,
    quarantined: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
}

struct Shared {
    ids: Vec<String>,
    counters: Vec<Counters>,
    problems: Mutex<Vec<ItemProblem>>,
    skipped: Mutex<Vec<ItemProblem>>,
    /// Names inputs in the report.
    names: InputNames,
    outputs: AtomicU64,
    progress: Progress,
    cancel: Arc<AtomicBool>,
    fail_fast: bool,
    cancelled_by_us: AtomicBool,
    tracker: Option<Arc<Tracker>>,
}

/// Items in flight for one input, and what has come of them so far.
struct Pending {
    count: i64,
    size: u64,
    mtime_ns: u64,
    outputs: Vec<OutputFile>,
    problem: bool,
    /// Some of its items went into a barrier (e.g. a series): what comes out is shared with
    /// other inputs, so this input is never recorded as complete on its own.
    held: bool,
}

/// Counts the items derived from each input that are still in flight; when the count of an
/// input drops to zero, everything from it has been written or has ended, and it goes into the
/// journal. An item is counted before it is sent, and uncounted after its stage is done with it.
struct Tracker {
    journal: JournalWriter,
    /// Names inputs in the journal ([`journal::input_key`]).
    secret: Option<crate::keys::Secret>,
    root: PathBuf,
    pending: Mutex<HashMap<PathBuf, Pending>>,
    /// Renames of files already written, (from, size) -> to, relative to the output folder.
    moves: Mutex<HashMap<(PathBuf, u64), PathBuf>>,
    error: Mutex<Option<String>>,
}

impl journal::MoveLog for Tracker {
    fn moved(&self, from: &Path, to: &Path, size: u64) {
        let from = from.strip_prefix(&self.root).unwrap_or(from).to_path_buf();
        let to = to.strip_prefix(&self.root).unwrap_or(to).to_path_buf();
        // Inputs still in flight pick the move up when they are recorded; inputs already
        // recorded get a line of their own.
        self.moves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((from.clone(), size), to.clone());
        if let Err(e) = self.journal.record_move(&from, &to, size) {
            self.journal_failed(&e, None);
        }
    }
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry<'a>(
        map: &'a mut HashMap<PathBuf, Pending>,
        source: &Path,
        held: bool,
    ) -> &'a mut Pending {
        map.entry(source.to_path_buf()).or_insert_with(|| Pending {
            count: 0,
            size: 0,
            mtime_ns: 0,
            outputs: Vec::new(),
            problem: false,
            held,
        })
    }

    /// An input enters the graph.
    fn begin(&self, source: &Path) {
        let (size, mtime_ns) = journal::stat(source).unwrap_or((0, 0));
        let mut map = self.lock();
        let p = Self::entry(&mut map, source, false);
        p.count += 1;
        p.size = size;
        p.mtime_ns = mtime_ns;
    }

    /// `n` more items of `source` are about to be sent. An input no longer tracked (a barrier's
    /// flush) is tracked again as held.
    fn add(&self, source: &Path, n: i64) {
        Self::entry(&mut self.lock(), source, true).count += n;
    }

    fn output(&self, source: &Path, path: &Path) {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let rel = path.strip_prefix(&self.root).unwrap_or(path).to_path_buf();
        Self::entry(&mut self.lock(), source, true)
            .outputs
            .push(OutputFile { path: rel, size });
    }

    fn problem(&self, source: &Path) {
        if let Some(p) = self.lock().get_mut(source) {
            p.problem = true;
        }
    }

    fn hold(&self, source: &Path) {
        if let Some(p) = self.lock().get_mut(source) {
            p.held = true;
        }
    }

    /// One item of `source` is done with; record the input when it was the last.
    fn done(&self, source: &Path, progress: &Progress) {
        let finished = {
            let mut map = self.lock();
            let Some(p) = map.get_mut(source) else { return };
            p.count -= 1;
            if p.count > 0 {
                return;
            }
            map.remove(source)
        };
        let Some(mut p) = finished else { return };
        if p.held {
            return;
        }
        {
            let moves = self.moves.lock().unwrap_or_else(|p| p.into_inner());
            for ((from, size), to) in moves.iter() {
                journal::apply_move(&mut p.outputs, from, to, *size);
            }
        }
        let done = Done {
            input: journal::input_key(self.secret.as_ref(), source),
            size: p.size,
            mtime_ns: p.mtime_ns,
            ok: !p.problem,
            outputs: p.outputs,
        };
        if let Err(e) = self.journal.record(done) {
            self.journal_failed(&e, Some(progress));
        }
    }

    /// Say once that the journal cannot be appended to; the run goes on.
    fn journal_failed(&self, e: &std::io::Error, progress: Option<&Progress>) {
        let mut err = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if err.is_none() {
            let msg = format!(
                "cannot append to the journal {}: {e}; inputs finished from now on are not recorded, and --resume will redo them",
                self.journal.path().display()
            );
            match progress {
                Some(p) => p.println(&format!("dcmflow: warning: {msg}")),
                None => eprintln!("dcmflow: warning: {msg}"),
            }
            *err = Some(msg);
        }
    }
}

const MAX_SKIPPED_LISTED: usize = 10_000;

impl Shared {
    fn record(&self, stage: usize, source: &std::path::Path, err: ItemError) {
        if err.is_problem() {
            if let Some(t) = &self.tracker {
                t.problem(source);
            }
        }
        let c = &self.counters[stage];
        match &err {
            ItemError::Failed(_) => c.failed.fetch_add(1, Ordering::Relaxed),
            ItemError::Quarantined(_) => c.quarantined.fetch_add(1, Ordering::Relaxed),
            ItemError::Skipped(_) => c.skipped.fetch_add(1, Ordering::Relaxed),
            ItemError::Dropped(_) => c.dropped.fetch_add(1, Ordering::Relaxed),
        };
        let problem = ItemProblem {
            stage: self.ids[stage].clone(),
            input: self.names.name(source),
            outcome: err.outcome().to_string(),
            reason: err.reason(),
        };
        if err.is_problem() {
            self.progress.println(&format!(
                "{}: stage \"{}\": {}",
                source.display(),
                self.ids[stage],
                err
            ));
            self.problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(problem);
            if self.fail_fast {
                self.cancelled_by_us.store(true, Ordering::SeqCst);
                self.cancel.store(true, Ordering::SeqCst);
            }
        } else if matches!(err, ItemError::Skipped(_)) {
            let mut s = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
            if s.len() < MAX_SKIPPED_LISTED {
                s.push(problem);
            }
        }
    }
}

/// A stage's connections.
struct Ports {
    inputs: Vec<Receiver<Item>>,
    outputs: Vec<Sender<Item>>,
}

fn send_all(
    outputs: &[Sender<Item>],
    items: Vec<Item>,
    shared: &Shared,
    stage: usize,
    terminal: bool,
) {
    if let Some(t) = &shared.tracker {
        for item in &items {
            match (&item.payload, terminal) {
                (Payload::Output(p), true) => t.output(&item.source, p),
                (_, true) => {}
                (_, false) => t.add(&item.source, outputs.len() as i64),
            }
        }
    }
    for item in items {
        shared.counters[stage]
            .emitted
            .fetch_add(1, Ordering::Relaxed);
        if terminal {
            if let Payload::Output(_) = item.payload {
                shared.outputs.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if let Some((last, rest)) = outputs.split_last() {
            for tx in rest {
                let _ = tx.send(item.clone());
            }
            let _ = last.send(item);
        }
    }
}

fn guarded<T>(f: impl FnOnce() -> Result<T, ItemError>) -> Result<T, ItemError> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            // The panic text comes from code, not data values, but keep it to one line.
            Err(ItemError::failed(format!(
                "internal error (please report): {}",
                what.lines().next().unwrap_or("")
            )))
        }
    }
}

/// Receive from any of several channels until all have ended.
fn recv_any(inputs: &[Receiver<Item>], open: &mut Vec<usize>) -> Option<Item> {
    loop {
        if open.is_empty() {
            return None;
        }
        if open.len() == 1 {
            match inputs[open[0]].recv() {
                Ok(item) => return Some(item),
                Err(_) => {
                    open.clear();
                    return None;
                }
            }
        }
        let mut sel = Select::new();
        for &i in open.iter() {
            sel.recv(&inputs[i]);
        }
        let op = sel.select();
        let which = open[op.index()];
        match op.recv(&inputs[which]) {
            Ok(item) => return Some(item),
            Err(_) => open.retain(|&i| i != which),
        }
    }
}

/// Take items from a stage's inputs until they all end, process each, pass on what comes out
/// and record what fails.
fn consume(
    inputs: &[Receiver<Item>],
    outputs: &[Sender<Item>],
    shared: &Shared,
    i: usize,
    terminal: bool,
    barrier: bool,
    mut process: impl FnMut(Item) -> Result<Vec<Item>, ItemError>,
) {
    let mut open: Vec<usize> = (0..inputs.len()).collect();
    while let Some(item) = recv_any(inputs, &mut open) {
        shared.counters[i].received.fetch_add(1, Ordering::Relaxed);
        let source = item.source.clone();
        match guarded(|| process(item)) {
            Ok(out) => send_all(outputs, out, shared, i, terminal),
            Err(e) => shared.record(i, &source, e),
        }
        if let Some(t) = &shared.tracker {
            if barrier {
                t.hold(&source);
            }
            t.done(&source, &shared.progress);
        }
        shared.progress.inc(i);
    }
}

/// Split `threads` workers over the stages: one each, the rest to per-item stages in turn.
fn workers_per_stage(modes: &[Mode], threads: usize) -> Vec<usize> {
    let mut w = vec![1usize; modes.len()];
    let parallel: Vec<usize> = (0..modes.len())
        .filter(|&i| modes[i] != Mode::Barrier)
        .collect();
    let mut extra = threads.saturating_sub(modes.len());
    let mut k = 0;
    while extra > 0 && !parallel.is_empty() {
        w[parallel[k % parallel.len()]] += 1;
        extra -= 1;
        k += 1;
    }
    w
}

/// Run a plan to the end (or until cancelled) and report.
pub fn run(plan: &Plan, opts: &RunOptions) -> Result<RunReport, String> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let n = plan.stages.len();

    // Resume: check the journal first (reading only, so a refused resume writes nothing), then
    // clear what a killed run left half done.
    let out_dir = if opts.dry_run {
        opts.output_dir.clone()
    } else {
        std::fs::canonicalize(&opts.output_dir)
            .map_err(|e| format!("output folder {}: {e}", opts.output_dir.display()))?
    };
    let fingerprint = Fingerprint::new(&plan.recipe, opts.secret.as_ref());
    let mut complete = HashMap::new();
    let mut leftovers = None;
    if opts.resume && !opts.dry_run {
        let found = journal::read_journal(&out_dir, &fingerprint).map_err(|e| e.to_string())?;
        if !found.journal_found && !opts.quiet {
            eprintln!(
                "dcmflow: no journal in {}: every input is redone (files already there with the same bytes are kept)",
                opts.output_dir.display()
            );
        }
        let r = journal::prepare(&out_dir, found).map_err(|e| e.to_string())?;
        complete = r.complete;
        leftovers = Some(Arc::new(r.leftovers));
    } else if !opts.dry_run {
        // A plain run into a folder that already holds files: one with exactly the bytes an
        // item would write at its name is taken as written, so running the same command twice
        // gives the same tree (no `~hash` copies of identical files); different bytes meet
        // the `if_exists` policy.
        let r =
            journal::prepare(&out_dir, journal::Resume::default()).map_err(|e| e.to_string())?;
        if !r.leftovers.is_empty() {
            leftovers = Some(Arc::new(r.leftovers));
        }
    }
    let complete = Arc::new(complete);

    // The journal: fresh for a new run (replacing an earlier one atomically), continued for a
    // resumed one. An output folder that cannot take it cannot take the outputs either.
    let tracker = if opts.dry_run {
        None
    } else {
        let when = crate::timefmt::rfc3339(started);
        let j = if opts.resume {
            JournalWriter::append(&out_dir, &fingerprint, &when)
        } else {
            JournalWriter::fresh(&out_dir, &fingerprint, &when)
        }
        .map_err(|e| {
            format!(
                "cannot write the journal {}: {e}",
                out_dir.join(journal::JOURNAL_NAME).display()
            )
        })?;
        Some(Arc::new(Tracker {
            journal: j,
            secret: opts.secret.clone(),
            root: out_dir.clone(),
            pending: Mutex::new(HashMap::new()),
            moves: Mutex::new(HashMap::new()),
            error: Mutex::new(None),
        }))
    };
    // Build every runtime before any thread starts: a setup problem stops the run cleanly.
    let mut runtimes: Vec<Option<Runtime>> = Vec::with_capacity(n);
    for (i, st) in plan.stages.iter().enumerate() {
        let ctx = BuildContext {
            stage_id: st.decl.id.clone(),
            output_dir: opts.output_dir.clone(),
            inputs: opts.inputs.clone(),
            secret: opts.secret.clone(),
            pixels_needed_downstream: plan.pixels_needed_from(i),
            cancel: opts.cancel.clone(),
            dry_run: opts.dry_run,
            leftovers: leftovers.clone(),
            moves: tracker.clone().map(|t| t as Arc<dyn journal::MoveLog>),
        };
        let rt = st
            .config
            .build(&ctx)
            .map_err(|e| format!("stage \"{}\" ({}): {e}", st.decl.id, st.decl.kind))?;
        runtimes.push(Some(rt));
    }

    let resumed = AtomicU64::new(0);
    let outputs_before = AtomicU64::new(0);

    let labels: Vec<String> = plan.stages.iter().map(|s| s.decl.id.clone()).collect();
    let shared = Arc::new(Shared {
        ids: labels.clone(),
        counters: (0..n).map(|_| Counters::default()).collect(),
        problems: Mutex::new(Vec::new()),
        skipped: Mutex::new(Vec::new()),
        names: InputNames::new(opts.report_paths, opts.secret.as_ref()),
        outputs: AtomicU64::new(0),
        progress: Progress::new(&labels, opts.quiet),
        cancel: opts.cancel.clone(),
        fail_fast: opts.fail_fast,
        cancelled_by_us: AtomicBool::new(false),
        tracker,
    });

    // One bounded channel per edge.
    let mut ports: Vec<Ports> = (0..n)
        .map(|_| Ports {
            inputs: Vec::new(),
            outputs: Vec::new(),
        })
        .collect();
    for e in plan.graph.edge_indices() {
        let (a, b) = plan.graph.edge_endpoints(e).expect("edge exists");
        let (from, to) = (plan.graph[a], plan.graph[b]);
        let (tx, rx) = bounded(opts.channel_capacity.max(1));
        ports[from].outputs.push(tx);
        ports[to].inputs.push(rx);
    }

    let modes: Vec<Mode> = plan.stages.iter().map(|s| s.config.mode()).collect();
    let per_item: Vec<(usize, Arc<dyn crate::stage::ItemWorker>)> = runtimes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Some(Runtime::PerItem(w)) => Some((i, w.clone())),
            _ => None,
        })
        .collect();
    let workers = workers_per_stage(&modes, opts.threads.max(1));

    std::thread::scope(|scope| {
        for (i, port) in ports.drain(..).enumerate() {
            let rt = runtimes[i].take().expect("built above");
            let terminal = port.outputs.is_empty();
            let shared = shared.clone();
            let cancel = opts.cancel.clone();
            let inputs_given = opts.inputs.clone();
            let nworkers = workers[i];
            match rt {
                Runtime::Source(src) => {
                    shared.progress.set_total(i, src.count(&inputs_given));
                    let (feed_tx, feed_rx) = bounded::<Item>(opts.channel_capacity.max(1));
                    let feed_cancel = cancel.clone();
                    let feeder_src = src.clone();
                    let feeder_shared = shared.clone();
                    let complete = complete.clone();
                    let secret = opts.secret.as_ref();
                    let (resumed, outputs_before) = (&resumed, &outputs_before);
                    scope.spawn(move || {
                        feeder_src.discover(&inputs_given, &mut |found| {
                            if feed_cancel.load(Ordering::SeqCst) {
                                return false;
                            }
                            feeder_shared.counters[i]
                                .received
                                .fetch_add(1, Ordering::Relaxed);
                            match found {
                                Ok(path) => {
                                    // Complete in an earlier run: not even opened.
                                    let key = journal::input_key(secret, &path);
                                    if let Some(done) = complete.get(&key).filter(|d| {
                                        journal::stat(&path) == Some((d.size, d.mtime_ns))
                                    }) {
                                        resumed.fetch_add(1, Ordering::Relaxed);
                                        outputs_before.fetch_add(
                                            done.outputs.len() as u64,
                                            Ordering::Relaxed,
                                        );
                                        feeder_shared.progress.inc(i);
                                        return true;
                                    }
                                    if let Some(t) = &feeder_shared.tracker {
                                        t.begin(&path);
                                    }
                                    feed_tx.send(Item::file(path)).is_ok()
                                }
                                Err((path, err)) => {
                                    feeder_shared.record(i, &path, err);
                                    feeder_shared.progress.inc(i);
                                    true
                                }
                            }
                        });
                    });
                    for _ in 0..nworkers {
                        let src = src.clone();
                        let feed_rx = feed_rx.clone();
                        let outputs = port.outputs.clone();
                        let shared = shared.clone();
                        scope.spawn(move || {
                            for item in feed_rx.iter() {
                                let source = item.source.clone();
                                match guarded(|| src.process(item)) {
                                    Ok(out) => send_all(&outputs, out, &shared, i, terminal),
                                    Err(e) => shared.record(i, &source, e),
                                }
                                if let Some(t) = &shared.tracker {
                                    t.done(&source, &shared.progress);
                                }
                                shared.progress.inc(i);
                            }
                        });
                    }
                }
                Runtime::PerItem(worker) => {
                    for _ in 0..nworkers {
                        let worker = worker.clone();
                        let inputs = port.inputs.clone();
                        let outputs = port.outputs.clone();
                        let shared = shared.clone();
                        scope.spawn(move || {
                            consume(&inputs, &outputs, &shared, i, terminal, false, |item| {
                                worker.process(item)
                            });
                        });
                    }
                }
                Runtime::Barrier(mut worker) => {
                    let inputs = port.inputs;
                    let outputs = port.outputs;
                    let shared = shared.clone();
                    scope.spawn(move || {
                        consume(&inputs, &outputs, &shared, i, terminal, true, |item| {
                            worker.push(item)
                        });
                        let flushed = match std::panic::catch_unwind(AssertUnwindSafe(|| worker.finish())) {
                            Ok(v) => v,
                            Err(_) => vec![Err((
                                Arc::new(PathBuf::from("<barrier>")),
                                ItemError::failed("internal error (please report): barrier panicked while flushing"),
                            ))],
                        };
                        for r in flushed {
                            match r {
                                Ok(item) => send_all(&outputs, vec![item], &shared, i, terminal),
                                Err((source, e)) => shared.record(i, &source, e),
                            }
                        }
                    });
                }
            }
        }
    });
    // Outputs are not flushed to disk one by one (a flush per file halves the speed of small
    // files); one file-system sync here puts the whole run on disk before run.json says it is
    // done.
    if !opts.dry_run {
        sync_file_system(&out_dir);
    }
    shared.progress.finish();

    let stages = (0..n)
        .map(|i| {
            let c = &shared.counters[i];
            (
                shared.ids[i].clone(),
                StageCounts {
                    kind: plan.stages[i].decl.kind.clone(),
                    received: c.received.load(Ordering::Relaxed),
                    emitted: c.emitted.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    quarantined: c.quarantined.load(Ordering::Relaxed),
                    skipped: c.skipped.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                },
            )
        })
        .collect::<std::collections::BTreeMap<_, _>>();
    let dropped = stages.values().map(|c| c.dropped).sum();
    let summaries = per_item
        .iter()
        .filter_map(|(i, w)| w.summary().map(|s| (shared.ids[*i].clone(), s)))
        .collect();
    let mut problems =
        std::mem::take(&mut *shared.problems.lock().unwrap_or_else(|p| p.into_inner()));
    problems.sort_by(|a, b| (&a.input, &a.stage).cmp(&(&b.input, &b.stage)));
    let mut skipped =
        std::mem::take(&mut *shared.skipped.lock().unwrap_or_else(|p| p.into_inner()));
    skipped.sort_by(|a, b| a.input.cmp(&b.input));
    Ok(RunReport {
        dcmflow_version: crate::VERSION.to_string(),
        recipe: RecipeInfo {
            path: plan.recipe.source.file.clone(),
            name: plan.recipe.name.clone(),
            sha256: plan.recipe.sha256.clone(),
        },
        params: plan.recipe.report_params(),
        secret_source: opts.secret_source.clone(),
        report_paths: shared.names.mode(),
        input_hash_key: shared.names.key_label().map(str::to_string),
        inputs: opts.inputs.iter().map(|i| shared.names.name(i)).collect(),
        output: opts.output_dir.clone(),
        started: crate::timefmt::rfc3339(started),
        finished: crate::timefmt::rfc3339(SystemTime::now()),
        seconds: clock.elapsed().as_secs_f64(),
        threads: workers.iter().sum(),
        peak_memory_mib: crate::report::peak_memory_mib(),
        cancelled: opts.cancel.load(Ordering::SeqCst),
        stages,
        outputs: shared.outputs.load(Ordering::Relaxed),
        resumed: resumed.load(Ordering::Relaxed),
        outputs_before: outputs_before.load(Ordering::Relaxed),
        journal_error: shared
            .tracker
            .as_ref()
            .and_then(|t| t.error.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        problems,
        skipped,
        dropped,
        summaries,
    })
}

/// Flush the file system holding `dir` to disk (Linux `syncfs`; elsewhere nothing).
fn sync_file_system(dir: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(d) = std::fs::File::open(dir) {
        use std::os::fd::AsRawFd;
        // SAFETY: `d` is an open descriptor for the whole call; syncfs only reads it.
        unsafe {
            libc::syncfs(d.as_raw_fd());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_go_to_parallel_stages_and_every_stage_gets_one() {
        let m = [Mode::Source, Mode::PerItem, Mode::Barrier, Mode::PerItem];
        assert_eq!(workers_per_stage(&m, 1), vec![1, 1, 1, 1]);
        assert_eq!(workers_per_stage(&m, 7), vec![2, 2, 1, 2]);
    }
}
