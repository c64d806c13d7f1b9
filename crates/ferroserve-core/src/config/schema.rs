//! Triton's `ModelConfig` schema at run time: the descriptors `config.pbtxt` files are read
//! with, and the JSON Triton prints a configuration as.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

use super::proto;

/// `proto/model_config.proto` compiled by `build.rs`: an encoded `FileDescriptorSet`.
const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model_config.bin"));

const MODEL_CONFIG: &str = "inference.ModelConfig";

/// The schema as written.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTOR_SET).expect("build.rs writes a valid descriptor set")
    })
}

/// The schema as `config.pbtxt` files are read with: the same messages, fields and
/// numbers, so the same text is accepted and the same bytes are encoded, but with every
/// singular field tracking presence (as in proto2) and every map field a repeated entry
/// message. The message read then holds exactly what the file wrote, in order: a field
/// set to its default value (`count: 0`), and every map entry, even one whose key repeats.
fn text_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut set = prost_types::FileDescriptorSet::decode(DESCRIPTOR_SET)
            .expect("build.rs writes a valid descriptor set");
        for file in &mut set.file {
            file.syntax = Some("proto2".to_string());
            file.message_type.iter_mut().for_each(unmark_map_entries);
        }
        DescriptorPool::from_file_descriptor_set(set)
            .expect("the schema stays valid with presence and without map entries")
    })
}

fn unmark_map_entries(message: &mut prost_types::DescriptorProto) {
    if let Some(options) = &mut message.options {
        options.map_entry = None;
    }
    message.nested_type.iter_mut().for_each(unmark_map_entries);
}

/// `inference.ModelConfig` as `config.pbtxt` files are read with (see [`text_pool`]).
pub(super) fn text_model_config() -> MessageDescriptor {
    text_pool()
        .get_message_by_name(MODEL_CONFIG)
        .expect("the schema defines inference.ModelConfig")
}

/// Whether `message` (a message of [`text_model_config`]) is the entry of a map field in
/// the schema as written.
pub(super) fn is_map_entry(message: &MessageDescriptor) -> bool {
    pool()
        .get_message_by_name(message.full_name())
        .is_some_and(|m| m.is_map_entry())
}

/// `message` as read from a file (a message of [`text_model_config`]) as the generated
/// type.
pub(super) fn to_proto(message: &DynamicMessage) -> proto::ModelConfig {
    proto::ModelConfig::decode(message.encode_to_vec().as_slice())
        .expect("both schemas encode a ModelConfig the same way")
}

/// `message` in protobuf text format, as a `config.pbtxt` is written.
pub(super) fn to_text(message: &proto::ModelConfig) -> String {
    let descriptor = pool()
        .get_message_by_name(MODEL_CONFIG)
        .expect("the schema defines inference.ModelConfig");
    DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a ModelConfig decodes as one")
        .to_text_format_with_options(&prost_reflect::text_format::FormatOptions::new().pretty(true))
}

/// `message` as Triton prints a configuration in JSON (`GET /v2/models/<m>/config`):
/// protobuf field names, enums by name, 64-bit integers as numbers, every scalar, list
/// and map field present (with its default when unset), and unset messages left out.
pub(super) fn to_json(message: &proto::ModelConfig) -> serde_json::Value {
    let descriptor = pool()
        .get_message_by_name(MODEL_CONFIG)
        .expect("the schema defines inference.ModelConfig");
    let message = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a ModelConfig decodes as one");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("every message serialises to JSON: map keys are written as strings")
}

/// `inference.ModelConfig` as written (proto3, maps as maps): the message a JSON
/// configuration is read into.
pub(super) fn model_config() -> MessageDescriptor {
    pool()
        .get_message_by_name(MODEL_CONFIG)
        .expect("the schema defines inference.ModelConfig")
}

/// `message` (of [`model_config`]) as a message of [`text_model_config`], as if read from
/// a file: the fields set, and every map entry a repeated entry message.
pub(super) fn as_text_message(message: &DynamicMessage) -> DynamicMessage {
    DynamicMessage::decode(text_model_config(), message.encode_to_vec().as_slice())
        .expect("both schemas encode a ModelConfig the same way")
}
