//! The per-model scheduler: a bounded queue of jobs, served by one OS thread per model
//! instance, each owning its engine [`Runner`]. With dynamic batching a worker combines
//! queued jobs into one engine run, up to `max_batch` rows, waiting at most `max_delay`
//! for a batch to fill. Jobs whose client has gone are dropped, not computed; jobs past
//! their deadline are answered with a timeout.
//!
//! The queue is bounded twice: by a count of jobs, and by time. Each worker measures
//! how long a job takes to serve; a job that would wait longer than the model's bound
//! behind the jobs already queued is refused at once, before any work goes into it,
//! instead of being served too late.
//!
//! The batching decision, [`next_batch`], is a plain function of the queue and the clock.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferroserve_core::{wire, DataType, Tensor, TensorRef};
use ferroserve_engine::Runner;
use smallvec::{smallvec, SmallVec};
use tokio::sync::oneshot;

use crate::error::ServeError;
use crate::telemetry::Telemetry;

/// How a model's jobs are combined into engine runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPolicy {
    /// Whether jobs are combined (the model has `dynamic_batching`).
    pub dynamic: bool,
    /// Most rows in one run.
    pub max_batch: usize,
    /// Batch sizes run as soon as they can be formed, ascending (`preferred_batch_size`).
    pub preferred: Vec<usize>,
    /// How long the oldest job may wait for its batch to fill.
    pub max_delay: Duration,
}

/// A tensor of a job: dtype, shape (batch dimension first when the model batches) and
/// little-endian bytes (`BYTES` elements in their binary form).
#[derive(Debug, Clone)]
pub struct JobTensor {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: Bytes,
}

impl JobTensor {
    fn view(&self) -> TensorRef<'_> {
        TensorRef {
            dtype: self.dtype,
            shape: &self.shape,
            data: &self.data,
        }
    }
}

/// What a job gets back: its outputs in engine order, and where its time went.
#[derive(Debug)]
pub struct JobResult {
    pub outputs: Vec<JobTensor>,
    pub queued: Duration,
    pub compute: Duration,
    /// Rows of the engine run that computed the job, its own and the other jobs'.
    pub batch_size: usize,
}

/// One request's work: its inputs in engine order.
pub struct Job {
    pub inputs: Vec<JobTensor>,
    /// Batch rows (1 for a model that does not batch).
    pub rows: usize,
    pub enqueued: Instant,
    pub deadline: Option<Instant>,
    pub reply: Reply,
}

/// Where a job's result goes.
pub type Reply = oneshot::Sender<Result<JobResult, ServeError>>;

impl Job {
    /// Whether `other` can share an engine run with this job: same dtypes and the same
    /// shapes apart from the batch dimension.
    fn compatible(&self, other: &Job) -> bool {
        self.inputs.len() == other.inputs.len()
            && self.inputs.iter().zip(&other.inputs).all(|(a, b)| {
                a.dtype == b.dtype
                    && a.shape.len() == b.shape.len()
                    && a.shape.get(1..) == b.shape.get(1..)
            })
    }

    fn cancelled(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The queue the workers share.
struct Queue {
    jobs: VecDeque<Job>,
    /// Places held for jobs still being prepared ([`Scheduler::reserve`]); they count
    /// against the capacity as queued jobs do.
    reserved: usize,
    closed: bool,
}

/// The jobs of one engine run. Most runs have a few; up to four need no allocation.
pub type Batch = SmallVec<[Job; 4]>;

/// Each job's reply channel and result.
type Replies = SmallVec<[(Reply, Result<JobResult, ServeError>); 4]>;

/// What a worker does next.
// The batch is inline so that deciding allocates nothing; a `Next` is moved once.
#[allow(clippy::large_enum_variant)]
enum Next {
    Run(Batch),
    WaitUntil(Instant),
    Wait,
    Exit,
}

/// Decides the next batch: drops cancelled jobs (counting them in `cancelled`), answers
/// expired ones, and takes jobs from the front when a batch is full, of a preferred size,
/// or has waited long enough.
fn next_batch(
    queue: &mut Queue,
    policy: &BatchPolicy,
    now: Instant,
    cancelled: &mut usize,
) -> Next {
    let mut i = 0;
    while i < queue.jobs.len() {
        let job = &queue.jobs[i];
        let expired = job.deadline.is_some_and(|d| d <= now);
        if !job.cancelled() && !expired {
            i += 1;
            continue;
        }
        let job = queue.jobs.remove(i).expect("i is in bounds");
        if expired {
            let waited = now - job.enqueued;
            let _ = job.reply.send(Err(ServeError::Timeout(waited)));
        } else {
            *cancelled += 1;
        }
    }
    let Some(first) = queue.jobs.front() else {
        return if queue.closed { Next::Exit } else { Next::Wait };
    };
    if !policy.dynamic {
        let job = queue.jobs.pop_front().expect("the queue has a first job");
        return Next::Run(smallvec![job]);
    }
    // Jobs that fit from the front, and the rows they make; and the most jobs that make
    // a preferred batch size.
    let (mut fitting, mut rows, mut preferred) = (0, 0, None);
    for job in &queue.jobs {
        if rows + job.rows > policy.max_batch || !first.compatible(job) {
            break;
        }
        rows += job.rows;
        fitting += 1;
        if policy.preferred.contains(&rows) {
            preferred = Some(fitting);
        }
    }
    let take = if fitting == 0 {
        1 // a job larger than max_batch is refused at admission; never let one stall the queue
    } else if rows == policy.max_batch || queue.closed || now >= first.enqueued + policy.max_delay {
        fitting
    } else if let Some(n) = preferred {
        n
    } else {
        return Next::WaitUntil(first.enqueued + policy.max_delay);
    };
    Next::Run(queue.jobs.drain(..take).collect())
}

/// What the workers change under one lock: the queue, and the settings a tuner may
/// change while jobs flow.
struct State {
    queue: Queue,
    settings: Settings,
    /// How long one job takes to serve, averaged over recent runs; `None` before the
    /// first run.
    per_job: Option<Duration>,
}

impl State {
    /// How long a job queued now would wait for the jobs ahead of it, on `instances`
    /// instances; `None` before anything was measured.
    fn expected_wait(&self, instances: usize) -> Option<Duration> {
        let ahead = (self.queue.jobs.len() + self.queue.reserved) as u32;
        Some(self.per_job? * ahead / instances.max(1) as u32)
    }

    /// Folds one run's time per job into the average (weight 1/8 for the new run).
    fn measured(&mut self, per_job: Duration) {
        self.per_job = Some(match self.per_job {
            Some(average) => (average * 7 + per_job) / 8,
            None => per_job,
        });
    }
}

/// How a scheduler runs its jobs now.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Which group of instances takes jobs (an index into the groups given to
    /// [`Scheduler::start`]); the others idle.
    pub instances: usize,
    pub policy: BatchPolicy,
}

struct Shared {
    state: Mutex<State>,
    /// One per instance group, so that waking a worker never wakes an idle group's.
    wake: Vec<Condvar>,
    /// Instances in each group.
    group_sizes: Vec<usize>,
    capacity: usize,
    /// Longest a job may be expected to wait in the queue; `None`: no bound.
    max_wait: Option<Duration>,
    /// The model's name, for errors.
    model: String,
    telemetry: Arc<Telemetry>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_all(&self) {
        for wake in &self.wake {
            wake.notify_all();
        }
    }
}

/// A model version's queue and its instance workers.
pub struct Scheduler {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// How a scheduler starts.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub policy: BatchPolicy,
    /// Most jobs waiting; more are refused.
    pub capacity: usize,
    /// Longest a job may be expected to wait behind the queued ones; a job that would
    /// wait longer is refused. `None`: bounded by `capacity` only.
    pub max_wait: Option<Duration>,
    /// Whether workers keep their input and output buffers from run to run (`false`
    /// allocates them per run: the `--naive` server).
    pub reuse_buffers: bool,
}

impl Scheduler {
    /// Starts one worker thread per runner. `groups` are alternative sets of instances
    /// (say, two sessions of one thread and one of two); only one group takes jobs at a
    /// time, the first at the start; [`apply`](Self::apply) switches.
    pub fn start(
        model: &str,
        groups: Vec<Vec<Box<dyn Runner>>>,
        outputs: usize,
        options: SchedulerOptions,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue {
                    jobs: VecDeque::with_capacity(options.capacity.max(1)),
                    reserved: 0,
                    closed: false,
                },
                settings: Settings {
                    instances: 0,
                    policy: options.policy,
                },
                per_job: None,
            }),
            wake: groups.iter().map(|_| Condvar::new()).collect(),
            group_sizes: groups.iter().map(Vec::len).collect(),
            capacity: options.capacity.max(1),
            max_wait: options.max_wait,
            model: model.to_string(),
            telemetry,
        });
        let mut workers = Vec::new();
        for (group, runners) in groups.into_iter().enumerate() {
            for (i, runner) in runners.into_iter().enumerate() {
                let worker = Worker {
                    shared: shared.clone(),
                    group,
                    runner,
                    reuse_buffers: options.reuse_buffers,
                    batch_inputs: Vec::new(),
                    outputs: vec![Tensor::with_capacity(DataType::Fp32, 0); outputs],
                };
                let handle = std::thread::Builder::new()
                    .name(format!("infer-{model}-{group}.{i}"))
                    .spawn(move || worker.run())
                    .expect("the OS starts a worker thread");
                workers.push(handle);
            }
        }
        Scheduler {
            shared,
            workers: Mutex::new(workers),
        }
    }

    /// Queues a job, or refuses it at once when the queue is full or closed.
    pub fn submit(&self, job: Job) -> Result<(), ServeError> {
        self.reserve()?.submit(job)
    }

    /// Holds a place in the queue for a job still to be prepared, so that no work goes
    /// into a job the queue would refuse; refused at once when the queue is full or
    /// closed. The place is given back if the job is never submitted.
    pub fn reserve(&self) -> Result<Reserved<'_>, ServeError> {
        let mut state = self.shared.lock();
        self.admit(&state)?;
        state.queue.reserved += 1;
        Ok(Reserved {
            scheduler: self,
            held: true,
        })
    }

    /// Whether a job would find a place in the queue now, and why not (a hint: by the
    /// time the job is submitted, the queue may have filled).
    pub fn has_room(&self) -> Result<(), ServeError> {
        self.admit(&self.shared.lock())
    }

    /// Refuses a new job when the queue is closed, full, or would keep it waiting longer
    /// than the bound.
    fn admit(&self, state: &State) -> Result<(), ServeError> {
        let queue = &state.queue;
        if queue.closed {
            return Err(ServeError::ShuttingDown);
        }
        if queue.jobs.len() + queue.reserved >= self.shared.capacity {
            return Err(ServeError::QueueFull(self.shared.model.clone()));
        }
        let instances = self.shared.group_sizes[state.settings.instances];
        if let (Some(bound), Some(wait)) = (self.shared.max_wait, state.expected_wait(instances)) {
            if wait > bound {
                return Err(ServeError::QueueTooLong {
                    model: self.shared.model.clone(),
                    wait,
                    bound,
                });
            }
        }
        Ok(())
    }

    /// How long one job takes to serve, as measured so far.
    pub fn time_per_job(&self) -> Option<Duration> {
        self.shared.lock().per_job
    }

    fn submit_reserved(&self, job: Job) -> Result<(), ServeError> {
        let mut state = self.shared.lock();
        let queue = &mut state.queue;
        queue.reserved -= 1;
        if queue.closed {
            return Err(ServeError::ShuttingDown);
        }
        queue.jobs.push_back(job);
        self.shared.telemetry.queue_depth(queue.jobs.len());
        let group = state.settings.instances;
        drop(state);
        self.shared.wake[group].notify_one();
        Ok(())
    }

    /// Jobs waiting now.
    pub fn queue_depth(&self) -> usize {
        self.shared.lock().queue.jobs.len()
    }

    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.shared.lock().settings.clone()
    }

    /// Changes how jobs are run from the next batch on.
    pub fn apply(&self, settings: Settings) {
        assert!(
            settings.instances < self.shared.wake.len(),
            "no such instance group"
        );
        self.shared.lock().settings = settings;
        self.shared.wake_all();
    }

    /// Stops taking jobs; the workers finish what is queued, then exit.
    pub fn close(&self) {
        self.shared.lock().queue.closed = true;
        self.shared.wake_all();
    }

    /// Closes the queue and waits for the workers to finish every queued job.
    pub fn drain(&self) {
        self.close();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// A place held in a scheduler's queue ([`Scheduler::reserve`]).
pub struct Reserved<'a> {
    scheduler: &'a Scheduler,
    held: bool,
}

impl Reserved<'_> {
    /// Queues the job in the place held for it.
    pub fn submit(mut self, job: Job) -> Result<(), ServeError> {
        self.held = false;
        self.scheduler.submit_reserved(job)
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.held {
            self.scheduler.shared.lock().queue.reserved -= 1;
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.close();
    }
}

fn jobs_in_run(requests: u64) -> u32 {
    u32::try_from(requests.max(1)).unwrap_or(u32::MAX)
}

/// One instance: takes batches off the queue and runs them.
struct Worker {
    shared: Arc<Shared>,
    /// The instance group this worker belongs to.
    group: usize,
    runner: Box<dyn Runner>,
    reuse_buffers: bool,
    /// Reused buffers for inputs combined from several jobs.
    batch_inputs: Vec<Tensor>,
    /// Reused output buffers, one per engine output.
    outputs: Vec<Tensor>,
}

impl Worker {
    fn run(mut self) {
        while let Some(jobs) = self.next_jobs() {
            if !self.reuse_buffers {
                self.batch_inputs = Vec::new();
                let fresh = Tensor::with_capacity(DataType::Fp32, 0);
                self.outputs = vec![fresh; self.outputs.len()];
            }
            self.run_batch(jobs);
        }
    }

    fn next_jobs(&self) -> Option<Batch> {
        let wake = &self.shared.wake[self.group];
        let mut state = self.shared.lock();
        loop {
            let State {
                queue, settings, ..
            } = &mut *state;
            let mut cancelled = 0;
            let next = if settings.instances == self.group || queue.closed {
                next_batch(queue, &settings.policy, Instant::now(), &mut cancelled)
            } else {
                Next::Wait
            };
            for _ in 0..cancelled {
                self.shared.telemetry.cancelled();
            }
            match next {
                Next::Run(jobs) => {
                    let more = !queue.jobs.is_empty();
                    self.shared.telemetry.queue_depth(queue.jobs.len());
                    drop(state);
                    if more {
                        wake.notify_one();
                    }
                    return Some(jobs);
                }
                Next::WaitUntil(until) => {
                    let timeout = until.saturating_duration_since(Instant::now());
                    state = wake
                        .wait_timeout(state, timeout)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                Next::Wait => state = wake.wait(state).unwrap_or_else(|e| e.into_inner()),
                Next::Exit => return None,
            }
        }
    }

    fn run_batch(&mut self, jobs: Batch) {
        let started = Instant::now();
        let rows: usize = jobs.iter().map(|j| j.rows).sum();
        if jobs.len() > 1 {
            self.combine_inputs(&jobs, rows);
        }
        let gathered = Instant::now();
        // An engine that panics fails this batch, not the worker: the jobs behind it
        // still get served.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let [job] = jobs.as_slice() {
                let inputs: Vec<TensorRef<'_>> = job.inputs.iter().map(JobTensor::view).collect();
                self.runner.run(&inputs, &mut self.outputs)
            } else {
                let inputs: Vec<TensorRef<'_>> =
                    self.batch_inputs.iter().map(Tensor::view).collect();
                self.runner.run(&inputs, &mut self.outputs)
            }
        }))
        .unwrap_or_else(|_| {
            Err(ferroserve_engine::EngineError::Run(
                "the engine panicked".into(),
            ))
        });
        let ran = Instant::now();
        let compute = ran - started;
        let requests = jobs.len() as u64;
        let replies = match result {
            Ok(()) => self.split_outputs(jobs, rows, started, compute),
            Err(e) => {
                let error = ServeError::from(e);
                jobs.into_iter()
                    .map(|job| (job.reply, Err(error.clone())))
                    .collect()
            }
        };
        // Counted before the replies go out, so that a client asking for statistics
        // right after its answer sees its execution.
        self.shared.telemetry.executed(
            rows,
            requests,
            gathered - started,
            ran - gathered,
            ran.elapsed(),
        );
        self.shared.lock().measured(compute / jobs_in_run(requests));
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
    }

    /// Concatenates the jobs' inputs along the batch dimension into `batch_inputs`.
    fn combine_inputs(&mut self, jobs: &[Job], rows: usize) {
        let first = &jobs[0];
        self.batch_inputs.resize_with(first.inputs.len(), || {
            Tensor::with_capacity(DataType::Fp32, 0)
        });
        for (i, tensor) in self.batch_inputs.iter_mut().enumerate() {
            let spec = &first.inputs[i];
            let mut shape = spec.shape.clone();
            shape[0] = rows;
            if spec.dtype == DataType::Bytes {
                // Elements in their binary form, row-major: the jobs' data end to end are
                // the batch's.
                let bytes = jobs.iter().map(|job| job.inputs[i].data.len()).sum();
                tensor.reshape_bytes(&shape, bytes);
            } else {
                tensor.reshape(spec.dtype, &shape);
            }
            let mut offset = 0;
            let bytes = tensor.data.as_bytes_mut();
            for job in jobs {
                let data = &job.inputs[i].data;
                bytes[offset..offset + data.len()].copy_from_slice(data);
                offset += data.len();
            }
        }
    }

    /// Each job's rows of each output, with the job's reply channel.
    fn split_outputs(
        &self,
        jobs: Batch,
        rows: usize,
        started: Instant,
        compute: Duration,
    ) -> Replies {
        let single = jobs.len() == 1;
        let mut row = 0;
        let mut replies = Replies::new();
        for job in jobs {
            let outputs = self
                .outputs
                .iter()
                .map(|out| {
                    if single {
                        Ok(whole(out))
                    } else {
                        split_rows(out, row, job.rows, rows)
                    }
                })
                .collect::<Result<Vec<_>, _>>();
            row += job.rows;
            let result = outputs.map(|outputs| JobResult {
                outputs,
                queued: started.saturating_duration_since(job.enqueued),
                compute,
                batch_size: rows,
            });
            replies.push((job.reply, result));
        }
        replies
    }
}

fn whole(out: &Tensor) -> JobTensor {
    JobTensor {
        dtype: out.dtype,
        shape: out.shape.clone(),
        data: Bytes::copy_from_slice(out.data.as_bytes()),
    }
}

/// Rows `first..first + count` of an output whose first dimension is the batch of
/// `rows` rows.
fn split_rows(
    out: &Tensor,
    first: usize,
    count: usize,
    rows: usize,
) -> Result<JobTensor, ServeError> {
    if out.shape.first() != Some(&rows) {
        return Err(ServeError::UnusableOutput(format!(
            "an output of shape {:?} does not have the batch of {rows} rows first",
            out.shape
        )));
    }
    let bytes = out.data.as_bytes();
    let (start, end) = if out.dtype == DataType::Bytes {
        // Variable-length elements: found by walking their length prefixes.
        let per_row = out.shape[1..].iter().product::<usize>();
        let offset = |row: usize| {
            wire::bytes_prefix_len(bytes, row * per_row).ok_or_else(|| {
                ServeError::UnusableOutput(format!(
                    "a BYTES output of shape {:?} does not hold its elements",
                    out.shape
                ))
            })
        };
        (offset(first)?, offset(first + count)?)
    } else {
        let row_bytes = bytes.len() / rows;
        (first * row_bytes, (first + count) * row_bytes)
    };
    let mut shape = out.shape.clone();
    shape[0] = count;
    Ok(JobTensor {
        dtype: out.dtype,
        shape,
        data: Bytes::copy_from_slice(&bytes[start..end]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        rows: usize,
        enqueued: Instant,
    ) -> (Job, oneshot::Receiver<Result<JobResult, ServeError>>) {
        let (reply, receiver) = oneshot::channel();
        let input = JobTensor {
            dtype: DataType::Fp32,
            shape: vec![rows, 2],
            data: Bytes::from(vec![0u8; rows * 8]),
        };
        let job = Job {
            inputs: vec![input],
            rows,
            enqueued,
            deadline: None,
            reply,
        };
        (job, receiver)
    }

    fn queue(jobs: Vec<Job>) -> Queue {
        Queue {
            jobs: jobs.into(),
            reserved: 0,
            closed: false,
        }
    }

    /// No dynamic batching: one job per run.
    fn one_at_a_time() -> BatchPolicy {
        BatchPolicy {
            dynamic: false,
            max_batch: 1,
            preferred: vec![],
            max_delay: Duration::ZERO,
        }
    }

    /// A scheduler of model `m` (one output) over the instance `groups`, one job per run.
    fn scheduler(
        groups: Vec<Vec<Box<dyn Runner>>>,
        capacity: usize,
        reuse_buffers: bool,
    ) -> Scheduler {
        let options = SchedulerOptions {
            policy: one_at_a_time(),
            capacity,
            max_wait: Some(Duration::from_millis(50)),
            reuse_buffers,
        };
        Scheduler::start(
            "m",
            groups,
            1,
            options,
            Arc::new(Telemetry::new("m", 1, false)),
        )
    }

    fn dynamic(max_batch: usize, preferred: Vec<usize>, delay_ms: u64) -> BatchPolicy {
        BatchPolicy {
            dynamic: true,
            max_batch,
            preferred,
            max_delay: Duration::from_millis(delay_ms),
        }
    }

    fn rows_of(next: Next) -> Vec<usize> {
        match next {
            Next::Run(jobs) => jobs.iter().map(|j| j.rows).collect(),
            Next::WaitUntil(_) => vec![],
            Next::Wait | Next::Exit => panic!("expected a batch or a wait"),
        }
    }

    #[test]
    fn without_dynamic_batching_jobs_run_one_at_a_time() {
        let now = Instant::now();
        let (a, _ra) = job(2, now);
        let (b, _rb) = job(1, now);
        let mut q = queue(vec![a, b]);
        let policy = BatchPolicy {
            dynamic: false,
            max_batch: 8,
            preferred: vec![],
            max_delay: Duration::ZERO,
        };
        assert_eq!(rows_of(next_batch(&mut q, &policy, now, &mut 0)), [2]);
        assert_eq!(rows_of(next_batch(&mut q, &policy, now, &mut 0)), [1]);
        assert!(matches!(
            next_batch(&mut q, &policy, now, &mut 0),
            Next::Wait
        ));
        q.closed = true;
        assert!(matches!(
            next_batch(&mut q, &policy, now, &mut 0),
            Next::Exit
        ));
    }

    #[test]
    fn a_partial_batch_waits_for_the_delay_then_runs() {
        let now = Instant::now();
        let (a, _ra) = job(1, now);
        let (b, _rb) = job(2, now);
        let mut q = queue(vec![a, b]);
        let policy = dynamic(8, vec![], 5);
        match next_batch(&mut q, &policy, now, &mut 0) {
            Next::WaitUntil(t) => assert_eq!(t, now + Duration::from_millis(5)),
            _ => panic!("a batch of 3 out of 8 should wait"),
        }
        assert_eq!(
            rows_of(next_batch(
                &mut q,
                &policy,
                now + Duration::from_millis(5),
                &mut 0
            )),
            [1, 2]
        );
    }

    #[test]
    fn a_full_batch_runs_at_once_and_never_exceeds_max_batch() {
        let now = Instant::now();
        let jobs: Vec<_> = [3, 3, 2, 4].iter().map(|&r| job(r, now)).collect();
        let (jobs, _receivers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let mut q = queue(jobs);
        let policy = dynamic(8, vec![], 1000);
        assert_eq!(rows_of(next_batch(&mut q, &policy, now, &mut 0)), [3, 3, 2]);
        assert_eq!(q.jobs.len(), 1);
    }

    #[test]
    fn a_preferred_size_runs_without_waiting() {
        let now = Instant::now();
        let jobs: Vec<_> = [2, 2, 1].iter().map(|&r| job(r, now)).collect();
        let (jobs, _receivers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let mut q = queue(jobs);
        let policy = dynamic(8, vec![2, 4], 1000);
        assert_eq!(rows_of(next_batch(&mut q, &policy, now, &mut 0)), [2, 2]);
    }

    #[test]
    fn cancelled_jobs_are_dropped_and_expired_ones_time_out() {
        let now = Instant::now();
        let (gone, receiver) = job(1, now);
        drop(receiver);
        let (mut late, late_reply) = job(1, now);
        late.deadline = Some(now + Duration::from_millis(1));
        let (fine, _rf) = job(1, now);
        let mut q = queue(vec![gone, late, fine]);
        let policy = dynamic(8, vec![], 0);
        let later = now + Duration::from_millis(2);
        assert_eq!(rows_of(next_batch(&mut q, &policy, later, &mut 0)), [1]);
        assert!(q.jobs.is_empty());
        let answer = late_reply
            .blocking_recv()
            .expect("the expired job is answered");
        assert!(matches!(answer, Err(ServeError::Timeout(_))));
    }

    #[test]
    fn jobs_of_different_shapes_do_not_share_a_run() {
        let now = Instant::now();
        let (a, _ra) = job(1, now);
        let (mut b, _rb) = job(1, now);
        b.inputs[0].shape = vec![1, 3];
        let mut q = queue(vec![a, b]);
        assert_eq!(
            rows_of(next_batch(&mut q, &dynamic(8, vec![], 0), now, &mut 0)),
            [1]
        );
        assert_eq!(q.jobs.len(), 1);
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_a_closed_one_refuses_too() {
        // No workers: nothing leaves the queue.
        let scheduler = scheduler(vec![Vec::new()], 2, true);
        let now = Instant::now();
        let (a, _ra) = job(1, now);
        let (b, _rb) = job(1, now);
        let (c, _rc) = job(1, now);
        scheduler.submit(a).unwrap();
        scheduler.submit(b).unwrap();
        assert!(matches!(scheduler.submit(c), Err(ServeError::QueueFull(_))));
        assert_eq!(scheduler.queue_depth(), 2);
        scheduler.close();
        let (d, _rd) = job(1, now);
        assert!(matches!(scheduler.submit(d), Err(ServeError::ShuttingDown)));
    }

    #[test]
    fn a_job_that_would_wait_past_the_bound_is_refused_at_once() {
        // No workers: nothing leaves the queue. Bound 50 ms, 20 ms per job measured.
        let scheduler = scheduler(vec![Vec::new()], 10, true);
        let now = Instant::now();
        let (a, _ra) = job(1, now);
        scheduler.submit(a).unwrap();
        // Nothing measured yet: only the count bounds the queue.
        assert_eq!(scheduler.time_per_job(), None);
        scheduler.shared.lock().measured(Duration::from_millis(20));
        let (b, _rb) = job(1, now);
        let (c, _rc) = job(1, now);
        scheduler.submit(b).unwrap(); // waits for 1 job: 20 ms
        scheduler.submit(c).unwrap(); // waits for 2 jobs: 40 ms
        let (d, _rd) = job(1, now);
        let refused = scheduler.submit(d).unwrap_err();
        assert!(
            matches!(refused, ServeError::QueueTooLong { wait, bound, .. }
                if wait == Duration::from_millis(60) && bound == Duration::from_millis(50)),
            "{refused:?}"
        );
        assert!(scheduler.has_room().is_err());
        assert_eq!(scheduler.queue_depth(), 3);
    }

    #[test]
    fn the_average_time_per_job_follows_recent_runs() {
        let mut state = State {
            queue: queue(Vec::new()),
            settings: Settings {
                instances: 0,
                policy: one_at_a_time(),
            },
            per_job: None,
        };
        state.measured(Duration::from_millis(8));
        assert_eq!(state.per_job, Some(Duration::from_millis(8)));
        state.measured(Duration::from_millis(16));
        assert_eq!(state.per_job, Some(Duration::from_millis(9)));
        state.queue.reserved = 4;
        // Four jobs ahead, two instances: two rounds of 9 ms.
        assert_eq!(state.expected_wait(2), Some(Duration::from_millis(18)));
    }

    #[test]
    fn workers_measure_the_time_a_job_takes() {
        struct Slow;
        impl Runner for Slow {
            fn run(
                &mut self,
                _: &[TensorRef<'_>],
                outputs: &mut [Tensor],
            ) -> Result<(), ferroserve_engine::EngineError> {
                std::thread::sleep(Duration::from_millis(5));
                outputs[0].reshape(DataType::Fp32, &[1, 1]);
                Ok(())
            }
        }
        let scheduler = scheduler(vec![vec![Box::new(Slow)]], 4, true);
        let (a, answer) = job(1, Instant::now());
        scheduler.submit(a).unwrap();
        answer.blocking_recv().unwrap().unwrap();
        assert!(scheduler.time_per_job().unwrap() >= Duration::from_millis(5));
    }

    #[test]
    fn a_reserved_place_counts_until_submitted_or_given_back() {
        let scheduler = scheduler(vec![Vec::new()], 2, true);
        let now = Instant::now();
        let first = scheduler.reserve().unwrap();
        let second = scheduler.reserve().unwrap();
        assert!(scheduler.has_room().is_err());
        assert!(matches!(scheduler.reserve(), Err(ServeError::QueueFull(_))));
        let (a, _ra) = job(1, now);
        assert!(matches!(scheduler.submit(a), Err(ServeError::QueueFull(_))));
        // Given back unused: the place is free again.
        drop(second);
        assert!(scheduler.has_room().is_ok());
        let (b, _rb) = job(1, now);
        first.submit(b).unwrap();
        assert_eq!(scheduler.queue_depth(), 1);
        assert!(scheduler.has_room().is_ok());
    }

    /// Panics on its first run, then copies its input to its output.
    struct PanicsOnce {
        panicked: bool,
    }

    impl Runner for PanicsOnce {
        fn run(
            &mut self,
            inputs: &[TensorRef<'_>],
            outputs: &mut [Tensor],
        ) -> Result<(), ferroserve_engine::EngineError> {
            if !self.panicked {
                self.panicked = true;
                panic!("engine bug");
            }
            outputs[0].reshape(inputs[0].dtype, inputs[0].shape);
            outputs[0]
                .data
                .as_bytes_mut()
                .copy_from_slice(inputs[0].data);
            Ok(())
        }
    }

    #[test]
    fn an_engine_panic_fails_its_batch_and_the_worker_goes_on() {
        let runner: Box<dyn Runner> = Box::new(PanicsOnce { panicked: false });
        let scheduler = scheduler(vec![vec![runner]], 8, true);
        let (first, first_reply) = job(1, Instant::now());
        let (second, second_reply) = job(1, Instant::now());
        scheduler.submit(first).unwrap();
        scheduler.submit(second).unwrap();
        let failed = first_reply
            .blocking_recv()
            .expect("the first job is answered");
        assert!(matches!(failed, Err(ServeError::Engine(e)) if e.to_string().contains("panicked")));
        let served = second_reply
            .blocking_recv()
            .expect("the second job is answered");
        assert_eq!(
            served.expect("the worker survived").outputs[0].shape,
            [1, 2]
        );
        scheduler.drain();
    }

    /// Copies its one input to its one output, whatever the datatype.
    struct Echo;

    impl Runner for Echo {
        fn run(
            &mut self,
            inputs: &[TensorRef<'_>],
            outputs: &mut [Tensor],
        ) -> Result<(), ferroserve_engine::EngineError> {
            let input = inputs[0];
            if input.dtype == DataType::Bytes {
                outputs[0].reshape_bytes(input.shape, input.data.len());
            } else {
                outputs[0].reshape(input.dtype, input.shape);
            }
            outputs[0].data.as_bytes_mut().copy_from_slice(input.data);
            Ok(())
        }
    }

    #[test]
    fn string_jobs_share_a_run_and_each_gets_its_own_rows() {
        let options = SchedulerOptions {
            // Both jobs are queued before the batch of 3 rows runs.
            policy: dynamic(4, vec![3], 10_000),
            capacity: 8,
            reuse_buffers: true,
            max_wait: None,
        };
        let telemetry = Arc::new(Telemetry::new("m", 1, false));
        let runner: Box<dyn Runner> = Box::new(Echo);
        let scheduler = Scheduler::start("m", vec![vec![runner]], 1, options, telemetry.clone());
        let strings = |rows: &[[&str; 2]]| {
            let elements: Vec<&str> = rows.iter().flatten().copied().collect();
            JobTensor {
                dtype: DataType::Bytes,
                shape: vec![rows.len(), 2],
                data: wire::encode_bytes(&elements).unwrap(),
            }
        };
        let first = strings(&[["a", ""]]);
        let second = strings(&[["longer string", "b"], ["", "ccc"]]);
        let mut replies = Vec::new();
        for (tensor, rows) in [(first.clone(), 1), (second.clone(), 2)] {
            let (reply, receiver) = oneshot::channel();
            let job = Job {
                inputs: vec![tensor],
                rows,
                enqueued: Instant::now(),
                deadline: None,
                reply,
            };
            scheduler.submit(job).unwrap();
            replies.push(receiver);
        }
        for (receiver, sent) in replies.into_iter().zip([first, second]) {
            let result = receiver.blocking_recv().unwrap().unwrap();
            let output = &result.outputs[0];
            assert_eq!(
                (output.dtype, &output.shape),
                (DataType::Bytes, &sent.shape)
            );
            assert_eq!(output.data, sent.data);
        }
        assert_eq!(telemetry.statistics("m", 1).execution_count, 1, "one run");
        scheduler.drain();
    }

    /// Answers every job with its own tag, so a test sees which instance ran it.
    struct Tagged(u8);

    impl Runner for Tagged {
        fn run(
            &mut self,
            _inputs: &[TensorRef<'_>],
            outputs: &mut [Tensor],
        ) -> Result<(), ferroserve_engine::EngineError> {
            outputs[0].reshape(DataType::Uint8, &[1]);
            outputs[0].data.as_bytes_mut()[0] = self.0;
            Ok(())
        }
    }

    #[test]
    fn only_the_active_instance_group_takes_jobs() {
        let groups: Vec<Vec<Box<dyn Runner>>> = vec![
            vec![Box::new(Tagged(0))],
            vec![Box::new(Tagged(1)), Box::new(Tagged(1))],
        ];
        // Buffers per run: the `--naive` path runs too.
        let scheduler = scheduler(groups, 16, false);
        let tags = |count: usize| -> Vec<u8> {
            let replies: Vec<_> = (0..count)
                .map(|_| {
                    let (job, reply) = job(1, Instant::now());
                    scheduler.submit(job).unwrap();
                    reply
                })
                .collect();
            replies
                .into_iter()
                .map(|r| r.blocking_recv().unwrap().unwrap().outputs[0].data[0])
                .collect()
        };
        assert_eq!(tags(3), [0, 0, 0]);
        scheduler.apply(Settings {
            instances: 1,
            policy: one_at_a_time(),
        });
        assert_eq!(tags(5), [1; 5]);
        scheduler.apply(Settings {
            instances: 0,
            policy: one_at_a_time(),
        });
        assert_eq!(tags(2), [0, 0]);
        scheduler.drain();
    }
}
