//! Tiny ONNX models written at test time (with tract's generated ONNX messages and
//! prost), so that no model file is committed.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::Path;

use prost::Message;
use tract_onnx::pb::tensor_proto::DataType as Elem;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::tensor_shape_proto::Dimension;
use tract_onnx::pb::{
    attribute_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

pub use tract_onnx::pb::tensor_proto::DataType;

/// A graph input or output: `elem` elements of `shape`, `-1` for a dimension named
/// `batch`.
pub fn tensor(name: &str, elem: Elem, shape: &[i64]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| Dimension {
            value: Some(if d < 0 {
                DimValue::DimParam("batch".into())
            } else {
                DimValue::DimValue(d)
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A node of `op` from `inputs` to `outputs`.
pub fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

/// An integer attribute.
pub fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// Writes the model of `nodes` from `inputs` to `outputs` (opset 17) to `path`,
/// creating its folders.
pub fn write(
    path: &Path,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) {
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            name: "test".into(),
            node: nodes,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::create_dir_all(path.parent().expect("a model file has a folder")).unwrap();
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

/// `OUTPUT0 = Identity(INPUT0)`.
pub fn identity(path: &Path, elem: Elem, shape: &[i64]) {
    write(
        path,
        vec![node("Identity", &["INPUT0"], &["OUTPUT0"], vec![])],
        vec![tensor("INPUT0", elem, shape)],
        vec![tensor("OUTPUT0", elem, shape)],
    );
}
