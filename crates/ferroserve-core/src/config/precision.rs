//! The precision a model is computed in, from `parameters`, with the names Triton's
//! OpenVINO backend and OpenVINO itself use; and the OpenVINO backend parameters that
//! ferroserve answers otherwise.

use super::{ConfigError, ModelConfig};

/// The precision a model's floating-point operations are computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// bf16 where the CPU computes it natively and the engine can (OpenVINO), else f32:
    /// what OpenVINO Model Server does. Not the default, because bf16 changes answers: on
    /// an AVX512-BF16 CPU it changed the bundled classifier's top-1 on 8 of 99 images.
    Auto,
    /// 32-bit floats, as the model file holds them: the default.
    #[default]
    F32,
    /// bfloat16: 8 bits of mantissa, the exponent range of f32.
    Bf16,
    /// IEEE half precision.
    F16,
    /// The model file is already quantized (QuantizeLinear/DequantizeLinear pairs in ONNX,
    /// FakeQuantize in OpenVINO IR): its quantized operations run in int8, the others in
    /// f32. Nothing is converted when the model loads.
    Int8,
}

impl Precision {
    /// Every precision, in the order error messages list them.
    pub const ALL: &'static [Precision] = &[
        Precision::Auto,
        Precision::F32,
        Precision::Bf16,
        Precision::F16,
        Precision::Int8,
    ];

    /// The name in configurations and on the command line: `auto`, `f32`, `bf16`, `f16`,
    /// `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
        }
    }

    /// What [`FromStr`](std::str::FromStr) accepts, for messages.
    fn expected() -> String {
        let names: Vec<_> = Precision::ALL.iter().map(|p| p.name()).collect();
        names.join(", ")
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    /// A name of [`Precision::name`], in any case; `fp32` and `fp16` are accepted too.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Precision::Auto,
            "f32" | "fp32" => Precision::F32,
            "bf16" => Precision::Bf16,
            "f16" | "fp16" => Precision::F16,
            "int8" => Precision::Int8,
            other => {
                return Err(format!(
                    "unknown precision '{other}': expected one of {}",
                    Precision::expected()
                ))
            }
        })
    }
}

/// OpenVINO's own name of the property, as OpenVINO Model Server's `plugin_config` takes
/// it; ferroserve adds `int8` and `auto` to OpenVINO's `f32`, `bf16` and `f16`.
pub const PRECISION_PARAMETER: &str = "INFERENCE_PRECISION_HINT";
/// Triton's OpenVINO backend's one precision parameter: `YES` asks for bf16.
pub const BF16_PARAMETER: &str = "HINT_BF16";

/// Triton OpenVINO backend parameters that size OpenVINO's streams and threads. ferroserve
/// gives each model instance one stream of its own threads instead, so they are not used.
const ARRANGEMENT_PARAMETERS: &[&str] =
    &["NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT"];

impl ModelConfig {
    /// The precision the configuration asks for, if it asks: parameter
    /// `INFERENCE_PRECISION_HINT` (`auto`, `f32`, `bf16`, `f16`, `int8`), or Triton's
    /// OpenVINO backend's `HINT_BF16: "YES"`. Both may be given when they agree.
    pub fn precision(&self) -> Result<Option<Precision>, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: self.origin(),
            field: format!("parameters.{key}"),
            message,
        };
        let hint = match self.parameter(PRECISION_PARAMETER) {
            Some(value) => Some(
                value
                    .parse::<Precision>()
                    .map_err(|e| invalid(PRECISION_PARAMETER, e))?,
            ),
            None => None,
        };
        let bf16 = match self.parameter(BF16_PARAMETER) {
            Some(value) if value.trim().eq_ignore_ascii_case("yes") => Some(Precision::Bf16),
            Some(value) => {
                return Err(invalid(
                    BF16_PARAMETER,
                    format!("expected `YES` (as Triton's OpenVINO backend), found `{value}`"),
                ))
            }
            None => None,
        };
        match (hint, bf16) {
            (Some(hint), Some(_)) if hint != Precision::Bf16 => Err(invalid(
                BF16_PARAMETER,
                format!("asks for bf16 but {PRECISION_PARAMETER} asks for {hint}"),
            )),
            (hint, bf16) => Ok(hint.or(bf16)),
        }
    }

    /// Warnings for the OpenVINO backend parameters ferroserve does not use, and an error
    /// for a `TARGET_DEVICE` other than the CPU.
    pub(super) fn openvino_parameters(&self) -> Result<Vec<String>, ConfigError> {
        if let Some(device) = self.parameter("TARGET_DEVICE") {
            if !device.trim().eq_ignore_ascii_case("CPU") {
                return Err(ConfigError::Unsupported {
                    file: self.origin(),
                    field: "parameters.TARGET_DEVICE".into(),
                    value: device.to_string(),
                    supported: "CPU".into(),
                });
            }
        }
        Ok(ARRANGEMENT_PARAMETERS
            .iter()
            .filter(|key| self.parameters.contains_key(**key))
            .map(|key| {
                format!(
                    "parameters.{key}: not used by ferroserve, which runs each model instance \
                     (instance_group count) as one OpenVINO stream with its own threads \
                     (--intra-op-threads, or the cores shared among the instances)"
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_in_any_case() {
        for precision in Precision::ALL {
            assert_eq!(precision.name().parse::<Precision>(), Ok(*precision));
            assert_eq!(
                precision.name().to_uppercase().parse::<Precision>(),
                Ok(*precision)
            );
        }
        assert_eq!("FP16".parse::<Precision>(), Ok(Precision::F16));
        let error = "f64".parse::<Precision>().unwrap_err();
        assert!(error.contains("'f64'") && error.contains("bf16"), "{error}");
    }
}
