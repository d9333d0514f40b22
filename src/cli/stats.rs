//! `pizza-orders stats`: the analytics per day as a table (or the JSON the node answers).

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::admin_client::{self, CallError};
use super::{usage_error, AdminArgs};
use crate::domain::{Day, Timestamp};

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(admin: AdminArgs, days: u32, json: bool) -> ExitCode {
    if !(1..=366).contains(&days) {
        return usage_error("--days must be between 1 and 366");
    }
    let to = Day::of(Timestamp::now());
    let path = format!("/admin/analytics?from={}&to={}", to.minus(days - 1).text(), to.text());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report: Result<Value, CallError> = runtime.block_on(async {
        let response = admin_client::get(&admin, &path, TIMEOUT).await?;
        response.json::<Value>().await.map_err(|e| CallError::Failed(format!("the node's answer is not JSON: {e}")))
    });
    let report = match report {
        Ok(report) => report,
        Err(CallError::Usage(e)) => return usage_error(e),
        Err(CallError::Failed(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    print!("{}", table(&report));
    ExitCode::SUCCESS
}

/// The report as an aligned table, one day a row, totals last.
pub fn table(report: &Value) -> String {
    let empty = Vec::new();
    let days = report["days"].as_array().unwrap_or(&empty);
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut out = format!(
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9}\n",
        "day", "views", "visitors", "store", "slot", "ordered", "conversion", "cancelled", "slot full"
    );
    let mut sums = [0u64; 7];
    for day in days {
        let row = [
            n(&day["views"]),
            n(&day["visitors"]),
            n(&day["funnel"]["catalog_shown"]),
            n(&day["funnel"]["slot_picked"]),
            n(&day["funnel"]["order_placed"]),
            n(&day["cancellations"]),
            n(&day["slot_full"]),
        ];
        for (sum, v) in sums.iter_mut().zip(row) {
            *sum += v;
        }
        let conversion = day["conversion"].as_f64().unwrap_or(0.0) * 100.0;
        out.push_str(&format!(
            "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.1}% {:>9} {:>9}\n",
            day["day"].as_str().unwrap_or("?"),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            conversion,
            row[5],
            row[6]
        ));
    }
    out.push_str(&format!(
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9}\n",
        "total", sums[0], "-", sums[2], sums[3], sums[4], "", sums[5], sums[6]
    ));
    out.push_str("visitors are distinct per day (HyperLogLog, about 1 % error); a day's total is not the sum\n");
    out
}
