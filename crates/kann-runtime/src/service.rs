//! [`Service`]: load an artifact, start the device, run frames.
//!
//! Lifecycle: [`Service::load`] → [`Service::init_device`] →
//! [`Service::process_frame`] (any number of times) → [`Service::terminate`]
//! (or drop). The calling thread copies the inputs into the arena, releases
//! the workers (one thread per cluster after the first), runs cluster 0's
//! commands itself, waits (spin, then park) until the others are done, and
//! copies the outputs out. (It used to only wait: with a thread per cluster
//! on 2 cores, three threads competed and every frame paid a wake-up.)

use crate::device::{pin_current_thread, Device, MAX_CORE};
use crate::memory::AlignedBuf;
use crate::profile::{self, Profile};
use crate::worker::{ResolvedStep, Shared, Worker};
use crate::RuntimeError;
use kann_artifact::{Artifact, ArtifactError, CpuFeatures, FormatVersion, SectionKind};
use kann_kernels::{BufRef, Command, IoTensor, Program, RawBuf};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a waiting thread spins before parking when every cluster has
/// its own core: a frame's barriers and the gap between streamed frames.
/// A parked worker on a 2-vCPU VM sometimes woke milliseconds late (frames
/// of 3 ms took 11 when run right after a pause); 16384 spin hints were
/// 0.05 to 0.6 ms depending on the CPU.
const SPIN_DEDICATED: Duration = Duration::from_millis(2);
/// The same when clusters share cores (spinning would steal the core from
/// the thread being waited for).
const SPIN_SHARED: Duration = Duration::from_micros(2);
/// The most clusters a service runs (far beyond any real core count).
const MAX_CLUSTERS: usize = 4096;

/// Times of one [`Service::process_frame`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// The whole call: input copies, compute, output copies.
    pub host: Duration,
    /// From releasing the workers until the last one finished (compute and
    /// synchronisation, no copies).
    pub device: Duration,
}

/// A loaded artifact and, after [`Service::init_device`], its running workers.
pub struct Service {
    path: String,
    // Drop order: `running` must go (joining the workers) before `artifact`
    // (whose mapping the weights views point into); `Drop` stops it first.
    running: Option<Running>,
    artifact: Artifact,
    program: Program,
    metadata: String,
    warnings: Vec<String>,
}

/// The started device: workers, arena, resolved interface.
struct Running {
    shared: Arc<Shared>,
    /// Cluster 0, which the caller's thread runs itself in each frame (a
    /// thread of its own would only hand work over and wait: on 2 cores,
    /// 3 threads competed and every frame paid a wake-up).
    lead: Worker,
    /// The threads of clusters 1 and on.
    handles: Vec<JoinHandle<()>>,
    /// Every activation; the workers' views point into it, so it outlives them
    /// (`Drop` joins the workers before the fields drop).
    _arena: AlignedBuf,
    /// Where each input is copied to (the arena).
    inputs: Vec<RawBuf>,
    /// Where each output is copied from (arena or weights).
    outputs: Vec<RawBuf>,
    frames: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.quit.store(true, SeqCst);
        self.shared.start.wake_all();
        for h in self.handles.drain(..) {
            // A worker never panics (kernels run under catch_unwind); if one
            // did, there is nothing left to clean up.
            let _ = h.join();
        }
    }
}

impl Service {
    /// Opens (maps) and validates the artifact at `path`, checks that this
    /// CPU can run it, and decodes and validates its program. Each refusal
    /// is one line naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Service, RuntimeError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let artifact = Artifact::open(path)?;
        artifact
            .check_cpu(&CpuFeatures::detect())
            .map_err(|e| ArtifactError::File { path: path.to_path_buf(), error: Box::new(e) })?;
        let metadata = match artifact.find(SectionKind::Metadata, 0) {
            Some(s) => String::from_utf8_lossy(artifact.section_bytes(s.id)?).into_owned(),
            None => String::new(),
        };
        let program = decode_program(&artifact, &shown)?;
        Ok(Service { path: shown, running: None, artifact, program, metadata, warnings: Vec::new() })
    }

    /// The artifact's path as given to [`Service::load`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The artifact's container format version.
    pub fn artifact_version(&self) -> FormatVersion {
        self.artifact.version()
    }

    /// The metadata section (JSON written by the compiler), or "".
    pub fn metadata(&self) -> &str {
        &self.metadata
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    pub fn inputs(&self) -> &[IoTensor] {
        &self.program.inputs
    }

    pub fn outputs(&self) -> &[IoTensor] {
        &self.program.outputs
    }

    pub fn n_clusters(&self) -> usize {
        self.program.n_clusters()
    }

    /// Things worth telling the user that did not stop the service (more
    /// clusters than cores, a core that could not be pinned).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Starts one persistent worker per cluster, worker `c` pinned to
    /// `device.core_for(c)`; allocates the arena (zeroed, 64-byte aligned)
    /// and one scratch buffer per worker, and resolves every buffer once.
    /// Calling it again stops the previous workers first.
    pub fn init_device(&mut self, device: &Device) -> Result<(), RuntimeError> {
        self.running = None;
        let n = self.program.n_clusters();
        check_device(device, n)?;
        let mut distinct = device.core_ids().to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let shared_cores = n > distinct.len();
        if shared_cores {
            self.warnings.push(format!(
                "{n} clusters on {} core(s): clusters share cores (correct, but slower than one core each)",
                distinct.len()
            ));
        }
        self.check_scratch()?;
        let arena = AlignedBuf::zeroed(self.program.arena_bytes, "activation arena").map_err(RuntimeError::Device)?;
        let weights = self.weights_view()?;
        let steps: Arc<[ResolvedStep]> = self
            .program
            .steps
            .iter()
            .map(|s| ResolvedStep {
                kernel: s.kernel.clone(),
                inputs: s.inputs.iter().map(|b| resolve(b, &arena, weights)).collect(),
                outputs: s.outputs.iter().map(|b| resolve(b, &arena, weights)).collect(),
            })
            .collect();
        let inputs = self.program.inputs.iter().map(|t| resolve(&t.buf, &arena, weights)).collect();
        let outputs = self.program.outputs.iter().map(|t| resolve(&t.buf, &arena, weights)).collect();
        let spin = if shared_cores { SPIN_SHARED } else { SPIN_DEDICATED };
        let shared = Arc::new(Shared::new(n, spin, &self.program.clusters));
        let worker = |c: usize| -> Result<Worker, RuntimeError> {
            let scratch = AlignedBuf::zeroed(self.program.scratch_bytes, "scratch buffer").map_err(RuntimeError::Device)?;
            Ok(Worker { cluster: c, shared: shared.clone(), steps: steps.clone(), commands: self.program.clusters[c].clone(), scratch })
        };
        let lead = worker(0)?;
        let mut running = Running { shared: shared.clone(), lead, handles: Vec::with_capacity(n), _arena: arena, inputs, outputs, frames: 0 };
        let (tx, rx) = std::sync::mpsc::channel();
        for c in 1..n {
            let worker = worker(c)?;
            let core = device.core_for(c).unwrap_or(0);
            let tx = tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("kann-cluster-{c}"))
                .spawn(move || {
                    let _ = tx.send((c, pin_current_thread(core)));
                    drop(tx);
                    worker.serve();
                })
                .map_err(|e| RuntimeError::Device(format!("cannot start the thread of cluster {c}: {e}")))?;
            running.handles.push(handle);
        }
        drop(tx);
        let mut pins: Vec<_> = rx.iter().collect();
        pins.sort_by_key(|(c, _)| *c);
        for (c, pin) in pins {
            if let Err(reason) = pin {
                self.warnings.push(format!("cluster {c} runs unpinned: {reason}"));
            }
        }
        self.running = Some(running);
        Ok(())
    }

    /// Runs one frame: `inputs[i]` holds the bytes of `inputs()[i]`
    /// (little-endian, its dtype and shape), `outputs[i]` receives those of
    /// `outputs()[i]`. Lengths are checked first (the error names the
    /// tensor). Does not allocate or lock (threads that park use a
    /// condition variable).
    pub fn process_frame(&mut self, inputs: &[&[u8]], outputs: &mut [&mut [u8]]) -> Result<FrameStats, RuntimeError> {
        let t0 = Instant::now();
        check_lengths("input", &self.program.inputs, inputs.iter().map(|b| b.len()))?;
        check_lengths("output", &self.program.outputs, outputs.iter().map(|b| b.len()))?;
        let run = self.running.as_mut().ok_or(RuntimeError::NotInitialized)?;
        for (dst, src) in run.inputs.iter().zip(inputs) {
            // SAFETY: no frame runs (the workers are all done or parked), so
            // no one else touches the arena; the length was checked above.
            unsafe { dst.bytes_part(0..src.len()) }.copy_from_slice(src);
        }
        let shared = run.shared.clone();
        shared.done.store(0, SeqCst);
        shared.failed.store(0, SeqCst);
        let released = Instant::now();
        shared.epoch.fetch_add(1, SeqCst);
        shared.start.wake_all();
        // Cluster 0 on this thread, then wait for the others.
        run.lead.run_frame();
        shared.done.fetch_add(1, SeqCst);
        shared.finish.wait_until(shared.spin, || shared.done.load(SeqCst) == shared.n);
        let device = released.elapsed();
        run.frames += 1;
        let failed = shared.failed.load(SeqCst);
        if failed != 0 {
            let (step, cluster) = (((failed - 1) >> 16) as usize, ((failed - 1) & 0xffff) as usize);
            let name = self.program.steps.get(step).map_or_else(String::new, |s| s.name.clone());
            return Err(RuntimeError::KernelPanic { step, name, cluster });
        }
        for (src, dst) in run.outputs.iter().zip(outputs.iter_mut()) {
            // SAFETY: the frame is over, no one writes the arena; the
            // lengths match (checked above).
            dst.copy_from_slice(unsafe { src.bytes() });
        }
        Ok(FrameStats { host: t0.elapsed(), device })
    }

    /// Per-step, per-cluster times of the last frame, plus each cluster's
    /// barrier waits; `None` before the first frame.
    pub fn last_profile(&self) -> Option<Profile> {
        let run = self.running.as_ref().filter(|r| r.frames > 0)?;
        // SAFETY: `&self` excludes `process_frame` (`&mut self`), so no frame
        // runs while the records are read.
        let records: Vec<_> = run.shared.records.iter().map(|r| unsafe { r.get() }).collect();
        Some(profile::build(&self.program, &records))
    }

    /// Stops and joins the workers (dropping the service does the same).
    pub fn terminate(mut self) {
        self.running = None;
    }

    /// Every kernel's scratch need fits the per-cluster scratch buffer.
    fn check_scratch(&self) -> Result<(), RuntimeError> {
        for (c, cmds) in self.program.clusters.iter().enumerate() {
            for cmd in cmds {
                if let Command::Run { step, begin, end } = *cmd {
                    let s = &self.program.steps[step as usize];
                    let need = s.kernel.scratch_bytes(end - begin) as u64;
                    if need > self.program.scratch_bytes {
                        return Err(self.invalid(format!(
                            "step #{step} '{}' needs {need} scratch bytes on cluster {c}, the program reserves {}",
                            s.name, self.program.scratch_bytes
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The mapped weights section (empty when the artifact has none).
    fn weights_view(&self) -> Result<&[u8], RuntimeError> {
        match self.artifact.find(SectionKind::Weights, 0) {
            Some(s) => Ok(self.artifact.section_bytes(s.id)?),
            None => Ok(&[]),
        }
    }

    fn invalid(&self, reason: String) -> RuntimeError {
        RuntimeError::Program { path: self.path.clone(), reason }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Join the workers before the artifact mapping goes.
        self.running = None;
    }
}

/// Reads the program sections, decodes and validates them, and checks what
/// the runtime adds: inputs live in the arena, buffers are 4-byte aligned.
fn decode_program(artifact: &Artifact, path: &str) -> Result<Program, RuntimeError> {
    let section = |kind: SectionKind, index: u32, what: &str| -> Result<&[u8], RuntimeError> {
        let s = artifact
            .find(kind, index)
            .ok_or_else(|| RuntimeError::MissingSection { path: path.to_string(), what: what.to_string() })?;
        Ok(artifact.section_bytes(s.id)?)
    };
    let steps = section(SectionKind::Program, 0, "program (steps)")?;
    let plan = section(SectionKind::MemoryPlan, 0, "memory plan")?;
    let mut clusters = Vec::new();
    while let Some(s) = artifact.find(SectionKind::Program, 1 + clusters.len() as u32) {
        clusters.push(artifact.section_bytes(s.id)?);
    }
    let invalid = |reason: String| RuntimeError::Program { path: path.to_string(), reason };
    let program = Program::decode(steps, &clusters, plan).map_err(invalid)?;
    let weights_len = artifact.find(SectionKind::Weights, 0).map_or(0, |s| s.len);
    program.validate(weights_len).map_err(invalid)?;
    for t in &program.inputs {
        if !matches!(t.buf, BufRef::Arena { .. }) {
            return Err(invalid(format!("input '{}' is not in the activation arena", t.name)));
        }
    }
    let misaligned = |b: &BufRef| match *b {
        BufRef::Arena { offset, .. } | BufRef::Weights { offset, .. } => offset % 4 != 0,
    };
    for (i, s) in program.steps.iter().enumerate() {
        if s.inputs.iter().chain(&s.outputs).any(misaligned) {
            return Err(invalid(format!("a buffer of step #{i} '{}' is not 4-byte aligned", s.name)));
        }
    }
    Ok(program)
}

fn check_device(device: &Device, n_clusters: usize) -> Result<(), RuntimeError> {
    if device.core_ids().is_empty() {
        return Err(RuntimeError::Device("the device lists no core".into()));
    }
    if let Some(&c) = device.core_ids().iter().find(|&&c| c > MAX_CORE) {
        return Err(RuntimeError::Device(format!("core {c} does not exist (at most {MAX_CORE})")));
    }
    if n_clusters > MAX_CLUSTERS {
        return Err(RuntimeError::Device(format!("the program has {n_clusters} clusters, at most {MAX_CLUSTERS} run")));
    }
    Ok(())
}

/// The raw view of a buffer: arena offsets into the arena, weights offsets
/// into the mapped weights section (both bounds-checked by validation).
fn resolve(b: &BufRef, arena: &AlignedBuf, weights: &[u8]) -> RawBuf {
    match *b {
        // SAFETY: validation put offset+len inside the arena, which lives
        // (and does not move) as long as the workers.
        BufRef::Arena { offset, len } => unsafe { RawBuf::new(arena.as_mut_ptr().add(offset as usize), len as usize) },
        BufRef::Weights { offset, len } => {
            let base = if weights.is_empty() { NonNull::<u64>::dangling().as_ptr().cast() } else { weights.as_ptr() };
            // SAFETY: in bounds of the mapped section (validation), which the
            // service keeps mapped while workers run; validation also
            // refuses steps writing into the weights, so this mutable
            // pointer is only ever read through.
            unsafe { RawBuf::new(base.add(offset as usize).cast_mut(), len as usize) }
        }
    }
}

fn check_lengths(what: &'static str, tensors: &[IoTensor], got: impl ExactSizeIterator<Item = usize>) -> Result<(), RuntimeError> {
    if got.len() != tensors.len() {
        return Err(RuntimeError::Count { what, expected: tensors.len(), got: got.len() });
    }
    for (t, len) in tensors.iter().zip(got) {
        if len != t.bytes() {
            return Err(RuntimeError::Length {
                what,
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.name(),
                expected: t.bytes(),
                got: len,
            });
        }
    }
    Ok(())
}
