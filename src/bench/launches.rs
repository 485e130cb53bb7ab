//! Kernel launches counted on cubecl's runtimes (wgpu, CUDA): cubecl logs `Executing <kernel>`
//! once per launch at its `minimal` profiling level without waiting for the kernel, and sends
//! the line through the `log` crate, where a counting logger adds it up. The CPU backend launches
//! no kernels; there nothing is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::exec::DeviceChoice;

#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
static LAUNCHES: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Counts `Executing …` records (cubecl's launch lines); passes nothing else on.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
struct Counter;

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl log::Log for Counter {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        let starts = record.args().as_str().map_or_else(
            || record.args().to_string().starts_with("Executing "),
            |s| s.starts_with("Executing "),
        );
        if starts {
            LAUNCHES.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
static COUNTER: Counter = Counter;

/// Turns counting on for `device`, before its runtime starts (cubecl reads its configuration
/// once). Does nothing on the CPU, or when another logger or configuration came first.
pub fn start(device: DeviceChoice) {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if device != DeviceChoice::Cpu {
        use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
        let Ok(config) = toml::from_str::<CubeClRuntimeConfig>(
            "[profiling.logger]\nlevel = \"minimal\"\nlog = \"info\"\n",
        ) else {
            return;
        };
        let mut slot = CubeClRuntimeConfig::storage().lock();
        if slot.is_some() || log::set_logger(&COUNTER).is_err() {
            return;
        }
        *slot = Some(std::sync::Arc::new(config));
        log::set_max_level(log::LevelFilter::Info);
        COUNTING.store(true, Ordering::SeqCst);
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    let _ = device;
}

/// Whether launches are being counted.
pub fn counting() -> bool {
    COUNTING.load(Ordering::SeqCst)
}

/// The launches so far, once the runtime's logging task has caught up (it runs beside the
/// kernels: after a device sync, wait until the count stops moving).
pub fn settled() -> u64 {
    if !counting() {
        return 0;
    }
    let mut last = LAUNCHES.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = LAUNCHES.load(Ordering::SeqCst);
        if now == last {
            return now;
        }
        last = now;
    }
}
