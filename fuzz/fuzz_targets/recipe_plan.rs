//! Recipe YAML -> parse (params, `${}` substitution, per-stage settings) -> plan (the DAG checks).
//! Either a plan or diagnostics; every diagnostic renders.
#![no_main]

use dcmflow_engine::recipe::Recipe;
use dcmflow_engine::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sets = [("layout".to_string(), "{PatientID}/x.dcm".to_string())];
    let recipe = match Recipe::parse("fuzz.yaml", text.to_string(), &sets) {
        Ok(r) => r,
        Err(d) => {
            let _ = d.to_string();
            return;
        }
    };
    match Plan::build(recipe, dcmflow_stages::registry()) {
        Ok(plan) => {
            let _ = plan.to_dot();
            let _ = plan.topo_order();
        }
        Err(d) => {
            let _ = d.to_string();
        }
    }
});
