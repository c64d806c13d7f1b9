//! An encoded image of any bytes through the bundled model's preprocessing: decoded,
//! resized, cropped and normalised, or refused with an error. Never a panic, and never
//! more memory than the pixel limit allows (lowered here so that each run stays fast).
#![no_main]

use std::cell::RefCell;

use ferroserve_core::preprocess::ImagePreprocessing;
use ferroserve_vision::ImagePreprocessor;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static PREPROCESSOR: RefCell<(ImagePreprocessor, Vec<f32>)> = RefCell::new({
        let mut settings = ImagePreprocessing::imagenet();
        settings.max_pixels = 4 * 1024 * 1024;
        let out = vec![0.0; settings.image_len()];
        (ImagePreprocessor::new(settings), out)
    });
}

fuzz_target!(|data: &[u8]| {
    PREPROCESSOR.with_borrow_mut(|(preprocessor, out)| {
        let _ = preprocessor.preprocess_f32(data, out);
    });
});
