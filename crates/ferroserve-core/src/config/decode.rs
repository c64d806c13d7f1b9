//! From the message a `config.pbtxt` holds to a validated [`ModelConfig`]: the fields
//! ferroserve acts on, checked, and one warning for every other field the file sets.
//!
//! The message was read against Triton's schema (see [`super::schema`]), so every field
//! exists and holds a value of its type; what is left to check is what ferroserve and
//! Triton require beyond the types.

use std::collections::HashSet;
use std::path::Path;

use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};

use super::schema;
use super::{
    ConfigError, DynamicBatching, EnsembleScheduling, EnsembleStep, InputFormat, InstanceGroup,
    InstanceKind, ModelConfig, ModelInput, ModelOutput, ModelParameter, QueuePolicy, Reshape,
    ResponseCache, ShapeMap, TimeoutAction, VersionPolicy, ENSEMBLE_PLATFORM,
};
use crate::tensor::DataType;

/// Platforms ferroserve serves: ONNX models, and ensembles of them.
const PLATFORMS: &[&str] = &["onnxruntime_onnx", ENSEMBLE_PLATFORM];
/// Backends ferroserve serves: Triton's ONNX Runtime and OpenVINO backends and
/// ferroserve's tract.
const BACKENDS: &[&str] = &["onnxruntime", "openvino", "tract"];
/// CPU execution accelerators of Triton's ONNX Runtime backend that ferroserve runs.
const CPU_ACCELERATORS: &[&str] = &["openvino"];

/// Builds and validates the configuration in `message`, read from `file`.
pub(super) fn model_config(
    message: &DynamicMessage,
    file: &Path,
) -> Result<ModelConfig, ConfigError> {
    let mut decoder = Decoder {
        file: file.display().to_string(),
        warnings: Vec::new(),
    };
    let mut config = decoder.config(message)?;
    config.source = Some(file.to_path_buf());
    config.warnings = decoder.warnings;
    config.validate()?;
    let unused = config.openvino_parameters()?;
    config.warnings.extend(unused);
    Ok(config)
}

/// The path of field `name` inside the message at `path`.
fn child(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// The messages of a repeated message field.
fn messages(values: &[Value]) -> impl Iterator<Item = &DynamicMessage> {
    values.iter().filter_map(Value::as_message)
}

/// The name of enum value `number` of `field`, if it has one.
fn enum_name(field: &FieldDescriptor, number: i32) -> Option<String> {
    let value = field.kind().as_enum()?.get_value(number)?;
    Some(value.name().to_string())
}

/// Turns fields into typed values, collecting warnings for the fields it ignores.
struct Decoder {
    file: String,
    warnings: Vec<String>,
}

impl Decoder {
    fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// Records every value set inside an ignored field as one warning naming its path.
    /// The elements of a list share the list's path; a map entry adds its key.
    fn ignore(&mut self, path: &str, value: &Value) {
        match value {
            Value::List(values) => values.iter().for_each(|v| self.ignore(path, v)),
            Value::Message(m) if schema::is_map_entry(&m.descriptor()) => {
                let key = match m.get_field_by_name("key").as_deref() {
                    Some(Value::String(key)) => key.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let path = child(path, &key);
                match m.get_field_by_name("value") {
                    Some(value) if m.has_field_by_name("value") => self.ignore(&path, &value),
                    _ => self.warn(format!("{path}: not used by ferroserve, ignored")),
                }
            }
            Value::Message(m) if m.fields().next().is_some() => {
                for (field, value) in m.fields() {
                    self.ignore(&child(path, field.name()), value);
                }
            }
            _ => self.warn(format!("{path}: not used by ferroserve, ignored")),
        }
    }

    fn missing(&self, path: &str) -> ConfigError {
        ConfigError::Missing {
            file: self.file.clone(),
            field: path.to_string(),
        }
    }

    /// `value`, if at least `min`, converted to `T`; `constraint` states the field's rule.
    fn int<T: TryFrom<i64>>(
        &self,
        value: impl Into<i64>,
        path: &str,
        min: i64,
        constraint: &str,
    ) -> Result<T, ConfigError> {
        let value = value.into();
        match T::try_from(value) {
            Ok(v) if value >= min => Ok(v),
            _ => Err(self.out_of_range(path, value, constraint)),
        }
    }

    fn out_of_range(&self, path: &str, value: i64, constraint: &str) -> ConfigError {
        ConfigError::OutOfRange {
            file: self.file.clone(),
            field: path.to_string(),
            value: value.to_string(),
            constraint: constraint.to_string(),
            position: None,
        }
    }

    /// The value of enum field `field`, which ferroserve knows as `all`.
    fn enum_value<E: Copy>(
        &self,
        field: &FieldDescriptor,
        number: i32,
        path: &str,
        all: &[E],
        name_of: fn(E) -> &'static str,
    ) -> Result<E, ConfigError> {
        let name = enum_name(field, number);
        all.iter()
            .copied()
            .find(|v| Some(name_of(*v)) == name.as_deref())
            .ok_or_else(|| ConfigError::UnknownEnumValue {
                file: self.file.clone(),
                field: path.to_string(),
                value: name.unwrap_or_else(|| number.to_string()),
                expected: all
                    .iter()
                    .map(|v| name_of(*v))
                    .collect::<Vec<_>>()
                    .join(", "),
                position: None,
            })
    }

    fn data_type(
        &self,
        field: &FieldDescriptor,
        number: i32,
        path: &str,
    ) -> Result<DataType, ConfigError> {
        let name = enum_name(field, number);
        if let Some(t) = name.as_deref().and_then(DataType::from_config_name) {
            return Ok(t);
        }
        let supported = DataType::ALL
            .iter()
            .map(|t| t.config_name())
            .collect::<Vec<_>>()
            .join(", ");
        Err(match name {
            // TYPE_BF16, TYPE_INVALID.
            Some(name) => ConfigError::Unsupported {
                file: self.file.clone(),
                field: path.to_string(),
                value: name,
                supported,
            },
            None => ConfigError::UnknownEnumValue {
                file: self.file.clone(),
                field: path.to_string(),
                value: number.to_string(),
                expected: supported,
                position: None,
            },
        })
    }

    fn out_of_scope(&self, path: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            field: path.to_string(),
            message: message.to_string(),
        }
    }

    fn one_of(&self, value: &str, path: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        if value.is_empty() || allowed.contains(&value) {
            Ok(value.to_string())
        } else {
            Err(ConfigError::Unsupported {
                file: self.file.clone(),
                field: path.to_string(),
                value: value.to_string(),
                supported: allowed.join(", "),
            })
        }
    }

    fn config(&mut self, m: &DynamicMessage) -> Result<ModelConfig, ConfigError> {
        let mut config = ModelConfig::new(String::new());
        for (field, value) in m.fields() {
            let path = field.name();
            match (path, value) {
                ("name", Value::String(name)) => config.name = name.clone(),
                ("platform", Value::String(platform)) => {
                    config.platform = self.one_of(platform, path, PLATFORMS)?;
                }
                ("backend", Value::String(backend)) => {
                    config.backend = self.one_of(backend, path, BACKENDS)?;
                }
                ("version_policy", Value::Message(policy)) => {
                    config.version_policy = Some(self.version_policy(policy, path)?);
                }
                ("max_batch_size", Value::I32(size)) => {
                    let rule = "must be 0 (no batching) or positive";
                    config.max_batch_size = Some(self.int(*size, path, 0, rule)?);
                }
                ("input", Value::List(inputs)) => {
                    for (i, input) in messages(inputs).enumerate() {
                        config
                            .input
                            .push(self.input(input, &format!("input[{i}]"))?);
                    }
                }
                ("output", Value::List(outputs)) => {
                    for (i, output) in messages(outputs).enumerate() {
                        config
                            .output
                            .push(self.output(output, &format!("output[{i}]"))?);
                    }
                }
                ("dynamic_batching", Value::Message(batching)) => {
                    config.dynamic_batching = Some(self.dynamic_batching(batching, path)?);
                }
                ("instance_group", Value::List(groups)) => {
                    for (i, group) in messages(groups).enumerate() {
                        let path = format!("instance_group[{i}]");
                        config
                            .instance_group
                            .push(self.instance_group(group, &path)?);
                    }
                }
                ("default_model_filename", Value::String(filename)) => {
                    config.default_model_filename = filename.clone();
                }
                ("parameters", Value::List(entries)) => {
                    for entry in messages(entries) {
                        let (key, value) = self.parameter(entry)?;
                        let path = format!("parameters.{key}");
                        if config.parameters.insert(key, value).is_some() {
                            return Err(ConfigError::Repeated {
                                file: self.file.clone(),
                                field: path,
                                position: None,
                            });
                        }
                    }
                }
                // Stateful and decoupled models are out of scope: refused, not served
                // as if they were stateless.
                ("sequence_batching", Value::Message(_)) => {
                    return Err(self.out_of_scope(
                        path,
                        "sequence batching (stateful models) is not supported by ferroserve",
                    ));
                }
                ("model_transaction_policy", Value::Message(policy))
                    if matches!(
                        policy.get_field_by_name("decoupled").as_deref(),
                        Some(Value::Bool(true))
                    ) =>
                {
                    return Err(self.out_of_scope(
                        "model_transaction_policy.decoupled",
                        "decoupled models (any number of responses per request) are not supported by ferroserve",
                    ));
                }
                ("response_cache", Value::Message(cache)) => {
                    config.response_cache = Some(self.response_cache(cache));
                }
                ("optimization", Value::Message(optimization)) => {
                    config.openvino_accelerator = self.optimization(optimization, path)?;
                }
                ("ensemble_scheduling", Value::Message(scheduling)) => {
                    config.ensemble_scheduling = Some(self.ensemble_scheduling(scheduling, path)?);
                }
                _ => self.ignore(path, value),
            }
        }
        Ok(config)
    }

    /// `optimization`: whether its CPU execution accelerators name `openvino` (the only
    /// part ferroserve acts on; the rest, GPU accelerators included, is warned about).
    fn optimization(&mut self, m: &DynamicMessage, path: &str) -> Result<bool, ConfigError> {
        let mut openvino = false;
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            let accelerators = match (field.name(), value) {
                ("execution_accelerators", Value::Message(accelerators)) => accelerators,
                _ => {
                    self.ignore(&fpath, value);
                    continue;
                }
            };
            for (field, value) in accelerators.fields() {
                let apath = child(&fpath, field.name());
                let ("cpu_execution_accelerator", Value::List(list)) = (field.name(), value) else {
                    self.ignore(&apath, value);
                    continue;
                };
                for accelerator in messages(list) {
                    for (field, value) in accelerator.fields() {
                        match (field.name(), value) {
                            ("name", Value::String(name)) => {
                                openvino |=
                                    self.one_of(name, &child(&apath, "name"), CPU_ACCELERATORS)?
                                        == "openvino";
                            }
                            _ => self.ignore(&child(&apath, field.name()), value),
                        }
                    }
                }
            }
        }
        Ok(openvino)
    }

    fn input(&mut self, m: &DynamicMessage, path: &str) -> Result<ModelInput, ConfigError> {
        let (mut name, mut data_type) = (String::new(), None);
        let mut format = InputFormat::None;
        let mut dims = Vec::new();
        let mut reshape = None;
        let mut optional = false;
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("name", Value::String(n)) => name = n.clone(),
                ("data_type", Value::EnumNumber(n)) => {
                    data_type = Some(self.data_type(&field, *n, &fpath)?);
                }
                ("format", Value::EnumNumber(n)) => {
                    format = self.enum_value(
                        &field,
                        *n,
                        &fpath,
                        InputFormat::ALL,
                        InputFormat::config_name,
                    )?;
                }
                ("dims", Value::List(values)) => dims = self.dims(values, &fpath)?,
                ("reshape", Value::Message(r)) => reshape = Some(self.reshape(r, &fpath)?),
                ("optional", Value::Bool(b)) => optional = *b,
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(ModelInput {
            name: self.required_name(name, path)?,
            data_type: data_type.ok_or_else(|| self.missing(&child(path, "data_type")))?,
            format,
            dims: self.required_dims(dims, path)?,
            reshape,
            optional,
        })
    }

    fn output(&mut self, m: &DynamicMessage, path: &str) -> Result<ModelOutput, ConfigError> {
        let (mut name, mut data_type) = (String::new(), None);
        let mut dims = Vec::new();
        let mut reshape = None;
        let mut label_filename = String::new();
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("name", Value::String(n)) => name = n.clone(),
                ("data_type", Value::EnumNumber(n)) => {
                    data_type = Some(self.data_type(&field, *n, &fpath)?);
                }
                ("dims", Value::List(values)) => dims = self.dims(values, &fpath)?,
                ("reshape", Value::Message(r)) => reshape = Some(self.reshape(r, &fpath)?),
                ("label_filename", Value::String(f)) => label_filename = f.clone(),
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(ModelOutput {
            name: self.required_name(name, path)?,
            data_type: data_type.ok_or_else(|| self.missing(&child(path, "data_type")))?,
            dims: self.required_dims(dims, path)?,
            reshape,
            label_filename,
        })
    }

    /// A `reshape`: its `shape`, which may be empty (a tensor that is only the batch).
    fn reshape(&mut self, m: &DynamicMessage, path: &str) -> Result<Reshape, ConfigError> {
        let mut shape = Vec::new();
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("shape", Value::List(values)) => shape = self.dims(values, &fpath)?,
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(Reshape { shape })
    }

    /// `ensemble_scheduling`: its steps, each a model of the repository and the maps of
    /// its tensors to the ensemble's.
    fn ensemble_scheduling(
        &mut self,
        m: &DynamicMessage,
        path: &str,
    ) -> Result<EnsembleScheduling, ConfigError> {
        let mut steps = Vec::new();
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("step", Value::List(values)) => {
                    for (i, step) in messages(values).enumerate() {
                        steps.push(self.ensemble_step(step, &format!("{path}.step[{i}]"))?);
                    }
                }
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(EnsembleScheduling { steps })
    }

    fn ensemble_step(
        &mut self,
        m: &DynamicMessage,
        path: &str,
    ) -> Result<EnsembleStep, ConfigError> {
        let mut step = EnsembleStep {
            model_name: String::new(),
            model_version: -1,
            input_map: Default::default(),
            output_map: Default::default(),
        };
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("model_name", Value::String(name)) => step.model_name = name.clone(),
                ("model_version", Value::I64(version)) => {
                    let rule = "must be -1 (the latest version) or a version number";
                    step.model_version = self.int(*version, &fpath, -1, rule)?;
                    if step.model_version == 0 {
                        return Err(self.out_of_range(&fpath, 0, rule));
                    }
                }
                ("input_map", Value::List(entries)) => {
                    step.input_map = self.string_map(entries, &fpath)?;
                }
                ("output_map", Value::List(entries)) => {
                    step.output_map = self.string_map(entries, &fpath)?;
                }
                _ => self.ignore(&fpath, value),
            }
        }
        if step.model_name.is_empty() {
            return Err(self.missing(&child(path, "model_name")));
        }
        Ok(step)
    }

    /// The entries of a `map<string, string>` field; a key given twice is an error.
    fn string_map(
        &self,
        entries: &[Value],
        path: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
        let mut map = std::collections::BTreeMap::new();
        for entry in messages(entries) {
            let text = |name: &str| match entry.get_field_by_name(name).as_deref() {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            let (key, value) = (text("key"), text("value"));
            if key.is_empty() || value.is_empty() {
                return Err(ConfigError::Invalid {
                    file: self.file.clone(),
                    field: path.to_string(),
                    message: format!(
                        "an entry maps '{key}' to '{value}': both tensor names are needed"
                    ),
                });
            }
            let fpath = child(path, &key);
            if map.insert(key, value).is_some() {
                return Err(ConfigError::Repeated {
                    file: self.file.clone(),
                    field: fpath,
                    position: None,
                });
            }
        }
        Ok(map)
    }

    fn dims(&self, values: &[Value], path: &str) -> Result<Vec<i64>, ConfigError> {
        let rule = "must be -1 (any size) or positive";
        values
            .iter()
            .filter_map(Value::as_i64)
            .map(|dim| match dim {
                0 => Err(self.out_of_range(path, 0, rule)),
                dim => self.int(dim, path, -1, rule),
            })
            .collect()
    }

    fn required_name(&self, name: String, path: &str) -> Result<String, ConfigError> {
        if name.is_empty() {
            Err(self.missing(&child(path, "name")))
        } else {
            Ok(name)
        }
    }

    fn required_dims(&self, dims: Vec<i64>, path: &str) -> Result<Vec<i64>, ConfigError> {
        if dims.is_empty() {
            Err(self.missing(&child(path, "dims")))
        } else {
            Ok(dims)
        }
    }

    fn instance_group(
        &mut self,
        m: &DynamicMessage,
        path: &str,
    ) -> Result<InstanceGroup, ConfigError> {
        let mut group = InstanceGroup {
            name: String::new(),
            kind: InstanceKind::default(),
            count: 1,
            gpus: Vec::new(),
        };
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("name", Value::String(name)) => group.name = name.clone(),
                ("kind", Value::EnumNumber(n)) => {
                    group.kind = self.enum_value(
                        &field,
                        *n,
                        &fpath,
                        InstanceKind::ALL,
                        InstanceKind::config_name,
                    )?;
                }
                ("count", Value::I32(count)) => {
                    group.count = self.int(*count, &fpath, 1, "must be at least 1")?;
                }
                ("gpus", Value::List(gpus)) => {
                    let rule = "must be a GPU index, 0 or more";
                    for gpu in gpus.iter().filter_map(Value::as_i32) {
                        group.gpus.push(self.int(gpu, &fpath, 0, rule)?);
                    }
                }
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(group)
    }

    fn dynamic_batching(
        &mut self,
        m: &DynamicMessage,
        path: &str,
    ) -> Result<DynamicBatching, ConfigError> {
        let mut batching = DynamicBatching::default();
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("preferred_batch_size", Value::List(sizes)) => {
                    for size in sizes.iter().filter_map(Value::as_i32) {
                        let size = self.int(size, &fpath, 1, "must be at least 1")?;
                        batching.preferred_batch_size.push(size);
                    }
                }
                ("max_queue_delay_microseconds", Value::U64(delay)) => {
                    batching.max_queue_delay_microseconds = *delay;
                }
                ("default_queue_policy", Value::Message(policy)) => {
                    batching.default_queue_policy = Some(self.queue_policy(policy, &fpath)?);
                }
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(batching)
    }

    fn queue_policy(&mut self, m: &DynamicMessage, path: &str) -> Result<QueuePolicy, ConfigError> {
        let mut policy = QueuePolicy::default();
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("timeout_action", Value::EnumNumber(n)) => {
                    policy.timeout_action = self.enum_value(
                        &field,
                        *n,
                        &fpath,
                        TimeoutAction::ALL,
                        TimeoutAction::config_name,
                    )?;
                }
                ("default_timeout_microseconds", Value::U64(timeout)) => {
                    policy.default_timeout_microseconds = *timeout;
                }
                ("allow_timeout_override", Value::Bool(allow)) => {
                    policy.allow_timeout_override = *allow;
                }
                ("max_queue_size", Value::U32(size)) => policy.max_queue_size = *size,
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(policy)
    }

    /// The schema's oneof allows only one of `latest`, `all` and `specific`.
    fn version_policy(
        &mut self,
        m: &DynamicMessage,
        path: &str,
    ) -> Result<VersionPolicy, ConfigError> {
        let mut policy = VersionPolicy::default();
        for (field, value) in m.fields() {
            let fpath = child(path, field.name());
            match (field.name(), value) {
                ("latest", Value::Message(latest)) => {
                    let mut num_versions = 1;
                    for (field, value) in latest.fields() {
                        let fpath = child(&fpath, field.name());
                        match (field.name(), value) {
                            ("num_versions", Value::U32(n)) => {
                                num_versions = self.int(*n, &fpath, 1, "must be at least 1")?;
                            }
                            _ => self.ignore(&fpath, value),
                        }
                    }
                    policy = VersionPolicy::Latest { num_versions };
                }
                ("all", _) => policy = VersionPolicy::All {},
                ("specific", Value::Message(specific)) => {
                    let mut versions = Vec::new();
                    for (field, value) in specific.fields() {
                        let fpath = child(&fpath, field.name());
                        match (field.name(), value) {
                            ("versions", Value::List(values)) => {
                                let rule = "versions are positive integers";
                                for version in values.iter().filter_map(Value::as_i64) {
                                    versions.push(self.int(version, &fpath, 1, rule)?);
                                }
                            }
                            _ => self.ignore(&fpath, value),
                        }
                    }
                    if versions.is_empty() {
                        return Err(self.missing(&child(&fpath, "versions")));
                    }
                    policy = VersionPolicy::Specific { versions };
                }
                _ => self.ignore(&fpath, value),
            }
        }
        Ok(policy)
    }

    /// One entry of `parameters`: its key and value.
    fn parameter(
        &mut self,
        entry: &DynamicMessage,
    ) -> Result<(String, ModelParameter), ConfigError> {
        if !entry.has_field_by_name("key") {
            return Err(self.missing("parameters.key"));
        }
        let key = match entry.get_field_by_name("key").as_deref() {
            Some(Value::String(key)) => key.clone(),
            _ => String::new(),
        };
        let mut string_value = String::new();
        if let Some(Value::Message(value)) = entry.get_field_by_name("value").as_deref() {
            let vpath = child(&format!("parameters.{key}"), "value");
            for (field, v) in value.fields() {
                match (field.name(), v) {
                    ("string_value", Value::String(s)) => string_value = s.clone(),
                    _ => self.ignore(&child(&vpath, field.name()), v),
                }
            }
        }
        Ok((key, ModelParameter { string_value }))
    }

    fn response_cache(&mut self, m: &DynamicMessage) -> ResponseCache {
        let mut cache = ResponseCache::default();
        for (field, value) in m.fields() {
            match (field.name(), value) {
                ("enable", Value::Bool(enable)) => cache.enable = *enable,
                _ => self.ignore(&child("response_cache", field.name()), value),
            }
        }
        cache
    }
}

impl ModelConfig {
    /// Checks the rules that span fields; run after parsing and after autocompletion.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let file = self.origin();
        let invalid = |field: String, message: String| ConfigError::Invalid {
            file: file.clone(),
            field,
            message,
        };
        let mut names = HashSet::new();
        for (i, input) in self.input.iter().enumerate() {
            if !names.insert(input.name.as_str()) {
                return Err(ConfigError::DuplicateName {
                    file,
                    field: format!("input[{i}].name"),
                    name: input.name.clone(),
                });
            }
            if let Some(reshape) = &input.reshape {
                ShapeMap::new(&input.dims, &reshape.shape)
                    .map_err(|message| invalid(format!("input[{i}].reshape"), message))?;
            }
            if input.format != InputFormat::None && input.dims.len() != 3 {
                return Err(invalid(
                    format!("input[{i}].dims"),
                    format!(
                        "{} needs 3 dimensions (without the batch dimension), found {}",
                        input.format.config_name(),
                        input.dims.len()
                    ),
                ));
            }
        }
        let mut names = HashSet::new();
        for (i, output) in self.output.iter().enumerate() {
            if !names.insert(output.name.as_str()) {
                return Err(ConfigError::DuplicateName {
                    file,
                    field: format!("output[{i}].name"),
                    name: output.name.clone(),
                });
            }
            if let Some(reshape) = &output.reshape {
                ShapeMap::new(&output.dims, &reshape.shape)
                    .map_err(|message| invalid(format!("output[{i}].reshape"), message))?;
            }
        }
        self.validate_ensemble()?;
        for (i, group) in self.instance_group.iter().enumerate() {
            if matches!(group.kind, InstanceKind::Cpu | InstanceKind::Model)
                && !group.gpus.is_empty()
            {
                return Err(invalid(
                    format!("instance_group[{i}].gpus"),
                    format!("GPUs cannot be given for {}", group.kind.config_name()),
                ));
            }
        }
        let max_batch_size = self.max_batch_size();
        if let Some(batching) = &self.dynamic_batching {
            if max_batch_size > 0 {
                if let Some(&size) = batching
                    .preferred_batch_size
                    .iter()
                    .find(|&&size| size > max_batch_size)
                {
                    return Err(ConfigError::OutOfRange {
                        file,
                        field: "dynamic_batching.preferred_batch_size".into(),
                        value: size.to_string(),
                        constraint: format!("must not exceed max_batch_size ({max_batch_size})"),
                        position: None,
                    });
                }
            }
        }
        self.preprocess_settings()?;
        self.precision()?;
        Ok(())
    }
}
