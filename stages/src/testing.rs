//! Test support shared by the stage modules' tests: shared-folder lookup and external tools,
//! which are optional on a developer machine but required under CI (where a missing one is a
//! failure, so no test silently passes by skipping).

#![cfg(test)]

/// `Some(x)` as given; when `None` under CI (`CI` set), panic naming what is missing.
pub fn required<T>(what: &str, v: Option<T>) -> Option<T> {
    if v.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{what} is required under CI but was not found");
        }
        eprintln!("skipping: {what} not found");
    }
    v
}
