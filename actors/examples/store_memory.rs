//! The session store's memory against the number of sessions it holds
//! (`scripts/bench-store-memory` drives it).
//!
//! Opens a `SledStore` as the engine does (same cache and flush settings)
//! in a fresh directory and writes CALLS real `SessionRecord`s through the
//! `SessionStore` trait, the way calls do: random Call-IDs (as an SBC's
//! are), `--live` sessions at once journaled in turn as they grow, then
//! each written whole and durably (flushed) as it ends. Prints the process
//! RSS every `--every` sessions as `sessions rss_mb`.
//!
//! cargo run --release -p earshot-actors --example store_memory -- --calls 12000

use clap::Parser;
use earshot::ids::CallId;
use earshot::session::{SessionQuery, SessionRecord, SessionStore, SourceInfo};
use earshot_actors::store::SledStore;
use std::collections::VecDeque;
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 12_000)]
    calls: u64,
    /// Bytes of the final record (an ASR-off call's is about 15 KB).
    #[arg(long, default_value_t = 15_000)]
    record_bytes: usize,
    /// Journal writes before the final one.
    #[arg(long, default_value_t = 5)]
    journal: usize,
    #[arg(long, default_value_t = 1_000)]
    every: u64,
    /// Sessions live at once: each new session starts as the
    /// oldest ends, and live ones are journaled in turn, interleaved as
    /// concurrent calls are.
    #[arg(long, default_value_t = 1)]
    live: u64,
    /// Store directory (removed first).
    #[arg(long, default_value = "target/store-memory")]
    dir: PathBuf,
}

/// Words of the transcript-like text (one string, split at spaces).
const WORDS: &str = "thank you for calling how can I help today my account number is the \
    payment was taken twice this month let me check that please hold one moment okay yes no \
    sorry about refund card address changed last week and bill says wrong amount could we set \
    up a plan it will take three to five working days is there anything else great have nice \
    day name date of birth confirm postcode email phone line internet down since morning \
    engineer visit tomorrow between eight twelve case reference cancel contract upgrade price \
    discount offer";

/// About `bytes` of space-separated words from [`WORDS`] (xorshift, fixed
/// seed).
fn transcript_text(bytes: usize) -> String {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(words[(x % words.len() as u64) as usize]);
        out.push(' ');
    }
    out.truncate(bytes);
    out
}

fn rss_mb() -> f64 {
    earshot_actors::metrics::process().map_or(0.0, |p| p.rss_bytes as f64 / (1024.0 * 1024.0))
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let _ = std::fs::remove_dir_all(&a.dir);
    let mut store = SledStore::open(&a.dir)?;
    println!("sessions\trss_mb");
    println!("0\t{:.1}", rss_mb());
    // Transcript-like text: words drawn at random from a call-centre
    // vocabulary. zstd -1 takes 15 KB of it to 0.31 of its size, real
    // records to 0.23-0.25, so the bench errs on the large side.
    let text = transcript_text(a.record_bytes);
    let id_of = |n: u64| {
        format!(
            "lg-{:016x}-{n}@127.0.0.1",
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    };
    let live = a.live.max(1);
    let stride = (live / a.journal.max(1) as u64).max(1);
    let mut recs = VecDeque::new();
    let base = serde_json::to_vec(&SessionRecord::new(
        CallId::new(id_of(0)),
        chrono::Utc::now(),
        SourceInfo::default(),
    ))?
    .len();
    let room = a.record_bytes.saturating_sub(base);
    // Stage k of journal+1 holds k/(journal+1) of the final text.
    let write = |store: &mut SledStore, rec: &mut SessionRecord, k: usize, durable: bool| {
        rec.cumulative_transcript = text[..room * k / (a.journal + 1)].to_string();
        if durable {
            store.put(rec)
        } else {
            store.put_lazy(rec)
        }
    };
    for n in 0..a.calls {
        recs.push_back((
            n,
            SessionRecord::new(
                CallId::new(id_of(n)),
                chrono::Utc::now(),
                SourceInfo::default(),
            ),
        ));
        // Journal the live sessions whose turn it is.
        for (start, rec) in recs.iter_mut() {
            let age = n - *start;
            if age % stride == 0 && age / stride < a.journal as u64 {
                write(&mut store, rec, (age / stride) as usize + 1, false)?;
            }
        }
        if recs.len() as u64 >= live {
            let (_, mut rec) = recs.pop_front().expect("live");
            write(&mut store, &mut rec, a.journal + 1, true)?;
        }
        if (n + 1) % a.every == 0 {
            println!("{}\t{:.1}", n + 1, rss_mb());
        }
    }
    println!("end\t{:.1}", rss_mb());
    // Then read as the API does: /health and /stats count the sessions,
    // and a client pages through all of them, 500 at a time.
    let t0 = std::time::Instant::now();
    let count = store.len();
    println!("count_ms\t{}", t0.elapsed().as_millis());
    println!("counted\t{:.1}", rss_mb());
    let t0 = std::time::Instant::now();
    let mut listed = 0;
    for page in 1.. {
        let q = SessionQuery {
            page,
            page_size: 500,
            ..Default::default()
        };
        let got = store.list(&q)?.items.len();
        if got == 0 {
            break;
        }
        listed += got;
    }
    anyhow::ensure!(listed == count, "listed {listed} of {count}");
    println!("list_all_ms\t{}", t0.elapsed().as_millis());
    println!("listed\t{:.1}", rss_mb());
    // The dashboard's request: the newest 50, without a filter, with a
    // status every session has (both counted: the walk stops at the page)
    // and with a time range that holds every session (every listing entry
    // is decoded), mean of 20 requests.
    let status = store
        .list(&SessionQuery::default())?
        .items
        .first()
        .map(|r| r.status);
    let queries = [
        ("page1", SessionQuery::default()),
        (
            "page1_status",
            SessionQuery {
                status,
                ..Default::default()
            },
        ),
        (
            "page1_range",
            SessionQuery {
                from: Some(chrono::DateTime::UNIX_EPOCH),
                ..Default::default()
            },
        ),
    ];
    for (name, q) in queries {
        let t0 = std::time::Instant::now();
        for _ in 0..20 {
            let page = store.list(&q)?;
            anyhow::ensure!(
                page.total == count && page.items.len() == 50.min(count),
                "{name}: {} items, total {} of {count}",
                page.items.len(),
                page.total
            );
        }
        println!(
            "{name}_ms\t{:.1}",
            t0.elapsed().as_secs_f64() * 1000.0 / 20.0
        );
    }
    Ok(())
}
