//! The hand-written decoder: from the generic protobuf text tree to a validated
//! [`ModelConfig`].

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::path::Path;

use super::pbtxt::{Field, Message, Value};
use crate::config::{
    ConfigError, DynamicBatching, InputFormat, InstanceGroup, InstanceKind, ModelConfig,
    ModelInput, ModelOutput, ModelParameter, QueuePolicy, ResponseCache, TimeoutAction,
    VersionPolicy,
};
use crate::tensor::DataType;

/// Platforms ferroserve serves.
const PLATFORMS: &[&str] = &["onnxruntime_onnx"];
/// Backends ferroserve serves: Triton's ONNX Runtime backend and ferroserve's tract.
const BACKENDS: &[&str] = &["onnxruntime", "tract"];

const INT32_MAX: i128 = i32::MAX as i128;
const UINT32: RangeInclusive<i128> = 0..=u32::MAX as i128;
const UINT64: RangeInclusive<i128> = 0..=u64::MAX as i128;

/// Builds and validates the configuration in `message`, read from `file`.
pub(super) fn model_config(message: &Message, file: &Path) -> Result<ModelConfig, ConfigError> {
    let mut decoder = Decoder {
        file: file.display().to_string(),
        warnings: Vec::new(),
    };
    let mut config = decoder.config(message)?;
    config.source = Some(file.to_path_buf());
    config.warnings = decoder.warnings;
    config.validate()?;
    Ok(config)
}

/// The path of field `name` inside the message at `path`.
fn child(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// Turns fields into typed values, collecting warnings for the fields it ignores.
struct Decoder {
    file: String,
    warnings: Vec<String>,
}

/// The names of the singular fields seen so far in one message.
#[derive(Default)]
struct Seen<'m>(HashSet<&'m str>);

impl Decoder {
    /// Fails if `field` was already seen in this message: protobuf allows a singular field
    /// only once.
    fn once<'m>(
        &self,
        seen: &mut Seen<'m>,
        field: &'m Field,
        path: &str,
    ) -> Result<(), ConfigError> {
        if seen.0.insert(&field.name) {
            Ok(())
        } else {
            Err(ConfigError::Repeated {
                file: self.file.clone(),
                field: path.to_string(),
                position: None,
            })
        }
    }

    fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// Records every leaf of an ignored field as a warning naming its path.
    fn ignore(&mut self, path: &str, value: &Value) {
        match value {
            Value::Message(m) if !m.fields.is_empty() => {
                for f in &m.fields {
                    self.ignore(&child(path, &f.name), &f.value);
                }
            }
            _ => self.warn(format!("{path}: not used by ferroserve, ignored")),
        }
    }

    fn wrong_type(&self, path: &str, expected: &'static str, value: &Value) -> ConfigError {
        ConfigError::WrongType {
            file: self.file.clone(),
            field: path.to_string(),
            expected,
            found: value.kind().to_string(),
            position: None,
        }
    }

    fn out_of_range(&self, path: &str, value: impl ToString, constraint: &str) -> ConfigError {
        ConfigError::OutOfRange {
            file: self.file.clone(),
            field: path.to_string(),
            value: value.to_string(),
            constraint: constraint.to_string(),
            position: None,
        }
    }

    fn missing(&self, path: &str) -> ConfigError {
        ConfigError::Missing {
            file: self.file.clone(),
            field: path.to_string(),
        }
    }

    fn string(&self, field: &Field, path: &str) -> Result<String, ConfigError> {
        match &field.value {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.wrong_type(path, "a string", other)),
        }
    }

    /// An integer within `range` (the protobuf type's range narrowed by the field's own
    /// rule, which `constraint` states), converted to `T`.
    fn int<T: TryFrom<i128>>(
        &self,
        field: &Field,
        path: &str,
        range: RangeInclusive<i128>,
        constraint: &str,
    ) -> Result<T, ConfigError> {
        let value = match &field.value {
            Value::Integer(i) => *i,
            other => return Err(self.wrong_type(path, "an integer", other)),
        };
        match T::try_from(value) {
            Ok(v) if range.contains(&value) => Ok(v),
            _ => Err(self.out_of_range(path, value, constraint)),
        }
    }

    fn bool(&self, field: &Field, path: &str) -> Result<bool, ConfigError> {
        match &field.value {
            Value::Bool(b) => Ok(*b),
            Value::Integer(0) => Ok(false),
            Value::Integer(1) => Ok(true),
            Value::Identifier(i) if i == "t" => Ok(true),
            Value::Identifier(i) if i == "f" => Ok(false),
            other => Err(self.wrong_type(path, "true or false", other)),
        }
    }

    fn identifier<'v>(&self, field: &'v Field, path: &str) -> Result<&'v str, ConfigError> {
        match &field.value {
            Value::Identifier(i) => Ok(i),
            other => Err(self.wrong_type(path, "an enum value name", other)),
        }
    }

    fn enum_value<E: Copy>(
        &self,
        field: &Field,
        path: &str,
        all: &[E],
        name_of: fn(E) -> &'static str,
    ) -> Result<E, ConfigError> {
        let name = self.identifier(field, path)?;
        all.iter()
            .copied()
            .find(|v| name_of(*v) == name)
            .ok_or_else(|| ConfigError::UnknownEnumValue {
                file: self.file.clone(),
                field: path.to_string(),
                value: name.to_string(),
                expected: all
                    .iter()
                    .map(|v| name_of(*v))
                    .collect::<Vec<_>>()
                    .join(", "),
                position: None,
            })
    }

    fn data_type(&self, field: &Field, path: &str) -> Result<DataType, ConfigError> {
        let name = self.identifier(field, path)?;
        if let Some(t) = DataType::from_config_name(name) {
            return Ok(t);
        }
        let supported = DataType::ALL
            .iter()
            .map(|t| t.config_name())
            .collect::<Vec<_>>()
            .join(", ");
        if matches!(name, "TYPE_BF16" | "TYPE_INVALID") {
            Err(ConfigError::Unsupported {
                file: self.file.clone(),
                field: path.to_string(),
                value: name.to_string(),
                supported,
            })
        } else {
            Err(ConfigError::UnknownEnumValue {
                file: self.file.clone(),
                field: path.to_string(),
                value: name.to_string(),
                expected: supported,
                position: None,
            })
        }
    }

    fn message<'v>(&self, field: &'v Field, path: &str) -> Result<&'v Message, ConfigError> {
        match &field.value {
            Value::Message(m) => Ok(m),
            other => Err(self.wrong_type(path, "a message `{ ... }`", other)),
        }
    }

    fn one_of(&self, field: &Field, path: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        let value = self.string(field, path)?;
        if value.is_empty() || allowed.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err(ConfigError::Unsupported {
                file: self.file.clone(),
                field: path.to_string(),
                value,
                supported: allowed.join(", "),
            })
        }
    }

    fn config(&mut self, m: &Message) -> Result<ModelConfig, ConfigError> {
        let mut config = ModelConfig::new(String::new());
        let mut seen = Seen::default();
        for f in &m.fields {
            let path = f.name.as_str();
            match path {
                "name" => {
                    self.once(&mut seen, f, path)?;
                    config.name = self.string(f, path)?;
                }
                "platform" => {
                    self.once(&mut seen, f, path)?;
                    config.platform = self.one_of(f, path, PLATFORMS)?;
                }
                "backend" => {
                    self.once(&mut seen, f, path)?;
                    config.backend = self.one_of(f, path, BACKENDS)?;
                }
                "version_policy" => {
                    self.once(&mut seen, f, path)?;
                    config.version_policy = Some(self.version_policy(f, path)?);
                }
                "max_batch_size" => {
                    self.once(&mut seen, f, path)?;
                    let rule = "must be 0 (no batching) or positive";
                    config.max_batch_size = Some(self.int(f, path, 0..=INT32_MAX, rule)?);
                }
                "input" => {
                    let path = format!("input[{}]", config.input.len());
                    config.input.push(self.input(f, &path)?);
                }
                "output" => {
                    let path = format!("output[{}]", config.output.len());
                    config.output.push(self.output(f, &path)?);
                }
                "dynamic_batching" => {
                    self.once(&mut seen, f, path)?;
                    config.dynamic_batching = Some(self.dynamic_batching(f, path)?);
                }
                "instance_group" => {
                    let path = format!("instance_group[{}]", config.instance_group.len());
                    config.instance_group.push(self.instance_group(f, &path)?);
                }
                "default_model_filename" => {
                    self.once(&mut seen, f, path)?;
                    config.default_model_filename = self.string(f, path)?;
                }
                "parameters" => {
                    let (key, value) = self.parameter(f)?;
                    let path = format!("parameters.{key}");
                    if config.parameters.insert(key, value).is_some() {
                        return Err(ConfigError::Repeated {
                            file: self.file.clone(),
                            field: path,
                            position: None,
                        });
                    }
                }
                "response_cache" => {
                    self.once(&mut seen, f, path)?;
                    config.response_cache = Some(self.response_cache(f, path)?);
                }
                _ => self.ignore(path, &f.value),
            }
        }
        Ok(config)
    }

    fn input(&mut self, field: &Field, path: &str) -> Result<ModelInput, ConfigError> {
        let m = self.message(field, path)?;
        let mut seen = Seen::default();
        let (mut name, mut data_type) = (None, None);
        let mut format = InputFormat::None;
        let mut dims = Vec::new();
        let mut optional = false;
        for f in &m.fields {
            let fpath = child(path, &f.name);
            match f.name.as_str() {
                "name" => {
                    self.once(&mut seen, f, &fpath)?;
                    name = Some(self.string(f, &fpath)?);
                }
                "data_type" => {
                    self.once(&mut seen, f, &fpath)?;
                    data_type = Some(self.data_type(f, &fpath)?);
                }
                "format" => {
                    self.once(&mut seen, f, &fpath)?;
                    format =
                        self.enum_value(f, &fpath, InputFormat::ALL, InputFormat::config_name)?;
                }
                "dims" => dims.push(self.dim(f, &fpath)?),
                "reshape" => self.warn(format!(
                    "{fpath}: ignored, ferroserve does not reshape tensors"
                )),
                "optional" => {
                    self.once(&mut seen, f, &fpath)?;
                    optional = self.bool(f, &fpath)?;
                }
                _ => self.ignore(&fpath, &f.value),
            }
        }
        Ok(ModelInput {
            name: self.required_name(name, path)?,
            data_type: data_type.ok_or_else(|| self.missing(&child(path, "data_type")))?,
            format,
            dims: self.required_dims(dims, path)?,
            optional,
        })
    }

    fn output(&mut self, field: &Field, path: &str) -> Result<ModelOutput, ConfigError> {
        let m = self.message(field, path)?;
        let mut seen = Seen::default();
        let (mut name, mut data_type) = (None, None);
        let mut dims = Vec::new();
        let mut label_filename = String::new();
        for f in &m.fields {
            let fpath = child(path, &f.name);
            match f.name.as_str() {
                "name" => {
                    self.once(&mut seen, f, &fpath)?;
                    name = Some(self.string(f, &fpath)?);
                }
                "data_type" => {
                    self.once(&mut seen, f, &fpath)?;
                    data_type = Some(self.data_type(f, &fpath)?);
                }
                "dims" => dims.push(self.dim(f, &fpath)?),
                "reshape" => self.warn(format!(
                    "{fpath}: ignored, ferroserve does not reshape tensors"
                )),
                "label_filename" => {
                    self.once(&mut seen, f, &fpath)?;
                    label_filename = self.string(f, &fpath)?;
                }
                _ => self.ignore(&fpath, &f.value),
            }
        }
        Ok(ModelOutput {
            name: self.required_name(name, path)?,
            data_type: data_type.ok_or_else(|| self.missing(&child(path, "data_type")))?,
            dims: self.required_dims(dims, path)?,
            label_filename,
        })
    }

    fn dim(&self, field: &Field, path: &str) -> Result<i64, ConfigError> {
        let dim: i64 = self.int(
            field,
            path,
            -1..=i64::MAX as i128,
            "must be -1 (any size) or positive",
        )?;
        if dim == 0 {
            return Err(self.out_of_range(path, 0, "must be -1 (any size) or positive"));
        }
        Ok(dim)
    }

    fn required_name(&self, name: Option<String>, path: &str) -> Result<String, ConfigError> {
        match name {
            Some(n) if !n.is_empty() => Ok(n),
            _ => Err(self.missing(&child(path, "name"))),
        }
    }

    fn required_dims(&self, dims: Vec<i64>, path: &str) -> Result<Vec<i64>, ConfigError> {
        if dims.is_empty() {
            Err(self.missing(&child(path, "dims")))
        } else {
            Ok(dims)
        }
    }

    fn instance_group(&mut self, field: &Field, path: &str) -> Result<InstanceGroup, ConfigError> {
        let m = self.message(field, path)?;
        let mut seen = Seen::default();
        let mut group = InstanceGroup {
            name: String::new(),
            kind: InstanceKind::default(),
            count: 1,
            gpus: Vec::new(),
        };
        for f in &m.fields {
            let fpath = child(path, &f.name);
            match f.name.as_str() {
                "name" => {
                    self.once(&mut seen, f, &fpath)?;
                    group.name = self.string(f, &fpath)?;
                }
                "kind" => {
                    self.once(&mut seen, f, &fpath)?;
                    group.kind =
                        self.enum_value(f, &fpath, InstanceKind::ALL, InstanceKind::config_name)?;
                }
                "count" => {
                    self.once(&mut seen, f, &fpath)?;
                    group.count = self.int(f, &fpath, 1..=INT32_MAX, "must be at least 1")?;
                }
                "gpus" => {
                    let rule = "must be a GPU index, 0 or more";
                    group.gpus.push(self.int(f, &fpath, 0..=INT32_MAX, rule)?);
                }
                _ => self.ignore(&fpath, &f.value),
            }
        }
        Ok(group)
    }

    fn dynamic_batching(
        &mut self,
        field: &Field,
        path: &str,
    ) -> Result<DynamicBatching, ConfigError> {
        let m = self.message(field, path)?;
        let mut seen = Seen::default();
        let mut batching = DynamicBatching::default();
        for f in &m.fields {
            let fpath = child(path, &f.name);
            match f.name.as_str() {
                "preferred_batch_size" => {
                    let size = self.int(f, &fpath, 1..=INT32_MAX, "must be at least 1")?;
                    batching.preferred_batch_size.push(size);
                }
                "max_queue_delay_microseconds" => {
                    self.once(&mut seen, f, &fpath)?;
                    batching.max_queue_delay_microseconds =
                        self.int(f, &fpath, UINT64, "must be 0 or more")?;
                }
                "default_queue_policy" => {
                    self.once(&mut seen, f, &fpath)?;
                    batching.default_queue_policy = Some(self.queue_policy(f, &fpath)?);
                }
                _ => self.ignore(&fpath, &f.value),
            }
        }
        Ok(batching)
    }

    fn queue_policy(&mut self, field: &Field, path: &str) -> Result<QueuePolicy, ConfigError> {
        let m = self.message(field, path)?;
        let mut seen = Seen::default();
        let mut policy = QueuePolicy::default();
        for f in &m.fields {
            let fpath = child(path, &f.name);
            match f.name.as_str() {
                "timeout_action" => {
                    self.once(&mut seen, f, &fpath)?;
                    policy.timeout_action =
                        self.enum_value(f, &fpath, TimeoutAction::ALL, TimeoutAction::config_name)?;
                }
                "default_timeout_microseconds" => {
                    self.once(&mut seen, f, &fpath)?;
                    policy.default_timeout_microseconds =
                        self.int(f, &fpath, UINT64, "must be 0 (no timeout) or more")?;
                }
                "allow_timeout_override" => {
                    self.once(&mut seen, f, &fpath)?;
                    policy.allow_timeout_override = self.bool(f, &fpath)?;
                }
                "max_queue_size" => {
                    self.once(&mut seen, f, &fpath)?;
                    policy.max_queue_size =
                        self.int(f, &fpath, UINT32, "must be 0 (no limit) or more")?;
                }
                _ => self.ignore(&fpath, &f.value),
            }
        }
        Ok(policy)
    }

    fn version_policy(&mut self, field: &Field, path: &str) -> Result<VersionPolicy, ConfigError> {
        let m = self.message(field, path)?;
        let mut policy = None;
        for f in &m.fields {
            let fpath = child(path, &f.name);
            let chosen = match f.name.as_str() {
                "latest" => self.latest_policy(f, &fpath)?,
                "all" => {
                    let inner = self.message(f, &fpath)?;
                    for g in &inner.fields {
                        self.ignore(&child(&fpath, &g.name), &g.value);
                    }
                    VersionPolicy::All {}
                }
                "specific" => self.specific_policy(f, &fpath)?,
                _ => {
                    self.ignore(&fpath, &f.value);
                    continue;
                }
            };
            if policy.replace(chosen).is_some() {
                return Err(ConfigError::Invalid {
                    file: self.file.clone(),
                    field: path.to_string(),
                    message: "only one of `latest`, `all` and `specific` may be given".into(),
                });
            }
        }
        Ok(policy.unwrap_or_default())
    }

    fn latest_policy(&mut self, field: &Field, path: &str) -> Result<VersionPolicy, ConfigError> {
        let m = self.message(field, path)?;
        let mut seen = Seen::default();
        let mut num_versions = 1;
        for f in &m.fields {
            let fpath = child(path, &f.name);
            if f.name == "num_versions" {
                self.once(&mut seen, f, &fpath)?;
                num_versions = self.int(f, &fpath, 1..=u32::MAX as i128, "must be at least 1")?;
            } else {
                self.ignore(&fpath, &f.value);
            }
        }
        Ok(VersionPolicy::Latest { num_versions })
    }

    fn specific_policy(&mut self, field: &Field, path: &str) -> Result<VersionPolicy, ConfigError> {
        let m = self.message(field, path)?;
        let mut versions = Vec::new();
        for f in &m.fields {
            let fpath = child(path, &f.name);
            if f.name == "versions" {
                versions.push(self.int(
                    f,
                    &fpath,
                    1..=i64::MAX as i128,
                    "versions are positive integers",
                )?);
            } else {
                self.ignore(&fpath, &f.value);
            }
        }
        if versions.is_empty() {
            return Err(self.missing(&child(path, "versions")));
        }
        Ok(VersionPolicy::Specific { versions })
    }

    fn parameter(&mut self, field: &Field) -> Result<(String, ModelParameter), ConfigError> {
        let m = self.message(field, "parameters")?;
        let mut seen = Seen::default();
        let mut key = None;
        let mut value = None;
        for f in &m.fields {
            match f.name.as_str() {
                "key" => {
                    self.once(&mut seen, f, "parameters.key")?;
                    key = Some(self.string(f, "parameters.key")?);
                }
                "value" => {
                    self.once(&mut seen, f, "parameters.value")?;
                    value = Some(f);
                }
                _ => self.ignore(&child("parameters", &f.name), &f.value),
            }
        }
        let key = key.ok_or_else(|| self.missing("parameters.key"))?;
        let path = format!("parameters.{key}");
        let mut string_value = String::new();
        if let Some(f) = value {
            let vpath = child(&path, "value");
            let mut seen = Seen::default();
            for g in &self.message(f, &vpath)?.fields {
                let gpath = child(&vpath, &g.name);
                if g.name == "string_value" {
                    self.once(&mut seen, g, &gpath)?;
                    string_value = self.string(g, &gpath)?;
                } else {
                    self.ignore(&gpath, &g.value);
                }
            }
        }
        Ok((key, ModelParameter { string_value }))
    }

    fn response_cache(&mut self, field: &Field, path: &str) -> Result<ResponseCache, ConfigError> {
        let m = self.message(field, path)?;
        let mut seen = Seen::default();
        let mut cache = ResponseCache::default();
        for f in &m.fields {
            let fpath = child(path, &f.name);
            if f.name == "enable" {
                self.once(&mut seen, f, &fpath)?;
                cache.enable = self.bool(f, &fpath)?;
            } else {
                self.ignore(&fpath, &f.value);
            }
        }
        Ok(cache)
    }
}
