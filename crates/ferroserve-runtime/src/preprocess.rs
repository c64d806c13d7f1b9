//! Image preprocessing for requests that carry encoded images: a fixed set of OS threads,
//! fed through a bounded channel, each keeping one [`ImagePreprocessor`] (and its scratch
//! buffers) per model it has served. A full channel refuses work at once.

use std::sync::Arc;

use bytes::Bytes;
use ferroserve_core::{ImagePreprocessing, PixelType, TensorBuf};
use ferroserve_vision::{ImagePreprocessor, VisionError};
use tokio::sync::oneshot;

use crate::error::ServeError;

struct Job {
    settings: Arc<ImagePreprocessing>,
    image: Bytes,
    reply: oneshot::Sender<Result<TensorBuf, VisionError>>,
}

/// The preprocessing threads.
pub struct PreprocessPool {
    jobs: crossbeam_channel::Sender<Job>,
}

/// Preprocessors a thread keeps, one per distinct settings, most recent last.
const PREPROCESSORS_PER_THREAD: usize = 8;

impl PreprocessPool {
    /// Starts `threads` threads; at most `capacity` images wait for one.
    pub fn start(threads: usize, capacity: usize) -> Self {
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(capacity.max(1));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("preprocess-{i}"))
                .spawn(move || {
                    let mut preprocessors: Vec<(Arc<ImagePreprocessing>, ImagePreprocessor)> =
                        Vec::new();
                    for job in queue.iter() {
                        if job.reply.is_closed() {
                            continue;
                        }
                        let at = match preprocessors
                            .iter()
                            .position(|(s, _)| Arc::ptr_eq(s, &job.settings))
                        {
                            Some(at) => at,
                            None => {
                                if preprocessors.len() == PREPROCESSORS_PER_THREAD {
                                    preprocessors.remove(0);
                                }
                                let preprocessor = ImagePreprocessor::new((*job.settings).clone());
                                preprocessors.push((job.settings.clone(), preprocessor));
                                preprocessors.len() - 1
                            }
                        };
                        let result = preprocess(&mut preprocessors[at].1, &job.image);
                        let _ = job.reply.send(result);
                    }
                })
                .expect("the OS starts a preprocessing thread");
        }
        PreprocessPool { jobs }
    }

    /// Decodes and preprocesses each image, in parallel, into one buffer holding them
    /// all in order (the batch of the model's image input).
    pub async fn preprocess(
        &self,
        settings: &Arc<ImagePreprocessing>,
        images: &[Bytes],
    ) -> Result<TensorBuf, ServeError> {
        let mut replies = Vec::with_capacity(images.len());
        for image in images {
            let (reply, result) = oneshot::channel();
            let job = Job {
                settings: settings.clone(),
                image: image.clone(),
                reply,
            };
            self.jobs.try_send(job).map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => ServeError::PreprocessingFull,
                crossbeam_channel::TrySendError::Disconnected(_) => ServeError::ShuttingDown,
            })?;
            replies.push(result);
        }
        if replies.len() == 1 {
            // One image, as /classify sends: its own buffer is the batch, not copied.
            return received(replies.pop().expect("one reply"), 0).await;
        }
        let image_bytes = settings.image_bytes();
        let mut batch = TensorBuf::with_capacity(image_bytes * images.len());
        batch.resize(image_bytes * images.len());
        for (i, (reply, slot)) in replies
            .into_iter()
            .zip(batch.as_bytes_mut().chunks_mut(image_bytes))
            .enumerate()
        {
            slot.copy_from_slice(received(reply, i).await?.as_bytes());
        }
        Ok(batch)
    }
}

/// The preprocessed image `index` of a request, once its thread is done with it.
async fn received(
    reply: oneshot::Receiver<Result<TensorBuf, VisionError>>,
    index: usize,
) -> Result<TensorBuf, ServeError> {
    reply
        .await
        .map_err(|_| ServeError::ShuttingDown)?
        .map_err(|source| ServeError::InvalidImage {
            index,
            source: source.into(),
        })
}

fn preprocess(
    preprocessor: &mut ImagePreprocessor,
    image: &[u8],
) -> Result<TensorBuf, VisionError> {
    let settings = preprocessor.settings();
    let mut out = TensorBuf::with_capacity(0);
    out.resize(settings.image_bytes());
    let result = match settings.pixel_type {
        PixelType::F32 => preprocessor.preprocess_f32(image, out.as_mut_slice()),
        PixelType::U8 => preprocessor.preprocess_u8(image, out.as_mut_slice()),
    };
    result.map(|()| out)
}
